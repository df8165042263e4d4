"""The linear ABI layout walk (`coprocessor_enclave.abi`) and the manifest's limits on declared types."""

from __future__ import annotations

import random
import runpy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode, encode, grammar

from coprocessor_enclave.abi import MAX_TYPE_CHARS, MAX_TYPE_DEPTH, NonCanonicalAbi, check_canonical, nesting_depth
from coprocessor_enclave.errors import ManifestError
from coprocessor_enclave.template import load_template

from .conftest import TEST_TEMPLATES

BOMB_BYTES = 96 * 1024
_STATIC_BASES = ["uint256", "uint8", "int16", "bool", "address", "bytes32", "bytes3"]
_ALL_BASES = _STATIC_BASES + ["bytes", "string"]


def words(*values: int) -> bytes:
    """Each value as one big-endian 32-byte word."""
    return b"".join(v.to_bytes(32, "big") for v in values)


def _bomb_builder() -> Callable[..., bytes]:
    """`bomb(levels, size)` of the hostile pointer-bomb templates: the bytes they send, built here too."""
    module = runpy.run_path(str(TEST_TEMPLATES / "hostile-pointer-bomb-2" / "main.py"))  # compiled in memory, no cache file
    assert module["SIZE"] == BOMB_BYTES
    return module["bomb"]  # type: ignore[no-any-return]


# `uint256` + `[]` * levels in `size` bytes, every array's offsets aliasing the one array below it:
# each level has the same length n, so a decoder that follows the offsets visits n**levels elements.
pointer_bomb = _bomb_builder()


def random_type(rng: random.Random, depth: int, bases: list[str]) -> str:
    """A random ABI type at most `depth` levels of arrays and tuples deep."""
    roll = rng.random()
    if depth == 0 or roll < 0.3:
        return rng.choice(bases)
    if roll < 0.55:
        return "(" + ",".join(random_type(rng, depth - 1, bases) for _ in range(rng.randint(1, 3))) + ")"
    return random_type(rng, depth - 1, bases) + rng.choice(["[]", "[]", f"[{rng.randint(1, 3)}]"])


def random_value(rng: random.Random, abi_type: grammar.ABIType) -> Any:
    """A random value of a parsed type, as eth_abi encodes it."""
    if abi_type.arrlist:
        dimension = abi_type.arrlist[-1]
        count = dimension[0] if dimension else rng.randint(0, 3)
        return [random_value(rng, abi_type.item_type) for _ in range(count)]
    if isinstance(abi_type, grammar.TupleType):
        return tuple(random_value(rng, c) for c in abi_type.components)
    base, sub = abi_type.base, abi_type.sub
    if base == "uint":
        return rng.randrange(2**sub)
    if base == "int":
        return rng.randrange(-(2 ** (sub - 1)), 2 ** (sub - 1))
    if base == "bool":
        return rng.random() < 0.5
    if base == "address":
        return rng.randbytes(20)
    if base == "bytes":
        return rng.randbytes(sub if sub else rng.choice([0, 1, 31, 32, 33, 70]))
    assert base == "string"
    return "".join(rng.choice("aé€𝄞") for _ in range(rng.randint(0, 12)))


def random_case(rng: random.Random, bases: list[str], depth: int = 4) -> tuple[list[str], bytes]:
    """Random types (1-3 of them) and the eth_abi encoding of random values of them."""
    types = [random_type(rng, depth, bases) for _ in range(rng.randint(1, 3))]
    values = [random_value(rng, grammar.parse(t)) for t in types]
    return types, encode(types, values)


def round_trips(types: list[str], data: bytes) -> bool:
    """eth_abi's own test of canonical data: decoding and encoding again gives the same bytes."""
    try:
        return encode(types, list(decode(types, data))) == data
    except Exception:
        return False


def refused(types: list[str], data: bytes) -> bool:
    """True if the walk refuses `data` as `types`."""
    try:
        check_canonical(types, data)
    except NonCanonicalAbi:
        return True
    return False


def leaves(value: Any) -> int:
    """The numbers in a decoded value."""
    return sum(leaves(v) for v in value) if isinstance(value, tuple) else 1


def walk_seconds(types: list[str], data: bytes) -> float:
    """Seconds the walk takes on `data` (refused or not)."""
    started = time.perf_counter()
    refused(types, data)
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------ fuzz


def test_walk_acceptsEveryEncodingOfRandomTypesAndValues() -> None:
    rng = random.Random(20240607)
    dynamic = 0
    for _ in range(2000):
        types, data = random_case(rng, _ALL_BASES)
        try:
            check_canonical(types, data)
        except NonCanonicalAbi as exc:
            pytest.fail(f"refused eth_abi's encoding of {types}: {exc}\n{data.hex()}")
        dynamic += any(grammar.parse(t).is_dynamic for t in types)
    assert dynamic > 700  # the cases did exercise offsets, not only static heads


