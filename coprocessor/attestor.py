"""The attestor's side: check evidence off-chain, then sign an EIP-712 approval for the registry."""

from __future__ import annotations

from dataclasses import dataclass

from .enclave.attestation import Evidence, dev_image_id
from .errors import AttestationError
from .protocol import EnclaveRecord, TeeType, registration_digest, registry_domain, report_data, sign_digest


@dataclass(frozen=True)
class Claim:
    """What the enclave's operator says the evidence binds."""

    enclave: str
    payee: str
    chain_id: int
    registry: str
    nonce: bytes


def verify_evidence(evidence: Evidence, claim: Claim, allowed_images: set[bytes], allow_dev: bool = False) -> None:
    """Raises AttestationError with one clear reason unless the evidence proves the claim.

    DEV evidence is a plain statement and proves nothing about hardware: it is accepted
    only with `allow_dev`, and only for the image id of this very enclave runtime.
    """
    if evidence.tee_type != TeeType.DEV:
        raise AttestationError(f"{evidence.tee_type.name} evidence needs a hardware verifier, not available yet")
    if not allow_dev:
        raise AttestationError("development evidence refused: it is not secure (pass allow_dev to accept it)")
    if evidence.image_id != dev_image_id():
        raise AttestationError("image id does not match this enclave runtime's code hash")
    expected = report_data(claim.enclave, claim.payee, claim.chain_id, claim.registry, claim.nonce)
    if evidence.report_data != expected:
        raise AttestationError("report data does not bind (enclave, payee, chain id, registry, nonce)")
    if evidence.image_id not in allowed_images:
        raise AttestationError(f"image 0x{evidence.image_id.hex()} is not on the allowlist")


def approve(record: EnclaveRecord, attestor_key: bytes, chain_id: int, registry: str) -> bytes:
    """The attestor's EIP-712 signature over `record` for `EnclaveRegistry.register`."""
    return sign_digest(attestor_key, registration_digest(registry_domain(chain_id, registry), record))
