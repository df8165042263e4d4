"""The Python protocol mirror: golden vectors, signatures, and agreement with the deployed contract."""

from __future__ import annotations

from eth_keys import keys
from eth_utils import keccak

from coprocessor.chain import contract
from coprocessor_enclave.protocol import Request, Status, coprocessor_domain, recover_signer, request_id, response_digest, sign_digest

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


def test_responseDigest_matchesDeployedCoprocessor(stack: Devnet) -> None:
    coprocessor = contract(stack.w3, "Coprocessor", stack.deployment.coprocessor)
    request = Request(
        request_id(stack.deployment.chain_id, stack.deployment.coprocessor, 5),
        stack.deployment.consumer, b"\x07" * 32, keccak(b"in"), 123_456, 10**9, 2**33, 77, b"\x09" * 32,
    )
    output = b"\x00" * 31 + b"\x2a"
    expected = coprocessor.functions.responseDigest(request.request_id, request.commitment(), int(Status.OK), output).call()
    domain = coprocessor_domain(stack.deployment.chain_id, stack.deployment.coprocessor)
    assert response_digest(domain, request, Status.OK, output) == bytes(expected)


def test_request_roundTripsThroughJson() -> None:
    request = Request(b"\x01" * 32, "0x1111111111111111111111111111111111111111", b"\x02" * 32, b"\x03" * 32, 1, 2, 3, 4, b"\x05" * 32)
    assert Request.from_json(request.to_json()) == request
