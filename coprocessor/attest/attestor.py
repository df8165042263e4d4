"""The attestor's side: verify a quote with dcap-qvl, apply a policy, then sign an EIP-712 approval.

Every piece of evidence, dev or TDX, goes through the same steps: dcap-qvl checks the
quote, its certificate chain and collateral at a given time; the TCB status and
advisories must pass the policy; the RTMR3 event log must replay to the quote; the
report data must bind the claimed key, payee, chain, registry and nonce; the image id
must be allowlisted. Only the root of trust differs: Intel's, or a development root
that the attestor accepts only when configured to, insecurely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

# The quote checks themselves live in the measured package, so that an enclave provisioning a
# newcomer runs the very code an attestor runs; the attestor adds its claim and its signature.
from coprocessor_enclave.attestation import Evidence, pad_report_data
from coprocessor_enclave.dcap import DEV_PKI_MARK as DEV_PKI_MARK
from coprocessor_enclave.dcap import QuotePolicy as Policy
from coprocessor_enclave.dcap import QuoteReport as QuoteReport
from coprocessor_enclave.dcap import Verdict as Verdict
from coprocessor_enclave.dcap import dev_issued as dev_issued
from coprocessor_enclave.dcap import verify_bound_evidence
from coprocessor_enclave.dcap import verify_quote as verify_quote
from coprocessor_enclave.protocol import EnclaveRecord, registration_digest, registry_domain, report_data, sign_digest

from ..errors import AttestationError

__all__ = ["Claim", "Policy", "QuoteReport", "Verdict", "approve", "dev_issued", "record_for", "verify_evidence", "verify_quote"]


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


def verify_evidence(evidence: Evidence, claim: Claim, policy: Policy, collateral: dict[str, Any] | None = None) -> Verdict:
    """Raises AttestationError with one clear reason unless the evidence proves the claim under `policy`.

    `collateral` overrides the evidence's own (dstack evidence carries none: fetch it from
    Intel PCS or a PCCS, or pass a file).
    """
    if collateral is None and not dev_issued(evidence.quote, policy.dev_root_ca_der):
        raise AttestationError("no collateral: pass it (--collateral FILE, or --pccs URL to fetch Intel's)")
    return verify_bound_evidence(evidence, claim.report_data(), "(enclave, payee, chain id, registry, nonce)", policy, collateral)


def approve(record: EnclaveRecord, attestor_key: bytes, chain_id: int, registry: str) -> bytes:
    """The attestor's EIP-712 signature over `record` for `EnclaveRegistry.register`."""
    return sign_digest(attestor_key, registration_digest(registry_domain(chain_id, registry), record))


def record_for(verdict: Verdict, claim: Claim, expires_at: int) -> EnclaveRecord:
    """The registry record a verdict and its claim justify."""
    return EnclaveRecord(claim.enclave, verdict.image_id, verdict.tee_type, claim.payee, expires_at, verdict.quote_hash)
