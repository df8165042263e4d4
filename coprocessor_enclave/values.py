"""Helpers for template code that turns fetched data into ABI values: JSON paths, exact decimals, medians.

Templates import them like the rest of the SDK (`from coprocessor.values import ...`). They
raise `ValueError` (or `LookupError` for a path that leads nowhere); each template decides
whether that is the requester's fault (`InvalidInput`) or a source to skip.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_DIGITS = 200  # significant digits a number may have; 256-bit integers need at most 78

# One path step: `name` (after a dot unless first), `[12]` or `["any.key"]`.
_STEP = re.compile(r'(?P<dot>\.)?(?:(?P<name>[^.\[\]"]+)|\[(?P<index>[0-9]{1,9})\]|\["(?P<quoted>[^"]*)"\])')
# A number written as a JSON string: optional sign, digits with an optional fraction, optional exponent.
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,6})?")


def parse_path(path: str) -> tuple[str | int, ...]:
    """`'data.items[0].price'` -> `('data', 'items', 0, 'price')`; `''` -> `()` (the whole document).

    Keys are dotted names, or `["quoted"]` for keys containing dots or brackets; `[N]` indexes a list.
    """
    steps: list[str | int] = []
    position = 0
    while position < len(path):
        match = _STEP.match(path, position)
        dotted = match is not None and match["dot"] is not None
        # A name follows a dot, except the first; brackets never do.
        if match is None or dotted != (match["name"] is not None and position > 0):
            raise ValueError(f"path {path!r}: cannot parse at character {position}")
        if match["name"] is not None:
            steps.append(match["name"])
        elif match["index"] is not None:
            steps.append(int(match["index"]))
        else:
            steps.append(match["quoted"])
        position = match.end()
    return tuple(steps)


def select(document: Any, steps: tuple[str | int, ...]) -> Any:
    """The value `steps` lead to in `document`; LookupError naming the first step that matches nothing."""
    value, walked = document, ""
    for step in steps:
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value, walked = value[step], f"{walked}[{step}]"
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value, walked = value[step], f"{walked}.{step}" if walked else step
        else:
            found = type(value).__name__ if not isinstance(value, list) else f"list of {len(value)}"
            raise LookupError(f"nothing at {step!r} under {walked or 'the top level'} (found {found})")
    return value


def loads_exact(body: bytes | str) -> Any:
    """JSON with every number as a `Decimal` (never a float); `NaN`/`Infinity` kept for `to_decimal` to refuse."""
    try:
        return json.loads(body, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"not JSON: {exc}") from None


def to_decimal(value: Any) -> Decimal:
    """A JSON number, or a string holding one, as a finite Decimal; ValueError for anything else."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:  # bool, None, list, dict, and strings like "NaN", "1,234", "12 USD"
        raise ValueError(f"not a number: {json.dumps(value, default=str)[:60]}")
    if not number.is_finite():
        raise ValueError(f"not a finite number: {number}")
    return number


def scale(number: Decimal, decimals: int) -> int:
    """`number * 10**decimals` as an integer, truncated toward zero, exactly.

    ValueError beyond `MAX_DIGITS` significant digits or 78 integer digits (more than 256 bits
    could hold); callers check the exact range of their ABI type.
    """
    sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite number: {number}")
    if len(digits) > MAX_DIGITS:
        raise ValueError(f"number has more than {MAX_DIGITS} significant digits")
    shift = exponent + decimals
    coefficient = int("".join(map(str, digits)))
    if coefficient == 0 or -shift > len(digits):
        return 0  # every significant digit is below 10**-decimals
    if len(digits) + shift > 78:
        raise ValueError(f"{number} with {decimals} decimals does not fit in 256 bits")
    scaled: int = coefficient * 10**shift if shift >= 0 else coefficient // 10**-shift
    return -scaled if sign else scaled


def median(values: list[int]) -> int:
    """The median; for an even count, the floor of the mean of the two middle values. Raises ValueError when empty."""
    if not values:
        raise ValueError("the median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2
