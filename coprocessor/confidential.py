"""Confidential inputs and secrets from the outside: encrypt to a template's keys as the KeyRegistry
publishes them, and publish them there from an enclave of the cluster.

A requester needs no trust in the node: the KeyRegistry accepted the keys only with the signature
of a registered, active enclave, and what is sealed to them opens only inside the cluster's
enclaves (docs/keys.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coprocessor_enclave import keys

from .chain import Deployment, TxSender, contract
from .errors import ChainError

if TYPE_CHECKING:
    from .node.enclave_client import EnclaveClient


@dataclass(frozen=True)
class PublishedKeys:
    """A template's public keys in the KeyRegistry, and their epoch."""

    epoch: int
    input_key: bytes
    secrets_key: bytes


def published_keys(w3: Any, deployment: Deployment, template_id: bytes) -> PublishedKeys:
    """The template's keys on-chain; ChainError, saying what to do, when none were published."""
    epoch, input_key, secrets_key = contract(w3, "KeyRegistry", deployment.key_registry).functions.keysOf(template_id).call()
    if epoch == 0:
        raise ChainError(
            f"no keys published for template 0x{template_id.hex()}: run `coprocessor keys publish` with an enclave of the cluster"
        )
    return PublishedKeys(int(epoch), bytes(input_key), bytes(secrets_key))


def encrypt_input(w3: Any, deployment: Deployment, consumer: str, template_id: bytes, plaintext: bytes) -> bytes:
    """`plaintext` (the template's ABI-encoded input) sealed for this template, this consumer, this Coprocessor
    and chain: what the consumer passes as the request's input. It opens nowhere else.

    Refused for the forwarding contracts (`Subscriptions`, `Sponsorships`): they are the consumer of everyone's
    requests, so an input sealed to them could be run by anyone who copied it (docs/keys.md, "Limits")."""
    forwarders = {a.lower() for a in (deployment.subscriptions, deployment.sponsorships)}
    if consumer.lower() in forwarders:
        raise ChainError(
            f"{consumer} forwards everyone's requests: an input sealed to it is not yours alone. Seal to your own consumer"
            " contract, and request from it directly"
        )
    published = published_keys(w3, deployment, template_id)
    return keys.encrypt_input(
        published.input_key, published.epoch, plaintext, deployment.chain_id, deployment.coprocessor, consumer, template_id
    )


def encrypt_secret(w3: Any, deployment: Deployment, template_id: bytes, name: str, value: bytes) -> bytes:
    """A secret sealed to the template's secrets key, readable by that template only, as `name`."""
    published = published_keys(w3, deployment, template_id)
    return keys.encrypt_secret(published.secrets_key, published.epoch, name, value, deployment.chain_id, template_id)


def publish_keys(sender: TxSender, deployment: Deployment, enclave: EnclaveClient, template_id: bytes) -> PublishedKeys:
    """Asks the enclave for the template's keys in its current epoch, signed, and publishes them."""
    epoch, input_key, secrets_key, signature = enclave.template_keys(template_id)
    registry = contract(sender.w3, "KeyRegistry", deployment.key_registry)
    data = registry.encode_abi("publish", args=[template_id, epoch, input_key, secrets_key, signature])
    receipt = sender.wait(sender.send(deployment.key_registry, bytes.fromhex(data.removeprefix("0x"))))
    if receipt["status"] != 1:
        raise ChainError(f"publishing the keys of template 0x{template_id.hex()} reverted")
    return PublishedKeys(epoch, input_key, secrets_key)
