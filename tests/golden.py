"""Golden vectors: commitments, request ids and EIP-712 digests computed by the Python side.

`python -m tests.golden` rewrites solidity/test/vectors/golden.json; `Golden.t.sol` checks the
same numbers with the real contracts, and `test_protocol.py` checks this file still matches.
"""

from __future__ import annotations

import json
from pathlib import Path

from eth_abi import encode
from eth_keys import keys
from eth_utils import keccak

from coprocessor_enclave.protocol import (
    EnclaveRecord,
    Quote,
    Request,
    SignedQuote,
    Status,
    TeeType,
    coprocessor_domain,
    quote_digest,
    registration_digest,
    registry_domain,
    request_id,
    response_digest,
    sign_digest,
    template_keys_digest,
)

VECTORS_PATH = Path(__file__).resolve().parent.parent / "solidity" / "test" / "vectors" / "golden.json"
CHAIN_ID = 31337
COPROCESSOR = "0x00000000000000000000000000000000C0b0C0b0"
REGISTRY = "0x000000000000000000000000000000000E6157E1"
ENCLAVE_KEY = keccak(b"golden enclave key")


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def golden_vectors() -> dict:
    """The vectors as a JSON-ready dict (deterministic)."""
    enclave = keys.PrivateKey(ENCLAVE_KEY).public_key.to_checksum_address()
    cases = [
        (
            0,
            "0x1111111111111111111111111111111111111111",
            b"\x01" * 32,
            encode(["uint256[]", "uint16"], [[3, 1, 2], 500]),
            200_000,
            0,
            1_700_000_000,
            41,
            Status.OK,
            encode(["uint256", "uint16"], [2, 3]),
        ),
        (
            7,
            "0xA0Cf798816D4b9b9866b5330EEa46a18382f251e",
            keccak(b"template"),
            b"\x01\x02\x03",
            1,
            10**18,
            2**40,
            2**32,
            Status.INVALID_INPUT,
            b"input does not decode",
        ),
        (
            2**64,
            "0xFFfFfFffFFfffFFfFFfFFFFFffFFFffffFfFFFfF",
            b"\xff" * 32,
            b"",
            2**32 - 1,
            2**96 - 1,
            2**64 - 1,
            2**64 - 1,
            Status.RESOURCE_LIMIT,
            b"",
        ),
    ]
    vectors = []
    for nonce, consumer, template_id, input_data, gas, fee, deadline, anchor_block, status, output in cases:
        request = Request(
            request_id=request_id(CHAIN_ID, COPROCESSOR, nonce),
            consumer=consumer,
            template_id=template_id,
            input_hash=keccak(input_data),
            callback_gas_limit=gas,
            fee=fee,
            deadline=deadline,
            anchor_block=anchor_block,
            anchor_hash=keccak(anchor_block.to_bytes(32, "big")),
        )
        digest = response_digest(coprocessor_domain(CHAIN_ID, COPROCESSOR), request, status, output)
        vectors.append(
            {
                "nonce": nonce,
                "requestId": _hex(request.request_id),
                "consumer": consumer,
                "templateId": _hex(request.template_id),
                "inputHash": _hex(request.input_hash),
                "callbackGasLimit": gas,
                "fee": fee,
                "deadline": deadline,
                "anchorBlock": anchor_block,
                "anchorHash": _hex(request.anchor_hash),
                "commitment": _hex(request.commitment()),
                "status": int(status),
                "output": _hex(output),
                "digest": _hex(digest),
                "signature": _hex(sign_digest(ENCLAVE_KEY, digest)),
            }
        )
    record = EnclaveRecord(enclave, keccak(b"image"), TeeType.TDX, "0x2222222222222222222222222222222222222222", 2**40, keccak(b"quote"))
    return {
        "chainId": CHAIN_ID,
        "coprocessor": COPROCESSOR,
        "registry": REGISTRY,
        "enclave": enclave,
        "vectors": vectors,
        "registration": {
            "enclave": record.enclave,
            "imageId": _hex(record.image_id),
            "teeType": int(record.tee_type),
            "payee": record.payee,
            "expiresAt": record.expires_at,
            "quoteHash": _hex(record.quote_hash),
            "digest": _hex(registration_digest(registry_domain(CHAIN_ID, REGISTRY), record)),
        },
        "quotes": _quote_vectors(enclave),
        "templateKeys": _template_keys_vectors(),
    }


def _template_keys_vectors() -> list[dict]:
    """KeyRegistry records: `TemplateKeys` digests in the Coprocessor's domain, and the enclave's signatures."""
    cases = [
        (keccak(b"median-price"), 1, keccak(b"input key"), keccak(b"secrets key")),
        (b"\xff" * 32, 2**64 - 1, b"\x01" + b"\0" * 31, b"\xff" * 32),
    ]
    vectors = []
    for template_id, epoch, input_key, secrets_key in cases:
        digest = template_keys_digest(coprocessor_domain(CHAIN_ID, COPROCESSOR), template_id, epoch, input_key, secrets_key)
        vectors.append(
            {
                "templateId": _hex(template_id),
                "epoch": epoch,
                "inputKey": _hex(input_key),
                "secretsKey": _hex(secrets_key),
                "digest": _hex(digest),
                "signature": _hex(sign_digest(ENCLAVE_KEY, digest)),
            }
        )
    return vectors


def _quote_vectors(enclave: str) -> list[dict]:
    """Sync-mode quotes: struct hash, digest in the Coprocessor's domain, signature and `abi.encode(SignedQuote)`."""
    cases = [
        (
            keccak(b"median-price"),
            encode(["uint256[]", "uint16"], [[3, 1, 2], 500]),
            encode(["uint256", "uint16"], [2, 3]),
            "0x1111111111111111111111111111111111111111",
            CHAIN_ID,
            1_700_000_000,
            0,
            b"\0" * 32,
            keccak(b"nonce 0"),
        ),
        (
            b"\xff" * 32,
            b"",
            b"",
            "0xFFfFfFffFFfffFFfFFfFFFFFffFFFffffFfFFFfF",
            2**256 - 1,
            2**64 - 1,
            2**64 - 1,
            keccak(b"anchor"),
            b"\xff" * 32,
        ),
    ]
    vectors = []
    for template_id, input_data, output, consumer, chain_id, deadline, anchor_block, anchor_hash, nonce in cases:
        quote = Quote(template_id, keccak(input_data), keccak(output), consumer, chain_id, deadline, anchor_block, anchor_hash, nonce)
        digest = quote_digest(coprocessor_domain(CHAIN_ID, COPROCESSOR), quote)
        signed = SignedQuote(quote, output, enclave, sign_digest(ENCLAVE_KEY, digest))
        vectors.append({**signed.to_json(), "structHash": _hex(quote.struct_hash()), "digest": _hex(digest)})
    return vectors


def render() -> str:
    """The file's exact text."""
    return json.dumps(golden_vectors(), indent=2) + "\n"


if __name__ == "__main__":
    VECTORS_PATH.write_text(render())
    print(f"wrote {VECTORS_PATH}")