def test_walk_agreesWithTheRoundTripOnRandomWordMutations() -> None:
    """Over types whose every word is a valid value (no padding, ranges or UTF-8), the layout is all that
    can be wrong: the walk must accept exactly what eth_abi's decode/encode round trip gives back unchanged."""
    rng = random.Random(7)
    outcomes = {True: 0, False: 0}  # of the word mutations: accepted (a value changed), refused (the layout did)
    for _ in range(1500):
        types, data = random_case(rng, ["uint256", "bytes32"], depth=3)
        if not 32 <= len(data) <= 1024:
            continue
        count = len(data) // 32
        mutated = bytearray(data)
        at = 32 * rng.randrange(count)
        old = int.from_bytes(data[at : at + 32], "big")
        new = rng.choice(
            [
                old + 32,
                max(old - 32, 0),
                old + 1,
                0,
                2**256 - 1,
                len(data),
                int.from_bytes(data[(i := 32 * rng.randrange(count)) : i + 32], "big"),  # another word: aliasing
            ]
        )
        mutated[at : at + 32] = (new % 2**256).to_bytes(32, "big")
        for candidate in (bytes(mutated), data[:-32], data + bytes(32), data + b"\x00"):
            walked = not refused(types, candidate)
            assert walked == round_trips(types, candidate), (types, data.hex(), candidate.hex())
        outcomes[not refused(types, bytes(mutated))] += 1
    assert min(outcomes.values()) > 300, outcomes


# ------------------------------------------------------------------------------ hand-made layouts


@pytest.mark.parametrize(
    ("types", "data", "reason"),
    [
        # Two strings whose offsets alias one tail.
        (["string", "string"], words(64, 64, 1) + b"a".ljust(32, b"\0"), "offset at byte 32 is 64, the canonical one is 128"),
        # A gap between the head and the first tail.
        (["bytes"], words(64, 0, 0), "offset at byte 0 is 64, the canonical one is 32"),
        # A first tail inside the head.
        (["uint256", "bytes"], words(1, 32, 0), "offset at byte 32 is 32, the canonical one is 64"),
        # Tails out of order: the second value's tail first.
        (["bytes", "bytes"], words(96, 64, 0, 0), "offset at byte 0 is 96, the canonical one is 64"),
        # An offset past the end.
        (["bytes"], words(2**255, 0), "offset at byte 0 is beyond the end, the canonical one is 32"),
        # A byte string longer than what is left.
        (["bytes"], words(32, 2**200), "byte string at byte 64 needs more bytes, 0 are left"),
        (["bytes"], words(32, 2**32), "byte string at byte 64 needs 4294967296 bytes, 0 are left"),
        (["string"], words(32, 33) + bytes(32), "byte string at byte 64 needs 64 bytes, 32 are left"),
        # An array length no data could hold, static and dynamic items.
        (["uint256[]"], words(32, 2**64, 1), "array at byte 64 needs more bytes, 32 are left"),
        (["uint256[]"], words(32, 2**20, 1), "array at byte 64 needs 33554432 bytes, 32 are left"),
        (["string[]"], words(32, 3, 96, 128), "head at byte 64 needs 96 bytes, 64 are left"),
        # A fixed array of dynamic items whose offsets alias.
        (["bytes[2]"], words(32, 64, 64, 0), "offset at byte 64 is 64, the canonical one is 96"),
        # Missing and trailing bytes.
        (["uint256", "uint256"], words(1), "head at byte 0 needs 64 bytes, 32 are left"),
        (["uint256[]"], words(32, 1), "array at byte 64 needs 32 bytes, 0 are left"),
        (["uint256"], words(1) + b"\0", "1 bytes follow the end of the encoding at byte 32"),
        (["bytes"], words(32, 0, 0), "32 bytes follow the end of the encoding at byte 64"),
        (["bytes"], b"", "head at byte 0 needs 32 bytes, 0 are left"),
        (["uint256[]"], words(32), "data ends inside the word at byte 32"),
    ],
)
def test_walk_refusesNonCanonicalLayoutsWithAShortReason(types: list[str], data: bytes, reason: str) -> None:
    with pytest.raises(NonCanonicalAbi) as refusal:
        check_canonical(types, data)
    assert str(refusal.value) == reason


def test_walk_refusesOffsetsAliasedInsideNestedTuplesAndArrays() -> None:
    types = ["(uint8,string[])[]"]
    data = encode(types, [[(1, ["ab", "c"]), (2, [])]])
    check_canonical(types, data)
    # The first tuple's string[] holds two offsets (64, 128) relative to its items: point both at the first string.
    second = words(128)
    assert data.count(second) == 1
    with pytest.raises(NonCanonicalAbi, match="canonical one is 128"):
        check_canonical(types, data.replace(second, words(64)))


# -------------------------------------------------------------------------------------- bombs


