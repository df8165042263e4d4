"""The attestor's quote checks, in the measured package: dcap-qvl, the TCB policy, RTMR3, report data, allowlist.

Why here: a running enclave hands the cluster root only to a newcomer whose quote it
checked itself (the node in between is untrusted), and the enclave imports nothing of the
node. The attestor's `verify_evidence` runs this same code (`coprocessor/attest/attestor.py`),
with the report data of its claim.

dcap-qvl is imported only when a quote is checked: the enclave's ordinary start loads none
of it (tests/test_measurement.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from . import tdx
from .attestation import Evidence
from .errors import AttestationError
from .protocol import TeeType
from .tdx import TdMeasurements

# Marks the development PKI's certificates (see devpki.py): only for a clear refusal.
DEV_PKI_MARK = b"DEVELOPMENT"


@dataclass(frozen=True)
class QuotePolicy:
    """What a verifier accepts: the same fields as the attestor's `Policy`."""

    allowed_images: frozenset[bytes]
    allowed_statuses: frozenset[str] = frozenset({"UpToDate"})
    rejected_advisories: frozenset[str] = frozenset()
    # INSECURE when set: quotes chaining to this development root CA (DER) are accepted, as tee type DEV.
    dev_root_ca_der: bytes | None = None
    # Seconds since the epoch at which certificates and collateral must be valid; None: now.
    now: int | None = None


@dataclass(frozen=True)
class QuoteReport:
    """What dcap-qvl established about a quote."""

    status: str
    advisories: tuple[str, ...]
    body: dict[str, str]
    dev_root: bool


@dataclass(frozen=True)
class Verdict:
    """Evidence that passed."""

    tee_type: TeeType
    image_id: bytes
    compose_hash: bytes
    measurements: TdMeasurements
    status: str
    advisories: tuple[str, ...]
    quote_hash: bytes

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary."""
        m = self.measurements
        return {
            "teeType": self.tee_type.name,
            "imageId": "0x" + self.image_id.hex(),
            "composeHash": "0x" + self.compose_hash.hex(),
            "mrTd": m.mr_td.hex(),
            "rtmr0": m.rtmr0.hex(),
            "rtmr1": m.rtmr1.hex(),
            "rtmr2": m.rtmr2.hex(),
            "rtmr3": m.rtmr3.hex(),
            "tcbStatus": self.status,
            "advisories": list(self.advisories),
            "quoteHash": "0x" + self.quote_hash.hex(),
        }


def verify_quote(quote: bytes, collateral: dict[str, Any], now: int, dev_root_ca_der: bytes | None = None) -> QuoteReport:
    """dcap-qvl verification of `quote` at `now`: Intel's root, or the given development root; the TCB status is not judged."""
    import dcap_qvl

    is_dev = dev_issued(quote, dev_root_ca_der)
    try:
        verified_collateral = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral))
        if is_dev:
            report = dcap_qvl.verify_with_root_ca(quote, verified_collateral, dev_root_ca_der, now)
        else:
            report = dcap_qvl.verify(quote, verified_collateral, now)
    except Exception as exc:  # dcap-qvl raises ValueError/RuntimeError with its reason
        raise AttestationError(f"quote verification failed: {_one_line(str(exc))}") from None
    claims = json.loads(report.to_json())
    body = next(iter(claims["report"].values()))
    return QuoteReport(report.status, tuple(report.advisory_ids), _td_body(body), is_dev)


