"""Linear checks of untrusted ABI data and types, before anything decodes them.

A decoder follows offsets wherever they point, so data whose offsets all alias one inner
array decodes to far more elements than it has bytes (`uint256[][][]` in 96 KB: 10^9).
`check_canonical` walks the layout once instead: in the canonical encoding every dynamic
value's tail starts exactly where the previous one ended, so each offset has one right value
and each element consumes bytes of its own. The walk's work is O(len(data)); values
(integer ranges, padding, UTF-8) are left to a decode/encode round trip, bounded once the
layout is known to be canonical.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_abi import grammar

from .errors import CoprocessorError

MAX_TYPE_CHARS = 256  # a declared type's length, after normalization (`uint` -> `uint256`)
MAX_TYPE_DEPTH = 8  # levels of tuples and array dimensions in one declared type
_WORD = 32


class NonCanonicalAbi(CoprocessorError, ValueError):
    """Data is not the canonical ABI layout of its types; the message says where."""


@dataclass(frozen=True)
class _Static:
    """A static type: `size` bytes in place, no offsets."""

    size: int


@dataclass(frozen=True)
class _Bytes:
    """`bytes` or `string`: a length word, then the data padded to whole words."""


@dataclass(frozen=True)
class _Array:
    """A dynamic array (`count` None: a length word first) or a fixed array of dynamic items."""

    item: _Layout
    count: int | None


@dataclass(frozen=True)
class _Tuple:
    """A tuple with at least one dynamic component (or the top-level list of types)."""

    parts: tuple[_Layout, ...]


_Layout = _Static | _Bytes | _Array | _Tuple


def nesting_depth(type_str: str) -> int:
    """Levels of tuples and array dimensions in `type_str`, counted without parsing (the parser recurses)."""
    outer: list[int] = []  # per open tuple: the deepest component closed in it so far
    current = deepest = 0  # depth of the component being read
    for char in type_str:
        if char == "(":
            outer.append(0)
            current = 0
        elif char == ",":
            if outer:
                outer[-1] = max(outer[-1], current)
            current = 0
        elif char == ")":
            current = 1 + max(outer.pop() if outer else 0, current)
        elif char == "[":
            current += 1
        deepest = max(deepest, len(outer) + current)
    return deepest


def check_type(type_str: str) -> None:
    """Raises ValueError when `type_str` is longer or nested deeper than the limits."""
    if len(type_str) > MAX_TYPE_CHARS:
        raise ValueError(f"is {len(type_str)} characters long, over the limit of {MAX_TYPE_CHARS}")
    depth = nesting_depth(type_str)
    if depth > MAX_TYPE_DEPTH:
        raise ValueError(f"nests {depth} levels of arrays and tuples, over the limit of {MAX_TYPE_DEPTH}")


def _static_size(abi_type: grammar.ABIType) -> int:
    """Bytes a static type's encoding takes."""
    if abi_type.arrlist:
        return int(abi_type.arrlist[-1][0]) * _static_size(abi_type.item_type)
    if isinstance(abi_type, grammar.TupleType):
        return sum(_static_size(c) for c in abi_type.components)
    return _WORD  # every basic static type is one word


def _compile(abi_type: grammar.ABIType) -> _Layout:
    """The layout of a parsed type: recursion as deep as the type's nesting, which `check_type` caps."""
    if not abi_type.is_dynamic:
        size = _static_size(abi_type)
        if size <= 0:  # each element must consume bytes, or a count alone could ask for unbounded work
            raise ValueError(f"{abi_type.to_type_str()} has zero size")
        return _Static(size)
    if abi_type.arrlist:
        dimension = abi_type.arrlist[-1]
        return _Array(_compile(abi_type.item_type), int(dimension[0]) if dimension else None)
    if isinstance(abi_type, grammar.TupleType):
        return _Tuple(tuple(_compile(c) for c in abi_type.components))
    return _Bytes()


@functools.lru_cache(maxsize=256)
def _layout(types: tuple[str, ...]) -> _Tuple:
    """The layout of a list of types, encoded as one tuple."""
    for type_str in types:
        check_type(type_str)
    return _Tuple(tuple(_compile(grammar.parse(t)) for t in types))


def _head(layout: _Layout) -> int:
    """Bytes a value takes in its container's head: itself if static, else its offset."""
    return layout.size if isinstance(layout, _Static) else _WORD


def _word(data: bytes, at: int) -> int:
    """The word at byte `at` as an unsigned integer."""
    if at + _WORD > len(data):
        raise NonCanonicalAbi(f"data ends inside the word at byte {at}")
    return int.from_bytes(data[at : at + _WORD], "big")


def _fits(data: bytes, start: int, size: int, what: str) -> int:
    """`start + size`, if that many bytes are left from `start`."""
    if size > len(data) - start:
        shown = size if size.bit_length() <= 64 else "more"
        raise NonCanonicalAbi(f"{what} at byte {start} needs {shown} bytes, {len(data) - start} are left")
    return start + size


def _end(layout: _Layout, data: bytes, start: int) -> int:
    """Where the canonical encoding of dynamic `layout`, starting at `start`, ends."""
    if isinstance(layout, _Bytes):
        length = _word(data, start)
        return _fits(data, start + _WORD, -(-length // _WORD) * _WORD, "byte string")
    if isinstance(layout, _Array):
        count = layout.count
        if count is None:
            count = _word(data, start)
            start += _WORD
        if isinstance(layout.item, _Static):  # items in place, nothing to follow
            return _fits(data, start, count * layout.item.size, "array")
        head_end = _fits(data, start, count * _WORD, "head")  # bounds the count before anything counts to it
        return _container(itertools.repeat(layout.item, count), head_end - start, data, start)
    if isinstance(layout, _Tuple):
        return _container(layout.parts, sum(_head(p) for p in layout.parts), data, start)
    raise AssertionError(f"static layout {layout} has no tail")


def _container(parts: Iterable[_Layout], head_size: int, data: bytes, start: int) -> int:
    """The end of a head of `head_size` bytes at `start` and the tails it points to, in order."""
    cursor = _fits(data, start, head_size, "head")  # before the loop: the loop is as long as the head
    position = start
    for part in parts:
        if isinstance(part, _Static):
            position += part.size
            continue
        offset = _word(data, position)
        if offset != cursor - start:
            shown = offset if offset <= len(data) else "beyond the end"
            raise NonCanonicalAbi(f"offset at byte {position} is {shown}, the canonical one is {cursor - start}")
        position += _WORD
        cursor = _end(part, data, cursor)
    return cursor


def check_canonical(types: Sequence[str], data: bytes) -> None:
    """Raises NonCanonicalAbi unless `data` has the canonical layout of normalized ABI `types`.

    Offsets must point exactly where the previous tail ended (the first right after the head),
    lengths must fit the bytes left, and nothing may follow the end. Work is linear in
    `len(data)`; raises ValueError for types over the limits of `check_type`.
    """
    end = _end(_layout(tuple(types)), data, 0)
    if end != len(data):
        raise NonCanonicalAbi(f"{len(data) - end} bytes follow the end of the encoding at byte {end}")
