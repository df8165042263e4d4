"""The on-chain protocol in Python: request commitments, EIP-712 digests, status codes.

Mirrors `solidity/src/libraries/RequestLib.sol` (and `QuoteLib.sol` for sync-mode quotes); the golden vectors in
`solidity/test/vectors/golden.json` are checked by both sides so they cannot drift.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import coincurve
from eth_abi import encode
from eth_keys import keys
from eth_utils import to_checksum_address

from .abicodec import keccak  # pycryptodome directly: eth_utils' argument checks cost the key holder per response

# Defined on its own, so the job process names outcomes without this module's codecs.
from .status import Status as Status

REQUEST_TYPES = ("bytes32", "address", "bytes32", "bytes32", "uint32", "uint96", "uint64", "uint64", "bytes32")
REQUEST_TUPLE = "(" + ",".join(REQUEST_TYPES) + ")"
FULFILLMENT_TUPLE = f"({REQUEST_TUPLE},uint8,bytes,bytes)"

EIP712_DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
RESPONSE_TYPEHASH = keccak(b"Response(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash)")
# A response whose template called others (`ctx.call`): it also commits to the templates those calls ran.
COMPOSED_RESPONSE_TYPEHASH = keccak(
    b"ComposedResponse(bytes32 requestId,bytes32 commitment,uint8 status,bytes32 outputHash,bytes32[] calls)"
)
REGISTRATION_TYPEHASH = keccak(
    b"Registration(address enclave,bytes32 imageId,uint8 teeType,address payee,uint64 expiresAt,bytes32 quoteHash)"
)
TEMPLATE_KEYS_TYPEHASH = keccak(b"TemplateKeys(bytes32 templateId,uint64 epoch,bytes32 inputKey,bytes32 secretsKey)")

REQUEST_SUBMITTED_TOPIC = keccak(b"RequestSubmitted(bytes32,address,bytes32,bytes,bytes32,uint32,uint96,uint64,uint64,bytes32)")
REQUEST_FULFILLED_TOPIC = keccak(b"RequestFulfilled(bytes32,address,uint8,bool)")
FULFILLMENT_SKIPPED_TOPIC = keccak(b"FulfillmentSkipped(bytes32,uint8)")
REQUEST_CANCELLED_TOPIC = keccak(b"RequestCancelled(bytes32,address,uint96)")
KEYS_PUBLISHED_TOPIC = keccak(b"KeysPublished(bytes32,uint64,bytes32,bytes32,address)")

FULFILL_SELECTOR = keccak(f"fulfill({FULFILLMENT_TUPLE}[])".encode())[:4]
CANCEL_SELECTOR = keccak(f"cancel({REQUEST_TUPLE})".encode())[:4]


class TeeType(enum.IntEnum):
    """Kinds of execution boundary, as `IEnclaveRegistry.TeeType`."""

    DEV = 0
    SGX = 1
    TDX = 2


class SkipReason(enum.IntEnum):
    """Why a fulfilment item was skipped, as `ICoprocessor.SkipReason` (`FulfillmentSkipped`)."""

    ALREADY_SETTLED = 0
    EXPIRED = 1


class RequestState(enum.IntEnum):
    """Where a request stands on-chain, as `ICoprocessor.RequestState`."""

    NONE = 0
    PENDING = 1
    FULFILLED = 2
    CANCELLED = 3


@dataclass(frozen=True)
class Request:
    """Every field the chain commits to for one request."""

    request_id: bytes
    consumer: str
    template_id: bytes
    input_hash: bytes
    callback_gas_limit: int
    fee: int
    deadline: int
    anchor_block: int
    anchor_hash: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple, field order as in Solidity."""
        return (
            self.request_id,
            to_checksum_address(self.consumer),
            self.template_id,
            self.input_hash,
            self.callback_gas_limit,
            self.fee,
            self.deadline,
            self.anchor_block,
            self.anchor_hash,
        )

    def encoded(self) -> bytes:
        """abi.encode(request): nine static words, packed directly.

        Every field is static, so the encoding is one word each; packing them costs a tenth of
        eth_abi's general encoder, which the enclave ran twice per response and the node per item.
        `tests/test_protocol.py` checks it equals eth_abi's on random requests.
        """
        if not _ADDRESS.fullmatch(self.consumer):  # bytes.fromhex alone would skip spaces
            raise ValueError(f"consumer {self.consumer!r} is not a 0x-prefixed 20-byte hex address")
        consumer = bytes.fromhex(self.consumer[2:])
        return b"".join(
            (
                _bytes32(self.request_id),
                b"\0" * 12 + consumer,
                _bytes32(self.template_id),
                _bytes32(self.input_hash),
                _uint(self.callback_gas_limit, 32),
                _uint(self.fee, 96),
                _uint(self.deadline, 64),
                _uint(self.anchor_block, 64),
                _bytes32(self.anchor_hash),
            )
        )

    def commitment(self) -> bytes:
        """keccak256(abi.encode(request)): the one slot the Coprocessor stores."""
        return keccak(self.encoded())

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (bytes as 0x-hex)."""
        return {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        """Inverse of `to_json`."""
        values: dict[str, Any] = {}
        for key, value in data.items():
            is_bytes = key in ("request_id", "template_id", "input_hash", "anchor_hash")
            values[key] = bytes.fromhex(value.removeprefix("0x")) if is_bytes else value
        request = cls(**values)
        request.encoded()  # refuses a malformed field here, before a template sees it (the sender is untrusted)
        return request


@dataclass(frozen=True)
class Fulfillment:
    """A signed response, ready for `Coprocessor.fulfill`."""

    request: Request
    status: Status
    output: bytes
    signature: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple of `Fulfillment`."""
        return (self.request.as_tuple(), int(self.status), self.output, self.signature)