def verify_bound_evidence(
    evidence: Evidence, report_data: bytes, binds: str, policy: QuotePolicy, collateral: dict[str, Any] | None = None
) -> Verdict:
    """AttestationError with one clear reason unless `evidence` is an allowlisted TD quote carrying `report_data` (64 bytes).

    `binds` names what the report data binds, for the refusal. `collateral` overrides the
    evidence's own, which is used only for a quote of the configured dev root.
    """
    if collateral is None and dev_issued(evidence.quote, policy.dev_root_ca_der):
        collateral = evidence.collateral  # the dev PKI's own; Intel quotes need Intel's, not the sender's pick
    if collateral is None:
        raise AttestationError("no collateral: an Intel quote is checked against Intel's (from PCS or a PCCS)")
    now = policy.now if policy.now is not None else int(time.time())
    quote = verify_quote(evidence.quote, collateral, now, policy.dev_root_ca_der)
    if quote.status not in policy.allowed_statuses:
        raise AttestationError(f"TCB status {quote.status} is not allowed (allowed: {', '.join(sorted(policy.allowed_statuses))})")
    rejected = sorted(set(quote.advisories) & policy.rejected_advisories)
    if rejected:
        raise AttestationError(f"quote is affected by rejected advisories: {', '.join(rejected)}")
    if "mr_td" not in quote.body:
        raise AttestationError("not a TDX quote: only TDX evidence is accepted")
    measurements = TdMeasurements.from_report(quote.body)
    compose = tdx.compose_hash(evidence.event_log, measurements.rtmr3)
    if bytes.fromhex(quote.body["report_data"]) != report_data:
        raise AttestationError(f"report data does not bind {binds}")
    image = tdx.image_id(measurements, compose)
    if image not in policy.allowed_images:
        raise AttestationError(f"measurement 0x{image.hex()} is not on the allowlist")
    tee_type = TeeType.DEV if quote.dev_root else TeeType.TDX
    return Verdict(tee_type, image, compose, measurements, quote.status, quote.advisories, evidence.quote_hash)


def signed_by_dev_pki(quote: bytes) -> bool:
    """Whether any certificate of the quote's PCK chain is marked as a development PKI's; AttestationError if it does not parse."""
    return _marked(_certificates(quote))


def dev_issued(quote: bytes, dev_root_ca_der: bytes | None) -> bool:
    """Whether `quote` chains to the configured dev root (else Intel's root decides).

    AttestationError for an unparsable quote, and for a development-PKI chain the verifier
    has not opted into: a clear reason instead of an Intel-root failure.
    """
    certificates = _certificates(quote)
    if dev_root_ca_der is not None and certificates[-1].public_bytes(Encoding.DER) == dev_root_ca_der:
        return True
    if _marked(certificates):
        if dev_root_ca_der is None:
            raise AttestationError(
                "quote is signed by the development PKI (NOT SECURE); refused unless the dev root is configured as insecure"
            )
        raise AttestationError("quote is signed by a development PKI other than the configured dev root")
    return False


# dcap-qvl's reasons end in a Rust error chain over several lines; the ones people hit get a hint.
_HINTS = {
    "CrlExpired": "the collateral's CRL is outside its validity at the verification time: fetch fresh collateral (--pccs) or verify --now within it",
    "in the future": "the collateral was issued after the verification time: check the clock or --now",
    "expired": "the collateral is outside its validity at the verification time: fetch fresh collateral (--pccs) or verify --now within it",
}


def _one_line(reason: str) -> str:
    """dcap-qvl's multi-line reason as one line, with what to do when we know it."""
    line = "; ".join(" ".join(part.split()) for part in reason.splitlines() if part.strip())
    hint = next((text for key, text in _HINTS.items() if key in line), None)
    return f"{line} ({hint})" if hint else line


def _td_body(body: dict[str, Any]) -> dict[str, str]:
    """The TD10 fields, also from a TD15 report (which nests them under `base`)."""
    return body.get("base", body) if isinstance(body.get("base"), dict) else body


def _certificates(quote: bytes) -> list[x509.Certificate]:
    """The quote's PCK certificate chain, leaf first; AttestationError if the quote does not parse."""
    import dcap_qvl

    try:
        certificates = x509.load_pem_x509_certificates(dcap_qvl.Quote.parse(quote).cert_chain_pem_bytes())
    except Exception as exc:
        raise AttestationError(f"quote does not parse: {exc}") from None
    return certificates


def _marked(certificates: list[x509.Certificate]) -> bool:
    """Whether any certificate's subject carries the development PKI's mark."""
    return any(DEV_PKI_MARK in c.subject.rfc4514_string().encode() for c in certificates)
