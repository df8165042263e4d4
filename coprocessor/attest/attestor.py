"""The attestor's side: verify a quote with dcap-qvl, apply a policy, then sign an EIP-712 approval.

Every piece of evidence, dev or TDX, goes through the same steps: dcap-qvl checks the
quote, its certificate chain and collateral at a given time; the TCB status and
advisories must pass the policy; the RTMR3 event log must replay to the quote; the
report data must bind the claimed key, payee, chain, registry and nonce; the image id
must be allowlisted. Only the root of trust differs: Intel's, or a development root
that the attestor accepts only when configured to, insecurely.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import dcap_qvl
from eth_utils import to_checksum_address

from coprocessor_enclave import tdx
from coprocessor_enclave.attestation import Evidence, pad_report_data
from coprocessor_enclave.protocol import EnclaveRecord, TeeType, registration_digest, registry_domain, report_data, sign_digest
from coprocessor_enclave.tdx import TdMeasurements

from ..errors import AttestationError

# Marks the development PKI's certificates (see enclave/devpki.py): only for a clear refusal.
DEV_PKI_MARK = b"DEVELOPMENT"


@dataclass(frozen=True)
class Claim:
    """What the enclave's operator says the evidence binds."""

    enclave: str
    payee: str
    chain_id: int
    registry: str
    nonce: bytes

    def report_data(self) -> bytes:
        """The 64-byte report data a quote for this claim must carry."""
        return pad_report_data(report_data(self.enclave, self.payee, self.chain_id, self.registry, self.nonce))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "enclave": to_checksum_address(self.enclave),
            "payee": to_checksum_address(self.payee),
            "chainId": self.chain_id,
            "registry": to_checksum_address(self.registry),
            "nonce": "0x" + self.nonce.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Claim:
        """Inverse of `to_json`."""
        try:
            nonce = bytes.fromhex(str(data["nonce"]).removeprefix("0x"))
            if len(nonce) != 32:
                raise ValueError("nonce must be 32 bytes")
            enclave, payee, registry = (to_checksum_address(data[k]) for k in ("enclave", "payee", "registry"))
            return cls(enclave, payee, int(data["chainId"]), registry, nonce)
        except (KeyError, ValueError, TypeError) as exc:
            raise AttestationError(f"malformed claim: {exc}") from None


@dataclass(frozen=True)
class Policy:
    """What an attestor accepts."""

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
    """Evidence that passed: what the attestor may approve."""

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
    """dcap-qvl verification of `quote` at `now`: Intel's root, or the given development root.

    Raises AttestationError with dcap-qvl's reason. The TCB status is returned, not judged.
    """
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


def verify_evidence(evidence: Evidence, claim: Claim, policy: Policy, collateral: dict[str, Any] | None = None) -> Verdict:
    """Raises AttestationError with one clear reason unless the evidence proves the claim under `policy`.

    `collateral` overrides the evidence's own (dstack evidence carries none: fetch it from
    Intel PCS or a PCCS, or pass a file).
    """
    if collateral is None and dev_issued(evidence.quote, policy.dev_root_ca_der):
        collateral = evidence.collateral  # the dev PKI's own; Intel quotes need Intel's, not the operator's pick
    if collateral is None:
        raise AttestationError("no collateral: pass it (--collateral FILE, or --pccs URL to fetch Intel's)")
    now = policy.now if policy.now is not None else int(time.time())
    quote = verify_quote(evidence.quote, collateral, now, policy.dev_root_ca_der)
    if quote.status not in policy.allowed_statuses:
        raise AttestationError(f"TCB status {quote.status} is not allowed (allowed: {', '.join(sorted(policy.allowed_statuses))})")
    rejected = sorted(set(quote.advisories) & policy.rejected_advisories)
    if rejected:
        raise AttestationError(f"quote is affected by rejected advisories: {', '.join(rejected)}")
    if "mr_td" not in quote.body:
        raise AttestationError("not a TDX quote: only TDX evidence can be registered")
    measurements = TdMeasurements.from_report(quote.body)
    compose = tdx.compose_hash(evidence.event_log, measurements.rtmr3)
    if bytes.fromhex(quote.body["report_data"]) != claim.report_data():
        raise AttestationError("report data does not bind (enclave, payee, chain id, registry, nonce)")
    image = tdx.image_id(measurements, compose)
    if image not in policy.allowed_images:
        raise AttestationError(f"measurement 0x{image.hex()} is not on the allowlist")
    tee_type = TeeType.DEV if quote.dev_root else TeeType.TDX
    return Verdict(tee_type, image, compose, measurements, quote.status, quote.advisories, evidence.quote_hash)


def approve(record: EnclaveRecord, attestor_key: bytes, chain_id: int, registry: str) -> bytes:
    """The attestor's EIP-712 signature over `record` for `EnclaveRegistry.register`."""
    return sign_digest(attestor_key, registration_digest(registry_domain(chain_id, registry), record))


def record_for(verdict: Verdict, claim: Claim, expires_at: int) -> EnclaveRecord:
    """The registry record a verdict and its claim justify."""
    return EnclaveRecord(claim.enclave, verdict.image_id, verdict.tee_type, claim.payee, expires_at, verdict.quote_hash)


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


def dev_issued(quote: bytes, dev_root_ca_der: bytes | None) -> bool:
    """Whether `quote` chains to the configured dev root (else Intel's root decides).

    Raises AttestationError for an unparsable quote, and for a development-PKI chain the
    attestor has not opted into: a clear reason instead of an Intel-root failure.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        certificates = x509.load_pem_x509_certificates(dcap_qvl.Quote.parse(quote).cert_chain_pem_bytes())
    except Exception as exc:
        raise AttestationError(f"quote does not parse: {exc}") from None
    if dev_root_ca_der is not None and certificates[-1].public_bytes(Encoding.DER) == dev_root_ca_der:
        return True
    if any(DEV_PKI_MARK in c.subject.rfc4514_string().encode() for c in certificates):
        if dev_root_ca_der is None:
            raise AttestationError(
                "quote is signed by the development PKI (NOT SECURE); refused unless the dev root is configured as insecure"
            )
        raise AttestationError("quote is signed by a development PKI other than the configured dev root")
    return False