@pytest.mark.parametrize("levels", [2, 3, MAX_TYPE_DEPTH])
def test_pointerBomb_isRefusedInWellUnder50ms(levels: int) -> None:
    types = ["uint256" + "[]" * levels]
    bomb = pointer_bomb(levels)
    assert BOMB_BYTES - 32 * levels < len(bomb) <= BOMB_BYTES
    if levels <= 3:  # the bomb is what it claims: eth_abi follows its pointers, a small one decodes to n**levels elements
        n = (2048 // 32 - 1) // levels - 1
        assert leaves(decode(types, pointer_bomb(levels, 2048))) == n**levels
    assert refused(types, bomb)
    assert min(walk_seconds(types, bomb) for _ in range(5)) < 0.005
    assert walk_seconds(types, bomb) < 0.05


def test_tupleBomb_isRefused() -> None:
    # Every outer offset aliases one tuple, whose two arrays alias one tail.
    inner = words(64, 64, 2, 5, 6)  # (uint256[],uint256[]) with both offsets at one array
    outer = words(32, 200) + words(*[32 * 200] * 200) + inner
    types = ["(uint256[],uint256[])[]"]
    assert decode(types, outer) == ((((5, 6), (5, 6)),) * 200,)  # 6.5 KB in, 800 numbers out
    assert refused(types, outer)


@pytest.mark.parametrize(
    ("types", "values"),
    [
        (["bytes[]"], [[b""] * 1535]),  # the most dynamic elements 96 KB can hold: 64 bytes each
        (["uint256[][][]"], [[[[]] * 766] * 2]),
        (["(uint8,string)[]"], [[(1, "")] * 767]),
    ],
)
def test_walk_ofTheLargestValidEncodingsIsLinear(types: list[str], values: list[Any]) -> None:
    data = encode(types, values)
    assert len(data) <= BOMB_BYTES
    check_canonical(types, data)
    assert walk_seconds(types, data) < 0.05


def test_walk_refusesTypesOverTheLimits() -> None:
    with pytest.raises(ValueError, match="over the limit of 8"):
        check_canonical(["uint256" + "[]" * 9], words(32, 0))
    with pytest.raises(ValueError, match=f"over the limit of {MAX_TYPE_CHARS}"):
        check_canonical(["(" + ",".join(["uint256"] * 40) + ")"], bytes(32 * 40))


# ------------------------------------------------------------------------------- manifest types


@pytest.mark.parametrize(
    ("type_str", "depth"),
    [
        ("uint256", 0),
        ("uint256[]", 1),
        ("uint256[2][]", 2),
        ("(uint256,bool)", 1),
        ("(uint256[],string)[]", 3),
        ("((uint256)[],(bytes[][],uint8))", 4),
        ("(" * 20, 20),  # unbalanced, counted anyway: the parser would recurse on it
        ("uint256" + "[]" * 500, 500),
    ],
)
def test_nestingDepth_countsTuplesAndArrayDimensions(type_str: str, depth: int) -> None:
    assert nesting_depth(type_str) == depth


def _folder(tmp_path: Path, outputs: str) -> Path:
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "main.py").write_text("def run(ctx):\n    return 1\n")
    (folder / "template.toml").write_text(f'name = "demo"\nversion = "1"\nentry = "main:run"\ninputs = []\noutputs = {outputs}\n')
    return folder


@pytest.mark.parametrize(
    ("type_str", "message"),
    [
        ("uint256" + "[]" * 9, r"'uint256(\[\]){9}' nests 9 levels of arrays and tuples, over the limit of 8"),
        ("(" * 9 + "uint256" + ")" * 9, r"nests 9 levels of arrays and tuples, over the limit of 8"),
        ("((uint256[2][])[])[][2][][]", r"nests 9 levels"),
        ("uint256" + "[]" * 800, r"'uint256\[\]\[\].*\.\.\.' is 1607 characters long, over the limit of 256"),
        ("(" * 600 + "uint256" + ")" * 600, r"characters long, over the limit of 256"),
        ("(" + ",".join(["uint"] * 33) + ")", r"is 265 characters long, over the limit of 256"),  # counted as `uint256`
        ("()", "not an ABI type"),
        ("uint256[0]", "not an ABI type"),
        ("(uint256[0],bool)", "not an ABI type"),
    ],
)
def test_manifest_refusesTypesTooLongTooDeepOrEmpty(tmp_path: Path, type_str: str, message: str) -> None:
    folder = _folder(tmp_path, f'["uint256", "{type_str}"]')
    with pytest.raises(ManifestError, match=message) as refusal:
        load_template(folder)
    assert str(refusal.value).startswith(f"{folder / 'template.toml'}: outputs[1]: ")
    assert "\n" not in str(refusal.value) and len(str(refusal.value)) < 400


@pytest.mark.parametrize(
    "type_str",
    [
        "uint256" + "[]" * MAX_TYPE_DEPTH,
        "(" * 7 + "uint256[]" + ")" * 7,
        "(" + ",".join(["uint256[]"] * 25) + ")",  # wide is fine: 2 levels
        "uint[]",
    ],
)
def test_manifest_acceptsTypesWithinTheLimits(tmp_path: Path, type_str: str) -> None:
    template = load_template(_folder(tmp_path, f'["{type_str}"]'))
    assert template.outputs == (grammar.normalize(type_str),)
