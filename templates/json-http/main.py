"""Fetch a JSON document and return one number in it as a fixed-point integer.

The generic "HTTP oracle": a contract names a URL, a path such as `data.items[0].price` and
a number of decimals, and gets back `int256(value * 10**decimals)`, signed by the enclave.
Use it for any public JSON API (prices, scores, weather, rates) without writing a template.

Numbers are handled exactly (`decimal.Decimal`, never float), so `"0.1"` with 18 decimals is
exactly `10**17`. Digits beyond `decimals` are truncated toward zero.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from coprocessor.sdk import Context, InvalidInput

MAX_PATH_CHARS = 256
MAX_DIGITS = 200  # significant digits a number may have; int256 needs at most 78
INT256_MIN, INT256_MAX = -(2**255), 2**255 - 1

# One path step: `name` (after a dot unless first), `[12]` or `["any.key"]`.
_STEP = re.compile(r'(?P<dot>\.)?(?:(?P<name>[^.\[\]"]+)|\[(?P<index>[0-9]{1,9})\]|\["(?P<quoted>[^"]*)"\])')
# A number written as a JSON string: optional sign, digits with an optional fraction, optional exponent.
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,6})?")


class UpstreamError(Exception):
    """The fetched document is not usable JSON (status TemplateError)."""


def parse_path(path: str) -> list[str | int]:
    """`'data.items[0].price'` -> `['data', 'items', 0, 'price']`; `''` -> `[]` (the whole document).

    Keys are dotted names, or `["quoted"]` for keys containing dots or brackets; `[N]` indexes a list.
    """
    if len(path) > MAX_PATH_CHARS:
        raise InvalidInput(f"path is longer than {MAX_PATH_CHARS} characters")
    steps: list[str | int] = []
    position = 0
    while position < len(path):
        match = _STEP.match(path, position)
        dotted = match is not None and match["dot"] is not None
        # A name follows a dot, except the first; brackets never do.
        if match is None or dotted != (match["name"] is not None and position > 0):
            raise InvalidInput(f"path {path!r}: cannot parse at character {position}")
        if match["name"] is not None:
            steps.append(match["name"])
        elif match["index"] is not None:
            steps.append(int(match["index"]))
        else:
            steps.append(match["quoted"])
        position = match.end()
    return steps


def resolve(document: Any, steps: list[str | int]) -> Any:
    """The value `steps` lead to in `document`; InvalidInput naming the first step that matches nothing."""
    value, walked = document, ""
    for step in steps:
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value, walked = value[step], f"{walked}[{step}]"
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value, walked = value[step], f"{walked}.{step}" if walked else step
        else:
            found = type(value).__name__ if not isinstance(value, list) else f"list of {len(value)}"
            raise InvalidInput(f"path: nothing at {step!r} under {walked or 'the top level'} (found {found})")
    return value


def as_decimal(value: Any) -> Decimal:
    """A JSON number, or a string holding one, as a finite Decimal; InvalidInput for anything else."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:  # bool, None, list, dict, and strings like "NaN", "1,234", "12 USD"
        shown = json.dumps(value, default=str)
        raise InvalidInput(f"value at path is not a number: {shown[:60]}")
    if not number.is_finite():
        raise InvalidInput(f"value at path is not a finite number: {number}")
    return number


def to_fixed(number: Decimal, decimals: int) -> int:
    """`number * 10**decimals`, truncated toward zero, exactly; InvalidInput outside int256."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite numbers only
    if len(digits) > MAX_DIGITS:
        raise InvalidInput(f"number has more than {MAX_DIGITS} significant digits")
    coefficient = int("".join(map(str, digits)))
    shift = exponent + decimals
    if coefficient == 0 or -shift > len(digits):
        return 0  # every significant digit is below 10**-decimals
    if shift >= 0:
        if len(digits) + shift > 78:
            raise InvalidInput(f"{number} with {decimals} decimals does not fit in int256")
        scaled = coefficient * 10**shift
    else:
        scaled = coefficient // 10**-shift
    scaled = -scaled if sign else scaled
    if not INT256_MIN <= scaled <= INT256_MAX:
        raise InvalidInput(f"{number} with {decimals} decimals does not fit in int256")
    return scaled


def _constant(name: str) -> Decimal:
    """JSON's non-standard `NaN`, `Infinity` and `-Infinity`, kept as such for `as_decimal` to refuse."""
    return Decimal(name)


def run(ctx: Context, url: str, path: str, decimals: int) -> int:
    """Fetches `url`, takes the value at `path` and returns it scaled by `10**decimals`."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise InvalidInput(f"url must start with http:// or https://, got {url[:60]!r}")
    steps = parse_path(path)
    response = ctx.http.get(url, headers={"Accept": "application/json"}).raise_for_status()
    try:
        document = json.loads(response.body, parse_float=Decimal, parse_int=Decimal, parse_constant=_constant)
    except (ValueError, InvalidOperation) as exc:
        raise UpstreamError(f"response from {response.url} is not JSON: {exc}") from None
    value = to_fixed(as_decimal(resolve(document, steps)), decimals)
    ctx.log(f"json-http: {path or '(document)'} at {response.url} -> {value} ({decimals} decimals)")
    return value
