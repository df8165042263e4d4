"""Getting an enclave key onto the registry, and keeping it there: attest, verify, approve, register, renew."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3

from coprocessor.node.enclave_client import EnclaveClient
from coprocessor_enclave.attestation import Evidence
from coprocessor_enclave.protocol import EnclaveRecord

from ..chain import Deployment, TxSender, contract
from ..errors import AttestationError, ChainError
from .attestor import Claim, Policy, Verdict, approve, record_for, verify_evidence

log = logging.getLogger(__name__)

_IMAGE_ALLOWED = 1  # EnclaveRegistry.ImageStatus.Allowed


@dataclass(frozen=True)
class Attestation:
    """An enclave's evidence together with what its operator claims it binds."""

    claim: Claim
    evidence: Evidence

    def to_json(self) -> dict[str, Any]:
        """The file `coprocessor enclave attest` writes and `coprocessor attest verify` reads."""
        return {"claim": self.claim.to_json(), "evidence": self.evidence.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attestation:
        """Inverse of `to_json`."""
        if not isinstance(data, dict) or "claim" not in data or "evidence" not in data:
            raise AttestationError('not an attestation file: expected {"claim": ..., "evidence": ...}')
        return cls(Claim.from_json(data["claim"]), Evidence.from_json(data["evidence"]))


def attest(enclave: EnclaveClient, chain_id: int, registry: str, address: str | None = None) -> Attestation:
    """Asks the enclave for evidence over a fresh nonce for one of its keys (default: the active one)."""
    info = enclave.info()
    # An enclave from before several chains names its home binding only.
    bindings = info.get("chains") or [{"chainId": info["chainId"], "registry": info["registry"]}]
    served = {int(b["chainId"]): to_checksum_address(b["registry"]) for b in bindings}
    if served.get(chain_id) != to_checksum_address(registry):
        raise AttestationError(
            f"enclave is bound to {', '.join(f'chain {c} registry {r}' for c, r in served.items())}, not chain {chain_id} registry {registry}"
            " (serve another chain with `enclave serve --also`)"
        )
    nonce = secrets.token_bytes(32)
    address = to_checksum_address(address or info["address"])
    return Attestation(Claim(address, info["payee"], chain_id, registry, nonce), enclave.for_chain(chain_id).attest(nonce, address))


class Registrar:
    """Verifies an enclave's evidence as an attestor would, gathers approvals, and registers the key."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        sender: TxSender,
        attestor_keys: Sequence[bytes],
        policy: Policy,
        validity_seconds: int,
        collateral: Callable[[Attestation], dict[str, Any] | None] = lambda _: None,
    ) -> None:
        self.w3 = w3
        self.collateral = collateral  # None: the evidence's own (dev); dstack needs Intel PCS/PCCS collateral
        self.deployment = deployment
        self.sender = sender
        self.attestor_keys = list(attestor_keys)
        self.policy = policy
        self.validity_seconds = validity_seconds
        self.registry = contract(w3, "EnclaveRegistry", deployment.registry)

    def approve(self, attestation: Attestation) -> tuple[EnclaveRecord, Verdict, list[bytes]]:
        """Verifies and returns the record with one approval per attestor key, in the registry's signer order."""
        verdict = verify_evidence(attestation.evidence, attestation.claim, self.policy, self.collateral(attestation))
        expires_at = self.w3.eth.get_block("latest")["timestamp"] + self.validity_seconds
        record = record_for(verdict, attestation.claim, expires_at)
        signers = sorted(self.attestor_keys, key=_address_of)  # the registry wants ascending signers
        approvals = [approve(record, key, self.deployment.chain_id, self.deployment.registry) for key in signers]
        return record, verdict, approvals

    def register(self, enclave: EnclaveClient, address: str | None = None) -> EnclaveRecord:
        """The whole flow for one key: attest, verify, approve, register, check it is active."""
        attestation = attest(enclave, self.deployment.chain_id, self.deployment.registry, address)
        record, verdict, approvals = self.approve(attestation)
        self.sender.call_function(self.registry, "register", record.as_tuple(), approvals)
        if not self.registry.functions.isActive(record.enclave).call():
            raise ChainError(f"enclave {record.enclave} registered but not active")
        log.info(
            "enclave key %s registered: %s image 0x%s, TCB %s, expires at %d",
            record.enclave,
            verdict.tee_type.name,
            verdict.image_id.hex()[:16],
            verdict.status,
            record.expires_at,
        )
        return record


def _address_of(key: bytes) -> int:
    from eth_keys import keys

    return int(keys.PrivateKey(key).public_key.to_checksum_address(), 16)


class KeyKeeper:
    """Watches the enclave's signing key on-chain, renews it before it expires, and says why it cannot be used.

    `problem` is None while the key may sign; otherwise it holds the reason (revoked,
    expired, image revoked), and the node stops dispatching and submitting at once.
    """

    def __init__(
        self,
        w3: Web3,
        registry: str,
        enclave: EnclaveClient,
        registrar: Registrar | None,
        renew_before_seconds: int,
    ) -> None:
        if registrar is not None and registrar.validity_seconds <= renew_before_seconds:
            # Every fresh key would be due for renewal at once: the keeper would rotate for ever.
            raise ValueError("the renewal window must be shorter than the registration validity")
        self.w3 = w3
        self.registry = contract(w3, "EnclaveRegistry", registry)
        self.enclave = enclave
        self.registrar = registrar
        self.renew_before_seconds = renew_before_seconds
        # Fail closed: nothing is signed or submitted until the first check found the key usable.
        self.problem: str | None = "enclave key not checked on-chain yet"
        self._warned: str | None = None
        self._lock = threading.Lock()

    def check(self) -> str | None:
        """One look at the chain; renews the key when due. Returns (and keeps) the current problem."""
        with self._lock:
            address = to_checksum_address(self.enclave.info()["address"])
            image_id, payee, expires_at, revoked = self.registry.functions.enclaves(address).call()
            now = self.w3.eth.get_block("latest")["timestamp"]
            problem = None
            if int(payee, 16) == 0:
                problem = f"enclave key {address} is not registered"
            elif revoked:
                problem = f"enclave key {address} was revoked on-chain"
            elif self.registry.functions.images(image_id).call()[0] != _IMAGE_ALLOWED:
                problem = f"enclave image 0x{image_id.hex()} is no longer allowed on-chain"
            elif expires_at - now <= self.renew_before_seconds:
                problem = self._renew(address, expires_at, now)
            self._report(problem)
            return problem

    def _renew(self, address: str, expires_at: int, now: int) -> str | None:
        """Registers a fresh key and switches to it; a failure is a problem only once the old key expired."""
        expired = expires_at < now
        when = f"expired at {expires_at}" if expired else f"expires at {expires_at}"
        if self.registrar is None:
            reason = f"enclave key {address} {when} and no attestor is configured to renew it"
            if expired:
                return reason
            self._warn(reason)
            return None
        try:
            fresh = self.enclave.rotate()
            self.registrar.register(self.enclave, fresh)
            self.enclave.activate(fresh)
            log.info("enclave key renewed: %s replaces %s (which expires at %d)", fresh, address, expires_at)
            return None
        except Exception as exc:  # keep serving with the old key while it lasts
            reason = f"enclave key {address} {when} and renewing it failed: {exc}"
            if expired:
                return reason
            self._warn(reason)
            return None

    def _warn(self, reason: str) -> None:
        """Logs a renewal warning once per distinct reason (checks run every few seconds)."""
        if reason != self._warned:
            log.warning("%s", reason)
            self._warned = reason

    def _report(self, problem: str | None) -> None:
        if problem != self.problem:
            if problem:
                log.error("not signing or submitting: %s", problem)
            else:
                log.info("enclave key usable again")
        self.problem = problem
