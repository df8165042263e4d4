"""The on-chain template catalogue: publish, deprecate, list and look up templates in the TemplateRegistry.

A template's author and author fee never change once published (a new fee is a new version, so a
new template id); the Coprocessor reads the fee at fulfilment. See `solidity/src/TemplateRegistry.sol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from ..chain import TxSender, contract, decode_revert
from ..errors import ChainError

TEMPLATE_PUBLISHED_TOPIC = keccak(b"TemplatePublished(bytes32,address,string,string,string,uint96)")
TEMPLATE_DEPRECATED_TOPIC = keccak(b"TemplateDeprecated(bytes32)")

MAX_AUTHOR_FEE = 2**96 - 1


class CatalogError(ChainError):
    """The TemplateRegistry refused a publish or deprecate; `reason` is its decoded custom error."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action} refused: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Listing:
    """One template of the on-chain catalogue."""

    template_id: bytes
    name: str
    version: str
    uri: str
    author: str
    author_fee: int
    deprecated: bool

    @property
    def id_hex(self) -> str:
        """The template id as 0x-hex."""
        return "0x" + self.template_id.hex()


def publish(sender: TxSender, registry: str, template_id: bytes, name: str, version: str, uri: str = "", author_fee: int = 0) -> Any:
    """Publishes `template_id` with `sender` as its author, for good; returns the receipt."""
    if len(template_id) != 32:
        raise CatalogError("publish", f"a template id is 32 bytes, got {len(template_id)}")
    if not 0 <= author_fee <= MAX_AUTHOR_FEE:
        raise CatalogError("publish", f"author fee {author_fee} does not fit in a uint96")
    return _transact(sender, registry, "publish", template_id, name, version, uri, author_fee)


def deprecate(sender: TxSender, registry: str, template_id: bytes) -> Any:
    """Deprecates `template_id` (author only): new requests are refused, pending ones still settle."""
    return _transact(sender, registry, "deprecate", template_id)


def listings(w3: Web3, registry: str, from_block: int = 0) -> list[Listing]:
    """Every published template, in publication order, rebuilt from the registry's events."""
    logs = w3.eth.get_logs(
        {
            "address": to_checksum_address(registry),
            "fromBlock": from_block,
            "toBlock": "latest",
            "topics": [["0x" + TEMPLATE_PUBLISHED_TOPIC.hex(), "0x" + TEMPLATE_DEPRECATED_TOPIC.hex()]],
        }
    )
    found: dict[bytes, Listing] = {}
    for entry in logs:
        topics = [bytes(t) for t in entry["topics"]]
        template_id = topics[1]
        if topics[0] == TEMPLATE_PUBLISHED_TOPIC:
            name, version, uri, fee = decode(["string", "string", "string", "uint96"], bytes(entry["data"]))
            author = to_checksum_address(topics[2][12:])
            found[template_id] = Listing(template_id, name, version, uri, author, fee, deprecated=False)
        elif template_id in found:
            old = found[template_id]
            found[template_id] = Listing(old.template_id, old.name, old.version, old.uri, old.author, old.author_fee, deprecated=True)
    return list(found.values())


def lookup(w3: Web3, registry: str, template_id: bytes) -> Listing | None:
    """The registry's record of `template_id`, or None if it was never published."""
    author, fee, deprecated, name, version, uri = contract(w3, "TemplateRegistry", registry).functions.templateOf(template_id).call()
    if int(author, 16) == 0:
        return None
    return Listing(template_id, name, version, uri, to_checksum_address(author), fee, deprecated)


def _transact(sender: TxSender, registry: str, function: str, *args: Any) -> Any:
    """Simulates first, so a refusal comes back as a CatalogError naming the registry's custom error."""
    handle = contract(sender.w3, "TemplateRegistry", registry)
    data = bytes.fromhex(handle.encode_abi(function, args=list(args)).removeprefix("0x"))
    try:
        sender.w3.eth.call({"from": sender.address, "to": handle.address, "data": data})
    except (ContractCustomError, ContractLogicError) as exc:
        raise CatalogError(function, decode_revert(exc.data if isinstance(exc.data, (str, bytes)) else None)) from None
    return sender.transact(handle.address, data)