@dataclass(frozen=True)
class Domain:
    """An EIP-712 domain as OpenZeppelin's EIP712 builds it."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def separator(self) -> bytes:
        """The domain separator."""
        return _separator(self.name, self.version, self.chain_id, self.verifying_contract)

    def digest(self, struct_hash: bytes) -> bytes:
        """keccak256("\\x19\\x01" || separator || structHash)."""
        return keccak(b"\x19\x01" + self.separator() + struct_hash)


@functools.lru_cache(maxsize=64)  # the enclave signs every response in one domain
def _separator(name: str, version: str, chain_id: int, verifying_contract: str) -> bytes:
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [EIP712_DOMAIN_TYPEHASH, keccak(name.encode()), keccak(version.encode()), chain_id, to_checksum_address(verifying_contract)],
        )
    )


def coprocessor_domain(chain_id: int, coprocessor: str) -> Domain:
    """The domain responses are signed in."""
    return Domain("Coprocessor", "1", chain_id, coprocessor)


def registry_domain(chain_id: int, registry: str) -> Domain:
    """The domain attestor approvals are signed in."""
    return Domain("EnclaveRegistry", "1", chain_id, registry)


def request_id(chain_id: int, coprocessor: str, nonce: int) -> bytes:
    """keccak256(abi.encode(chainid, coprocessor, nonce)), as the contract derives it."""
    return keccak(encode(["uint256", "address", "uint256"], [chain_id, to_checksum_address(coprocessor), nonce]))


def response_digest(domain: Domain, request: Request, status: Status, output: bytes, calls: Sequence[bytes] = ()) -> bytes:
    """The EIP-712 digest of `Response(requestId, commitment, status, outputHash)`, or, when the template called
    others, of `ComposedResponse(..., calls)`: the template ids its calls ran to Ok, in the order they ended."""
    fields = _bytes32(request.request_id) + request.commitment() + _uint(int(status), 8) + keccak(output)
    if not calls:
        return domain.digest(keccak(RESPONSE_TYPEHASH + fields))
    return domain.digest(keccak(COMPOSED_RESPONSE_TYPEHASH + fields + keccak(b"".join(_bytes32(c) for c in calls))))


def fulfillment_signature(signature: bytes, calls: Sequence[bytes] = ()) -> bytes:
    """What `Fulfillment.signature` carries: the 65-byte signature, then a composed response's call tree."""
    return bytes(signature) + b"".join(_bytes32(c) for c in calls)


