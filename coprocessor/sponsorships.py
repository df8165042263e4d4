"""Jobs paid by a sponsor through the `Sponsorships` contract: build, hash and sign them as a web2 client does.

A `Signer` key's job carries the key's EIP-712 signature of the `Job` in the contract's domain (name
"Sponsorships", version "1", the chain, the contract): eth_signTypedData_v4, made here with eth-account's
typed-data support, never personal_sign. A `Relayed` key's job needs no signature: only the key's relayer
(the node, which checks the API key off-chain) may submit it. docs/http-jobs.md has the model.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from coprocessor_enclave.protocol import Domain

DOMAIN_NAME = "Sponsorships"
DOMAIN_VERSION = "1"

# `ISponsorships.Job`, field by field: the EIP-712 type and the ABI tuple `submit` takes.
JOB_FIELDS: tuple[tuple[str, str], ...] = (
    ("sponsor", "address"),
    ("keyId", "bytes32"),
    ("consumer", "address"),
    ("templateId", "bytes32"),
    ("input", "bytes"),
    ("callbackGas", "uint32"),
    ("timeout", "uint64"),
    ("nonce", "uint256"),
    ("deadline", "uint64"),
)
JOB_TYPE = "Job(" + ",".join(f"{kind} {name}" for name, kind in JOB_FIELDS) + ")"
JOB_TUPLE = "(" + ",".join(kind for _, kind in JOB_FIELDS) + ")"
JOB_TYPEHASH = keccak(JOB_TYPE.encode())

_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


class KeyKind(enum.IntEnum):
    """How a key's jobs are authorised, as `ISponsorships.KeyKind`."""

    NONE = 0
    SIGNER = 1
    RELAYED = 2


@dataclass(frozen=True)
class Job:
    """One job, as `ISponsorships.Job`: what a client asks a sponsor to pay for."""

    sponsor: str
    key_id: bytes
    consumer: str
    template_id: bytes
    input: bytes
    callback_gas: int
    timeout: int
    nonce: int
    deadline: int

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple of `ISponsorships.Job`, field order as in Solidity (for `submit`)."""
        return (
            to_checksum_address(self.sponsor),
            self.key_id,
            to_checksum_address(self.consumer),
            self.template_id,
            self.input,
            self.callback_gas,
            self.timeout,
            self.nonce,
            self.deadline,
        )

    def message(self) -> dict[str, Any]:
        """The EIP-712 message: the job's fields under their Solidity names."""
        return {name: value for (name, _), value in zip(JOB_FIELDS, self.as_tuple(), strict=True)}


@dataclass(frozen=True)
class KeyConfig:
    """A sponsor's key and its limits, as `ISponsorships.KeyConfig` (`setKey`); zero means "any" or "never"."""

    kind: KeyKind
    relayer: str = "0x" + "00" * 20  # a Relayed key's submitter: the node's jobs account
    consumer: str = "0x" + "00" * 20  # the only consumer its jobs may pay for
    template_id: bytes = bytes(32)  # the only template its jobs may run
    max_fee_per_job: int = 0
    allowance: int = 0  # wei it may still spend
    max_jobs_per_window: int = 0
    window: int = 0  # seconds
    expires_at: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple `setKey` takes."""
        return (
            int(self.kind),
            to_checksum_address(self.relayer),
            to_checksum_address(self.consumer),
            self.template_id,
            self.max_fee_per_job,
            self.allowance,
            self.max_jobs_per_window,
            self.window,
            self.expires_at,
        )


def sponsorships_domain(chain_id: int, sponsorships: str) -> Domain:
    """The EIP-712 domain jobs are signed in: the Sponsorships contract at `sponsorships` on chain `chain_id`."""
    return Domain(DOMAIN_NAME, DOMAIN_VERSION, chain_id, to_checksum_address(sponsorships))


def signer_key_id(signer: str) -> bytes:
    """The id of a `Signer` key: `bytes32(uint256(uint160(signer)))`."""
    return bytes(12) + bytes.fromhex(to_checksum_address(signer)[2:])


def relayed_key_id(public_id: str) -> bytes:
    """An id for a `Relayed` key: keccak256 of the API key's public id (never of its secret)."""
    return keccak(public_id.encode())


def typed_data(job: Job, domain: Domain) -> dict[str, Any]:
    """The whole EIP-712 typed data of `job` in `domain`, as eth_signTypedData_v4 takes it."""
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS, "Job": [{"name": name, "type": kind} for name, kind in JOB_FIELDS]},
        "primaryType": "Job",
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": to_checksum_address(domain.verifying_contract),
        },
        "message": job.message(),
    }


def signable_job(job: Job, domain: Domain) -> SignableMessage:
    """`job` encoded by eth-account as an EIP-712 message, ready to sign."""
    return encode_typed_data(full_message=typed_data(job, domain))


def job_digest(job: Job, domain: Domain) -> bytes:
    """The digest a `Signer` key signs, `keccak256("\\x19\\x01" ‖ domainSeparator ‖ hashStruct(job))`: `jobDigest(job)`."""
    message = signable_job(job, domain)
    return keccak(b"\x19" + message.version + message.header + message.body)


def sign_job(account: LocalAccount, job: Job, domain: Domain) -> bytes:
    """`account`'s 65-byte r‖s‖v signature (v 27 or 28) of `job` in `domain`: the `signature` `submit` takes."""
    return bytes(account.sign_message(signable_job(job, domain)).signature)


def job_signer(job: Job, domain: Domain, signature: bytes) -> str:
    """The checksummed address that signed `job` in `domain` (what the contract checks against the key id)."""
    return str(Account.recover_message(signable_job(job, domain), signature=signature))
