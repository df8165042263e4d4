"""Provisioning the cluster root to a new enclave, only after its attestation checked out (design section 11).

Why: the root decrypts every template's inputs and secrets, so it must only ever move from
one attested enclave to another, and the untrusted node relaying the messages must gain
nothing from them. The steps:

1. A running enclave of the cluster issues a fresh 32-byte nonce for this one join.
2. The newcomer makes an ephemeral X25519 key and a quote whose report data is

       SHA-256("coprocessor/v1/provision" || chain id (32, BE) || registry (20) || nonce (32)
               || ephemeral public key (32) || production (1 byte: 1, or 0 for a dev cluster))

   zero-padded to 64 bytes. (Registration quotes carry keccak256 of an ABI encoding instead,
   `protocol.report_data`: another hash behind no label, so neither can serve as the other.)
3. The running enclave checks the quote with the attestor's checks (`dcap.py`: dcap-qvl, TCB
   policy, RTMR3 replay, report data, allowlisted measurement); a DEV quote never joins a
   production cluster. Only then it seals the root and epoch to the ephemeral key with HPKE,
   bound to the same digest (`keys.seal_root`).
4. The newcomer opens it with its ephemeral key, which never left it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_utils import to_canonical_address

from . import keys
from .attestation import AttestationBackend, Evidence, pad_report_data
from .dcap import QuotePolicy, Verdict, signed_by_dev_pki, verify_bound_evidence
from .errors import AttestationError
from .protocol import TeeType

PROVISION_LABEL = b"coprocessor/v1/provision"
NONCE_BYTES = 32
BINDS = "(ephemeral key, nonce, chain id, registry, cluster kind)"


@dataclass(frozen=True)
class Cluster:
    """The cluster a root belongs to: the chain and registry it serves, and whether it is a production one."""

    chain_id: int
    registry: str
    production: bool

    def binding(self, nonce: bytes, ephemeral_public: bytes) -> bytes:
        """The 32-byte digest a newcomer's quote carries and its sealed root is bound to (see the module docstring)."""
        if len(nonce) != NONCE_BYTES or len(ephemeral_public) != keys.KEY_BYTES:
            raise ValueError(f"nonce and ephemeral key must be {NONCE_BYTES} and {keys.KEY_BYTES} bytes")
        if not 0 < self.chain_id < 2**256:
            raise ValueError(f"chain id must be in (0, 2**256): {self.chain_id}")
        return hashlib.sha256(
            PROVISION_LABEL
            + self.chain_id.to_bytes(32, "big")
            + bytes(to_canonical_address(self.registry))
            + nonce
            + ephemeral_public
            + (b"\x01" if self.production else b"\x00")
        ).digest()


@dataclass(frozen=True)
class JoinRequest:
    """What a newcomer sends a running enclave: its evidence and the ephemeral public key the evidence binds."""

    evidence: Evidence
    ephemeral_public: bytes


def new_nonce() -> bytes:
    """A fresh nonce for one join; the running enclave must accept it once only."""
    return secrets.token_bytes(NONCE_BYTES)


class Newcomer:
    """A joining enclave's side of one provisioning. Its ephemeral private key never leaves this object."""

    def __init__(self, cluster: Cluster, nonce: bytes) -> None:
        """A fresh ephemeral key for joining `cluster` with the running enclave's `nonce`."""
        self.cluster = cluster
        self.nonce = nonce
        self._key = X25519PrivateKey.generate()
        self.public_key = keys.public_bytes(self._key)
        self.binding = cluster.binding(nonce, self.public_key)

    def report_data(self) -> bytes:
        """The 64-byte report data its quote must carry."""
        return pad_report_data(self.binding)

    def join_request(self, backend: AttestationBackend) -> JoinRequest:
        """A quote from `backend` over the binding, with the ephemeral public key."""
        return JoinRequest(backend.attest(self.binding), self.public_key)

    def open_root(self, sealed: bytes) -> tuple[bytes, int]:
        """(root, epoch) from the running enclave's answer; keys.DecryptionFailed if it was not sealed for this join."""
        return keys.open_root(self._key, sealed, self.binding)


def check_newcomer(
    request: JoinRequest, nonce: bytes, cluster: Cluster, policy: QuotePolicy, collateral: dict[str, Any] | None = None
) -> Verdict:
    """AttestationError with one clear reason unless the newcomer may receive the root; its verdict otherwise.

    `nonce` is the one this enclave issued for the join; `collateral` is Intel's for a TDX
    quote (a dev quote carries its PKI's own, used only when the policy trusts that root).
    """
    if cluster.production and policy.dev_root_ca_der is not None:
        raise AttestationError("a production cluster never trusts a development root: leave dev_root_ca_der unset")
    if len(request.ephemeral_public) != keys.KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise AttestationError(f"ephemeral key and nonce must be {keys.KEY_BYTES} and {NONCE_BYTES} bytes")
    if cluster.production and signed_by_dev_pki(request.evidence.quote):
        raise AttestationError("DEV quote: a development enclave never joins a production cluster")
    expected = pad_report_data(cluster.binding(nonce, request.ephemeral_public))
    verdict = verify_bound_evidence(request.evidence, expected, BINDS, policy, collateral)
    if cluster.production and verdict.tee_type is TeeType.DEV:  # unreachable without a dev root; kept as the rule itself
        raise AttestationError("DEV quote: a development enclave never joins a production cluster")
    return verdict


def provision(
    root: bytes,
    epoch: int,
    request: JoinRequest,
    nonce: bytes,
    cluster: Cluster,
    policy: QuotePolicy,
    collateral: dict[str, Any] | None = None,
) -> bytes:
    """The root and epoch sealed to the newcomer's ephemeral key, only after `check_newcomer` accepted it."""
    check_newcomer(request, nonce, cluster, policy, collateral)
    return keys.seal_root(request.ephemeral_public, root, epoch, cluster.binding(nonce, request.ephemeral_public))
