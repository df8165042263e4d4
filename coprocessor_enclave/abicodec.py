"""A small strict ABI codec for template inputs and outputs in the job process.

Every job is a fresh process forked from its template's zygote, and what a fork costs grows
with the memory the zygote holds: eth_abi brings eth_utils, pydantic and ~380 modules (25 MB of
heap), which made each job's fork, copy-on-write faults and exit cost three times a small
zygote's. This codec covers the types templates declare (`uint<M>`, `int<M>`, `address`,
`bool`, `bytes<M>`, `bytes`, `string`, tuples and arrays of them) with eth_abi's strict rules:
the same values decode (arrays and tuples as tuples, addresses as lower-case hex), the same values
encode, and the same inputs are refused. `tests/test_abicodec.py` checks it against eth_abi.
Types it does not cover (`fixed`, `ufixed`, `function`) are left to eth_abi (`covers`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_WORD = 32
_BASE = re.compile(r"(u?int)([0-9]*)|address|bool|bytes([0-9]*)|string")
_ARRAY = re.compile(r"\[(0|[1-9][0-9]*)?\]\Z")


class AbiError(ValueError):
    """Data that does not decode, or a value that does not encode, as its type; the message says which."""


def keccak(data: bytes) -> bytes:
    """keccak256, from pycryptodome alone (eth_utils' wraps the same)."""
    digest: bytes = _keccak_module().new(data=data, digest_bits=256).digest()
    return digest


@functools.cache
def _keccak_module() -> Any:
    # Imported on first use, never by a job process for the codec: pycryptodome loads its C code
    # through cffi, which imports `threading`, whose after-fork handler alone costs every child of a
    # zygote that imported it ~120 copy-on-write page faults.
    from Crypto.Hash import keccak as module

    return module


# ---------------------------------------------------------------------------- types


@dataclass(frozen=True)
class _Type:
    kind: str  # uint, int, address, bool, bytesN, bytes, string, tuple, array
    bits: int = 0  # uint/int: M; bytesN: N
    item: _Type | None = None  # array
    length: int | None = None  # array: None when dynamic
    components: tuple[_Type, ...] = ()  # tuple
    text: str = ""

    @property
    def dynamic(self) -> bool:
        if self.kind in ("bytes", "string"):
            return True
        if self.kind == "array":
            return self.length is None or self.item.dynamic  # type: ignore[union-attr]
        if self.kind == "tuple":
            return any(c.dynamic for c in self.components)
        return False

    @property
    def head_size(self) -> int:
        """Bytes this type takes where it is placed: one offset word if dynamic, else its whole encoding."""
        if self.dynamic:
            return _WORD
        if self.kind == "array":
            return self.length * self.item.head_size  # type: ignore[operator,union-attr]
        if self.kind == "tuple":
            return sum(c.head_size for c in self.components)
        return _WORD


def _split_components(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


@functools.lru_cache(maxsize=256)
def parse(text: str) -> _Type | None:
    """The type tree of `text`, or None for a type this codec leaves to eth_abi (or does not know)."""
    match = _ARRAY.search(text)
    if match:
        item = parse(text[: match.start()])
        if item is None:
            return None
        length = int(match.group(1)) if match.group(1) else None
        if length is not None and length == 0:
            return None
        return _Type("array", item=item, length=length, text=text)
    if text.startswith("(") and text.endswith(")"):
        inner = text[1:-1]
        if not inner:
            return None  # `()`: eth_abi's grammar refuses it
        components = tuple(parse(part) for part in _split_components(inner))
        if any(c is None for c in components):
            return None
        return _Type("tuple", components=components, text=text)  # type: ignore[arg-type]
    base = _BASE.fullmatch(text)
    if base is None:
        return None  # fixed, ufixed, function, or not a type: eth_abi decides
    if base.group(1):
        bits = int(base.group(2) or 256)
        if bits % 8 or not 8 <= bits <= 256 or (base.group(2) or "").startswith("0"):
            return None
        return _Type(base.group(1), bits=bits, text=text)
    if text.startswith("bytes") and base.group(3):
        size = int(base.group(3))
        if not 1 <= size <= 32 or base.group(3).startswith("0"):
            return None
        return _Type("bytesN", bits=size, text=text)
    return _Type(text, text=text)


def covers(types: Sequence[str]) -> bool:
    """Whether every one of `types` is one this codec handles."""
    return all(parse(t) is not None for t in types)


def _tuple_of(types: Sequence[str]) -> _Type:
    parsed = tuple(parse(t) for t in types)
    if any(p is None for p in parsed):
        raise AbiError(f"unsupported type among ({','.join(types)})")
    return _Type("tuple", components=parsed, text="(" + ",".join(types) + ")")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- decoding


def decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """The values `data` holds as `types`, by eth_abi's strict rules; AbiError otherwise."""
    return _decode(_tuple_of(types), memoryview(bytes(data)), 0)  # type: ignore[no-any-return]


def _word(data: memoryview, at: int) -> bytes:
    if at < 0 or at + _WORD > len(data):
        raise AbiError(f"data too short: a word at byte {at}, {len(data)} bytes in all")
    return bytes(data[at : at + _WORD])


def _head_words(t: _Type) -> int:
    """Words eth_abi counts for a component when it checks where pointers may point: a static sized
    array counts its length, anything else one (its check is looser than the layout; we match it)."""
    return t.length if t.kind == "array" and not t.dynamic else 1  # type: ignore[return-value]


def _sequence(components: Sequence[_Type], data: memoryview, at: int) -> tuple[Any, ...]:
    """A tuple's (or array's) values starting at `at`: pointers must land past its head, inside the data."""
    end_of_head = at + _WORD * sum(_head_words(c) for c in components)
    values, head = [], at
    for component in components:
        if component.dynamic:
            target = at + int.from_bytes(_word(data, head), "big")
            if not end_of_head <= target < len(data):
                raise AbiError(f"pointer at byte {head} points outside its value")
            values.append(_decode(component, data, target))
        else:
            values.append(_decode(component, data, head))
        head += component.head_size
    return tuple(values)


def _decode(t: _Type, data: memoryview, at: int) -> Any:
    kind = t.kind
    if kind == "tuple":
        return _sequence(t.components, data, at)
    if kind == "array":
        item = t.item
        assert item is not None
        if t.length is None:
            count = int.from_bytes(_word(data, at), "big")
            at += _WORD
            if count * item.head_size > len(data) - at:
                raise AbiError(f"array of {count} items at byte {at - _WORD} is longer than the data")
        else:
            count = t.length
        return _sequence((item,) * count, data, at)
    if kind in ("bytes", "string"):
        size = int.from_bytes(_word(data, at), "big")
        start = at + _WORD
        padded = size + (-size % _WORD)
        if size > len(data) or start + padded > len(data):
            raise AbiError(f"{kind} of {size} bytes at byte {at} runs past the data")
        raw = bytes(data[start : start + size])
        if any(data[start + size : start + padded]):
            raise AbiError(f"{kind} at byte {at}: padding bytes are not zero")
        if kind == "bytes":
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AbiError(f"string at byte {at} is not UTF-8: {exc}") from None
    word = _word(data, at)
    if kind == "uint":
        pad = (256 - t.bits) // 8
        if any(word[:pad]):
            raise AbiError(f"{t.text} at byte {at}: padding bytes are not zero")
        return int.from_bytes(word, "big")
    if kind == "int":
        pad = (256 - t.bits) // 8
        value = int.from_bytes(word[pad:], "big", signed=True)
        if word[:pad] != (b"\xff" if value < 0 else b"\x00") * pad:
            raise AbiError(f"{t.text} at byte {at}: padding bytes do not extend the sign")
        return value
    if kind == "address":
        if any(word[:12]):
            raise AbiError(f"address at byte {at}: padding bytes are not zero")
        return "0x" + word[12:].hex()  # lower case, as eth_abi 6 decodes addresses
    if kind == "bool":
        if any(word[:31]) or word[31] > 1:
            raise AbiError(f"bool at byte {at} is neither 0 nor 1")
        return word[31] == 1
    if kind == "bytesN":
        if any(word[t.bits :]):
            raise AbiError(f"{t.text} at byte {at}: padding bytes are not zero")
        return word[: t.bits]
    raise AbiError(f"cannot decode {t.text}")


# ---------------------------------------------------------------------------- encoding


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """`values` ABI-encoded as `types`, accepting what eth_abi accepts; AbiError otherwise."""
    return _encode(_tuple_of(types), values)


def _is_sequence(value: Any) -> bool:
    """eth_utils' `is_list_like`: any sequence but text and bytes."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _encode(t: _Type, value: Any) -> bytes:
    kind = t.kind
    if kind == "tuple" or kind == "array":
        if not _is_sequence(value):
            raise AbiError(f"{t.text} takes a list or tuple, not {type(value).__name__}")
        if kind == "tuple":
            if len(value) != len(t.components):
                raise AbiError(f"{t.text} takes {len(t.components)} values, got {len(value)}")
            components = t.components
        else:
            if t.length is not None and len(value) != t.length:
                raise AbiError(f"{t.text} takes {t.length} items, got {len(value)}")
            # Walked before it is kept, as eth_abi's validation walks it: a sequence whose iteration never
            # ends runs into the job's time limit, not its memory, and `len()` is never trusted.
            count = sum(1 for _ in value)
            value = list(value)
            if len(value) != count or (t.length is not None and count != t.length):
                raise AbiError(f"{t.text}: the sequence changed while it was encoded")
            components = (t.item,) * count  # type: ignore[assignment]
        heads, tails, tail_at = [], [], sum(c.head_size for c in components)
        for component, item in zip(components, value, strict=False):  # lengths checked above; a lying sequence stops early
            encoded = _encode(component, item)
            if component.dynamic:
                heads.append(tail_at.to_bytes(_WORD, "big"))
                tails.append(encoded)
                tail_at += len(encoded)
            else:
                heads.append(encoded)
        body = b"".join(heads) + b"".join(tails)
        if kind == "array" and t.length is None:
            return len(value).to_bytes(_WORD, "big") + body
        return body
    if kind in ("uint", "int"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise AbiError(f"{t.text} takes an int, not {type(value).__name__}")
        low, high = (0, 1 << t.bits) if kind == "uint" else (-(1 << (t.bits - 1)), 1 << (t.bits - 1))
        if not low <= value < high:
            raise AbiError(f"{value} is out of range for {t.text}")
        number = int.__index__(value)  # a subclass's own to_bytes must not write the word
        return int.to_bytes(number, _WORD, "big", signed=kind == "int")
    if kind == "bool":
        if not isinstance(value, bool):
            raise AbiError(f"bool takes True or False, not {type(value).__name__}")
        return (1 if value else 0).to_bytes(_WORD, "big")
    if kind == "address":
        return b"\x00" * 12 + _address_bytes(value)
    if kind in ("bytes", "bytesN"):
        if not isinstance(value, (bytes, bytearray)):
            raise AbiError(f"{t.text} takes bytes, not {type(value).__name__}")
        raw = memoryview(value).tobytes()  # its buffer, not a subclass's __bytes__
        if kind == "bytesN":
            if len(raw) > t.bits:
                raise AbiError(f"{len(raw)} bytes do not fit {t.text}")
            return raw + b"\x00" * (_WORD - len(raw))
        return _padded(raw)
    if kind == "string":
        if not isinstance(value, str):
            raise AbiError(f"string takes a str, not {type(value).__name__}")
        return _padded(str.encode(value, "utf-8"))  # not a subclass's own encode
    raise AbiError(f"cannot encode {t.text}")


def _padded(raw: bytes) -> bytes:
    return len(raw).to_bytes(_WORD, "big") + raw + b"\x00" * (-len(raw) % _WORD)


_HEX_ADDRESS = re.compile(r"(0x)?[0-9a-f]{40}", re.IGNORECASE | re.ASCII)


def _address_bytes(value: Any) -> bytes:
    """What eth_abi's address encoder takes: 20 bytes, or 40 hex digits (0x optional, any case, no checksum check)."""
    if isinstance(value, (bytes, bytearray)):
        raw = memoryview(value).tobytes()
        if len(raw) != 20:
            raise AbiError(f"an address is 20 bytes, got {len(raw)}")
        return raw
    if not isinstance(value, str) or not _HEX_ADDRESS.fullmatch(value):
        raise AbiError(f"an address is 40 hex digits or 20 bytes; got {value!r}"[:200])
    return bytes.fromhex(str.__str__(value)[-40:])
