"""The Python protocol mirror: golden vectors, signatures, and agreement with the deployed contract."""

from __future__ import annotations

import dataclasses
import random

import coincurve
import pytest
from eth_abi import encode
from eth_keys import keys
from eth_utils import keccak

from coprocessor.chain import contract
from coprocessor_enclave.protocol import (
    FULFILL_SELECTOR,
    FULFILLMENT_TUPLE,
    REQUEST_TUPLE,
    Fulfillment,
    Request,
    Status,
    coprocessor_domain,
    encode_fulfill,
    recover_signer,
    request_id,
    response_digest,
    sign_digest,
)

from .conftest import Devnet
from .golden import VECTORS_PATH, render


def test_goldenVectors_fileMatchesPython() -> None:
    # If this fails, the Python encoding changed: regenerate with `python -m tests.golden`
    # and make sure Golden.t.sol still passes, or the two sides have drifted.
    assert VECTORS_PATH.read_text() == render()


def test_signDigest_recoversSignerAndIsLowS() -> None:
    key = keccak(b"some key")
    digest = keccak(b"some digest")
    signature = sign_digest(key, digest)
    s = int.from_bytes(signature[32:64], "big")
    assert s <= 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0  # OpenZeppelin rejects high s
    assert recover_signer(digest, signature) == keys.PrivateKey(key).public_key.to_checksum_address()


def test_signDigest_anyKeyForm_signsAsEthKeys() -> None:
    key = keccak(b"another key")
    for i in range(50):
        digest = keccak(i.to_bytes(4, "big"))
        theirs = keys.PrivateKey(key).sign_msg_hash(digest)
        expected = theirs.to_bytes()[:64] + bytes([theirs.v + 27])  # deterministic (RFC 6979): the same bytes
        assert (
            sign_digest(key, digest)
            == sign_digest(keys.PrivateKey(key), digest)
            == sign_digest(coincurve.PrivateKey(key), digest)
            == expected
        )


def test_responseDigest_matchesDeployedCoprocessor(stack: Devnet) -> None:
    coprocessor = contract(stack.w3, "Coprocessor", stack.deployment.coprocessor)
    request = Request(
        request_id(stack.deployment.chain_id, stack.deployment.coprocessor, 5),
        stack.deployment.consumer,
        b"\x07" * 32,
        keccak(b"in"),
        123_456,
        10**9,
        2**33,
        77,
        b"\x09" * 32,
    )
    output = b"\x00" * 31 + b"\x2a"
    expected = coprocessor.functions.responseDigest(request.request_id, request.commitment(), int(Status.OK), output).call()
    domain = coprocessor_domain(stack.deployment.chain_id, stack.deployment.coprocessor)
    assert response_digest(domain, request, Status.OK, output) == bytes(expected)


def test_request_roundTripsThroughJson() -> None:
    request = Request(b"\x01" * 32, "0x1111111111111111111111111111111111111111", b"\x02" * 32, b"\x03" * 32, 1, 2, 3, 4, b"\x05" * 32)
    assert Request.from_json(request.to_json()) == request


def _random_request(rng: random.Random) -> Request:
    word = lambda: rng.randbytes(32)  # noqa: E731
    return Request(
        word(),
        "0x" + rng.randbytes(20).hex(),
        word(),
        word(),
        rng.choice([0, 1, 2**32 - 1, rng.getrandbits(32)]),
        rng.choice([0, 2**96 - 1, rng.getrandbits(96)]),
        rng.getrandbits(64),
        rng.choice([0, 2**64 - 1, rng.getrandbits(64)]),
        word(),
    )


def test_packedEncodings_equalEthAbis() -> None:
    rng = random.Random(11)
    for _ in range(200):
        request = _random_request(rng)
        assert request.encoded() == encode([REQUEST_TUPLE], [request.as_tuple()])
    for size in (0, 1, 2, 7, 33):
        batch = [
            Fulfillment(
                _random_request(rng),
                Status(rng.randrange(len(Status))),
                rng.randbytes(rng.choice([0, 1, 31, 32, 33, 200])),
                rng.randbytes(65),
            )
            for _ in range(size)
        ]
        expected = FULFILL_SELECTOR + encode([f"{FULFILLMENT_TUPLE}[]"], [[f.as_tuple() for f in batch]])
        assert encode_fulfill(batch) == expected, size


@pytest.mark.parametrize("field", ["callback_gas_limit", "fee", "deadline", "anchor_block"])
def test_packedEncoding_outOfRangeOrWrongSize_refused(field: str) -> None:
    request = _random_request(random.Random(3))
    limit = {"callback_gas_limit": 2**32, "fee": 2**96, "deadline": 2**64, "anchor_block": 2**64}[field]
    for bad in (limit, -1):
        with pytest.raises(ValueError):
            dataclasses.replace(request, **{field: bad}).encoded()
    with pytest.raises(ValueError):
        dataclasses.replace(request, request_id=b"\x01" * 31).commitment()
    with pytest.raises(ValueError):
        dataclasses.replace(request, consumer="0x" + "11" * 19).encoded()


@pytest.mark.parametrize("consumer", ["0x" + "ab " * 20, "0x" + "ab" * 20 + "\n", "ab" * 20, "0x" + "zz" * 20])
def test_request_malformedConsumer_refusedBeforeAnyUse(consumer: str) -> None:
    request = _random_request(random.Random(5))
    with pytest.raises(ValueError):
        dataclasses.replace(request, consumer=consumer).encoded()
    with pytest.raises(ValueError):
        Request.from_json({**request.to_json(), "consumer": consumer})