def template_keys_digest(domain: Domain, template_id: bytes, epoch: int, input_key: bytes, secrets_key: bytes) -> bytes:
    """The EIP-712 digest of `TemplateKeys(templateId, epoch, inputKey, secretsKey)`: what an enclave signs to
    publish a template's public keys in the KeyRegistry, in the Coprocessor's domain (`coprocessor_domain`)."""
    struct_hash = keccak(TEMPLATE_KEYS_TYPEHASH + _bytes32(template_id) + _uint(epoch, 64) + _bytes32(input_key) + _bytes32(secrets_key))
    return domain.digest(struct_hash)


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _bytes32(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return value


def _uint(value: int, bits: int) -> bytes:
    """A uint<bits> ABI word; ValueError out of range, as eth_abi's encoder refuses."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{value!r} is not a uint{bits}")
    return value.to_bytes(32, "big")


def _padded(data: bytes) -> bytes:
    """`bytes` in ABI: its length word, then the data right-padded to whole words."""
    return len(data).to_bytes(32, "big") + data + b"\0" * (-len(data) % 32)


@dataclass(frozen=True)
class EnclaveRecord:
    """What attestors approve about one enclave key, as `EnclaveRecord` in IEnclaveRegistry.sol."""

    enclave: str
    image_id: bytes
    tee_type: TeeType
    payee: str
    expires_at: int
    quote_hash: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple."""
        return (
            to_checksum_address(self.enclave),
            self.image_id,
            int(self.tee_type),
            to_checksum_address(self.payee),
            self.expires_at,
            self.quote_hash,
        )


def registration_digest(domain: Domain, record: EnclaveRecord) -> bytes:
    """The EIP-712 digest attestors sign to approve `record`."""
    struct_hash = keccak(
        encode(
            ["bytes32", "address", "bytes32", "uint8", "address", "uint64", "bytes32"],
            [REGISTRATION_TYPEHASH, *record.as_tuple()],
        )
    )
    return domain.digest(struct_hash)


def report_data(enclave: str, payee: str, chain_id: int, registry: str, nonce: bytes) -> bytes:
    """The 32 bytes an attestation quote must carry: binds key, payee, chain, registry and a nonce."""
    return keccak(
        encode(
            ["address", "address", "uint256", "address", "bytes32"],
            [to_checksum_address(enclave), to_checksum_address(payee), chain_id, to_checksum_address(registry), nonce],
        )
    )


def sign_digest(private_key: bytes | coincurve.PrivateKey | Any, digest: bytes) -> bytes:  # Any: eth_keys' PrivateKey
    """A 65-byte r||s||v signature (v in 27/28), as OpenZeppelin's ECDSA expects.

    Signed by coincurve (libsecp256k1, RFC 6979 nonces, low s) directly: eth_keys' wrapper around the
    same call costs three times the signature itself, once per response. Pass a `coincurve.PrivateKey`
    to sign many digests with one key."""
    if not isinstance(private_key, coincurve.PrivateKey):
        private_key = coincurve.PrivateKey(private_key.to_bytes() if isinstance(private_key, keys.PrivateKey) else private_key)
    signature = private_key.sign_recoverable(digest, hasher=None)  # r || s || recovery id (0 or 1)
    return signature[:64] + bytes([signature[64] + 27])


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that produced `signature` over `digest`."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise ValueError("signature must be 65 bytes with v in {27, 28}")
    vrs = signature[:64] + bytes([signature[64] - 27])
    return keys.Signature(vrs).recover_public_key_from_msg_hash(digest).to_checksum_address()


# A Fulfillment's head: the request's nine words inline (a static tuple), status, and the offsets of output and signature.
_FULFILLMENT_HEAD = 12 * 32


def encode_fulfill(fulfillments: list[Fulfillment]) -> bytes:
    """Calldata for `Coprocessor.fulfill(Fulfillment[])`, packed directly (the node encodes every item it sends;
    eth_abi's general encoder cost it more than signing the transaction). Equal to eth_abi's, tested."""
    items = []
    for f in fulfillments:
        output = _padded(f.output)
        items.append(
            b"".join(
                (
                    f.request.encoded(),
                    _uint(int(f.status), 8),
                    _FULFILLMENT_HEAD.to_bytes(32, "big"),
                    (_FULFILLMENT_HEAD + len(output)).to_bytes(32, "big"),
                    output,
                    _padded(f.signature),
                )
            )
        )
    offsets, position = [], 32 * len(items)
    for item in items:
        offsets.append(position.to_bytes(32, "big"))
        position += len(item)
    return FULFILL_SELECTOR + (32).to_bytes(32, "big") + len(items).to_bytes(32, "big") + b"".join(offsets) + b"".join(items)


def encode_cancel(request: Request) -> bytes:
    """Calldata for `Coprocessor.cancel(Request)`."""
    return CANCEL_SELECTOR + encode([REQUEST_TUPLE], [request.as_tuple()])


# ---------------------------------------------------------------------------- sync mode: quotes

QUOTE_TYPEHASH = keccak(
    b"Quote(bytes32 templateId,bytes32 inputHash,bytes32 outputHash,address consumer,uint256 chainId,"
    b"uint64 deadline,uint64 anchorBlock,bytes32 anchorHash,bytes32 nonce)"
)
QUOTE_TYPES = ("bytes32", "bytes32", "bytes32", "address", "uint256", "uint64", "uint64", "bytes32", "bytes32")
QUOTE_TUPLE = "(" + ",".join(QUOTE_TYPES) + ")"
SIGNED_QUOTE_TUPLE = f"({QUOTE_TUPLE},bytes,address,bytes)"


@dataclass(frozen=True)
class Quote:
    """An enclave's inline-verifiable answer, as `Quote` in QuoteLib.sol: only ever for an Ok output.

    `anchor_block`/`anchor_hash` are the chain state the template could read; both zero when none.
    """

    template_id: bytes
    input_hash: bytes
    output_hash: bytes
    consumer: str
    chain_id: int
    deadline: int
    anchor_block: int
    anchor_hash: bytes
    nonce: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple, field order as in Solidity."""
        return (
            self.template_id,
            self.input_hash,
            self.output_hash,
            to_checksum_address(self.consumer),
            self.chain_id,
            self.deadline,
            self.anchor_block,
            self.anchor_hash,
            self.nonce,
        )

    def struct_hash(self) -> bytes:
        """The EIP-712 struct hash."""
        return keccak(encode(["bytes32", *QUOTE_TYPES], [QUOTE_TYPEHASH, *self.as_tuple()]))

    def to_json(self) -> dict[str, Any]:
        """JSON-safe camelCase fields (bytes as 0x-hex), as the quote endpoints return them."""
        return {
            "templateId": "0x" + self.template_id.hex(),
            "inputHash": "0x" + self.input_hash.hex(),
            "outputHash": "0x" + self.output_hash.hex(),
            "consumer": to_checksum_address(self.consumer),
            "chainId": self.chain_id,
            "deadline": self.deadline,
            "anchorBlock": self.anchor_block,
            "anchorHash": "0x" + self.anchor_hash.hex(),
            "nonce": "0x" + self.nonce.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Quote:
        """Inverse of `to_json`."""

        def raw(key: str) -> bytes:
            value = bytes.fromhex(str(data[key]).removeprefix("0x"))
            if len(value) != 32:
                raise ValueError(f"{key} must be 32 bytes")
            return value

        return cls(
            raw("templateId"),
            raw("inputHash"),
            raw("outputHash"),
            to_checksum_address(data["consumer"]),
            int(data["chainId"]),
            int(data["deadline"]),
            int(data["anchorBlock"]),
            raw("anchorHash"),
            raw("nonce"),
        )


@dataclass(frozen=True)
class SignedQuote:
    """A quote with its output, signer and signature, as `SignedQuote` in QuoteLib.sol."""

    quote: Quote
    output: bytes
    signer: str
    signature: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple."""
        return (self.quote.as_tuple(), self.output, to_checksum_address(self.signer), self.signature)

    def encode(self) -> bytes:
        """`abi.encode(SignedQuote)`: what a contract takes as `hookData` or `quoteData`."""
        return encode([SIGNED_QUOTE_TUPLE], [self.as_tuple()])

    def to_json(self) -> dict[str, Any]:
        """The quote's fields plus `output`, `signer`, `signature` and the encoded `quoteData`."""
        return {
            **self.quote.to_json(),
            "output": "0x" + self.output.hex(),
            "signer": to_checksum_address(self.signer),
            "signature": "0x" + self.signature.hex(),
            "quoteData": "0x" + self.encode().hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignedQuote:
        """Inverse of `to_json` (`quoteData` is recomputed, not read)."""
        return cls(
            Quote.from_json(data),
            bytes.fromhex(str(data["output"]).removeprefix("0x")),
            to_checksum_address(data["signer"]),
            bytes.fromhex(str(data["signature"]).removeprefix("0x")),
        )


def quote_digest(domain: Domain, quote: Quote) -> bytes:
    """The EIP-712 digest of `quote`, in the Coprocessor's domain (as responses: the type hashes differ)."""
    return domain.digest(quote.struct_hash())
