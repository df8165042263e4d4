"""The job process's ABI codec against eth_abi: the same values decode, the same values encode, the same inputs are refused."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from eth_abi import decode as eth_decode
from eth_abi import encode as eth_encode
from eth_utils import keccak as eth_keccak
from eth_utils import to_checksum_address

from coprocessor_enclave import abicodec

_BASES = [
    "uint8",
    "uint16",
    "uint64",
    "uint256",
    "int8",
    "int24",
    "int256",
    "address",
    "bool",
    "bytes1",
    "bytes4",
    "bytes32",
    "bytes",
    "string",
]


def random_type(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return "(" + ",".join(random_type(rng, depth + 1) for _ in range(rng.randint(1, 3))) + ")"
    if depth < 3 and roll < 0.35:
        return random_type(rng, depth + 1) + rng.choice(["[]", "[1]", "[2]", "[3]"])
    return rng.choice(_BASES)


def random_value(rng: random.Random, t: str) -> Any:
    parsed = abicodec.parse(t)
    assert parsed is not None
    return _value(rng, parsed)


def _value(rng: random.Random, t: Any) -> Any:
    if t.kind == "tuple":
        return tuple(_value(rng, c) for c in t.components)
    if t.kind == "array":
        count = t.length if t.length is not None else rng.randint(0, 3)
        return [_value(rng, t.item) for _ in range(count)]
    if t.kind == "uint":
        return rng.choice([0, 1, (1 << t.bits) - 1, rng.getrandbits(t.bits)])
    if t.kind == "int":
        half = 1 << (t.bits - 1)
        return rng.choice([0, -1, half - 1, -half, rng.randrange(-half, half)])
    if t.kind == "address":
        raw = rng.randbytes(20)
        return rng.choice([raw, "0x" + raw.hex(), "0x" + raw.hex().upper(), to_checksum_address(raw)])
    if t.kind == "bool":
        return rng.random() < 0.5
    if t.kind == "bytesN":
        return rng.randbytes(rng.randint(0, t.bits))
    if t.kind == "bytes":
        return rng.randbytes(rng.choice([0, 1, 31, 32, 33, 70]))
    return rng.choice(["", "a", "héllo wörld", "x" * 40, "\u2603" * 11])


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", function(*args)
    except Exception:
        return "error", None


def test_encodeAndDecode_randomTypesAndValues_equalEthAbis() -> None:
    rng = random.Random(7)
    for _ in range(1500):
        types = [random_type(rng) for _ in range(rng.randint(1, 3))]
        values = [random_value(rng, t) for t in types]
        encoded = eth_encode(types, values)
        assert abicodec.encode(types, values) == encoded, types
        assert abicodec.decode(types, encoded) == eth_decode(types, encoded), types


def test_decode_mutatedData_refusedOrDecodedExactlyAsEthAbi() -> None:
    rng = random.Random(8)
    for _ in range(3000):
        types = [random_type(rng) for _ in range(rng.randint(1, 2))]
        data = bytearray(eth_encode(types, [random_value(rng, t) for t in types]))
        mutation = rng.random()
        if data and mutation < 0.5:
            at = rng.randrange(len(data))
            data[at] = rng.choice([0, 1, 0x80, 0xFF, rng.randrange(256)])
        elif data and mutation < 0.7:
            del data[rng.randrange(len(data)) :]
        elif mutation < 0.85:
            data += rng.randbytes(rng.choice([1, 31, 32, 64]))
        else:  # an offset or length word pointed elsewhere
            word = rng.randrange(max(1, len(data) // 32))
            data[word * 32 : word * 32 + 32] = rng.choice([0, 32, 64, 2**32, 2**255]).to_bytes(32, "big")
        ours, theirs = outcome(abicodec.decode, types, bytes(data)), outcome(eth_decode, types, bytes(data))
        assert ours == theirs, (types, bytes(data).hex())


@pytest.mark.parametrize(
    ("types", "values"),
    [
        (["uint8"], [256]),
        (["uint8"], [-1]),
        (["uint8"], [True]),
        (["uint256"], [1.0]),
        (["uint256"], ["1"]),
        (["int8"], [128]),
        (["int8"], [-129]),
        (["bool"], [1]),
        (["bool"], [None]),
        (["address"], ["0x" + "ab" * 19]),
        (["address"], [b"\x01" * 19]),
        (["address"], ["0x" + "ab" * 21]),
        (["address"], [1]),
        (["address"], ["0x" + "ag" * 20]),
        (["address"], ["0x0x" + "ab" * 19]),
        (["bytes2"], [b"abc"]),
        (["bytes2"], ["ab"]),
        (["bytes"], ["x"]),
        (["string"], [b"x"]),
        (["uint8[2]"], [[1]]),
        (["uint8[]"], [1]),
        (["uint8[]"], ["ab"]),
        (["(uint8,bool)"], [(1,)]),
        (["(uint8,bool)"], [{"a": 1}]),
        (["uint8", "bool"], [1]),
    ],
)
def test_encode_badValue_refusedLikeEthAbi(types: list[str], values: list[Any]) -> None:
    assert outcome(eth_encode, types, values)[0] == "error", "eth_abi accepts it: this case tests nothing"
    with pytest.raises(abicodec.AbiError):
        abicodec.encode(types, values)


@pytest.mark.parametrize(
    ("types", "values"),
    [
        (["address"], [bytearray(b"\x01" * 20)]),
        (["address"], ["ab" * 20]),
        (["address"], ["0X" + "aB" * 20]),
        (["bytes"], [bytearray(b"x")]),
        (["bytes3"], [b""]),
        (["uint8[]"], [(1, 2)]),
        (["uint8[]"], [range(3)]),
    ],
)
def test_encode_valuesEthAbiAccepts_accepted(types: list[str], values: list[Any]) -> None:
    assert abicodec.encode(types, values) == eth_encode(types, values)


def test_parse_typesLeftToEthAbi() -> None:
    assert not abicodec.covers(["fixed128x18"]) and not abicodec.covers(["ufixed8x1[]"]) and not abicodec.covers(["function"])
    assert not abicodec.covers(["uint7"]) and not abicodec.covers(["bytes33"]) and not abicodec.covers(["uint8[0]"])
    assert abicodec.covers(["uint", "int", "(address,bytes32[2])[]", "string"])
    assert eth_encode(["fixed128x18"], [Decimal("1.5")])  # eth_abi still serves them in the worker


def test_keccak_matchesEthUtils() -> None:
    rng = random.Random(9)
    for size in (0, 1, 135, 136, 137, 1000):
        data = rng.randbytes(size)
        assert abicodec.keccak(data) == eth_keccak(data)


def test_encode_sequenceWhoseLengthLies_encodesWhatItHoldsOrIsRefused() -> None:
    class Liar(list):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 5

    assert abicodec.encode(["uint8[]"], [Liar([1, 2])]) == eth_encode(["uint8[]"], [[1, 2]])  # its items, never its len()
    with pytest.raises(abicodec.AbiError, match="changed"):
        abicodec.encode(["uint8[5]"], [Liar([1, 2])])


def test_encode_subclassesEncodedByTheirValueNotTheirOverrides() -> None:
    class Loud(str):
        def encode(self, *args: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
            return b"zz"

    class Shifty(int):
        def to_bytes(self, *args: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
            return b"\xff" * 32

    class Faked(bytes):
        def __bytes__(self) -> bytes:
            return b"zz"

    assert abicodec.encode(["string"], [Loud("ab")]) == eth_encode(["string"], ["ab"])
    assert abicodec.encode(["uint8"], [Shifty(5)]) == eth_encode(["uint8"], [5])
    assert abicodec.encode(["bytes"], [Faked(b"ab")]) == eth_encode(["bytes"], [b"ab"])


def test_parse_strictAsEthAbisGrammar() -> None:
    for text in ("uint256[]\n", "uint256[01]", "()", "()[]", "uint256 "):
        assert abicodec.parse(text) is None, text
