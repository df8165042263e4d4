"""Fetch a JSON document and return one number in it as a fixed-point integer.

The generic "HTTP oracle": a contract names a URL, a path such as `data.items[0].price` and
a number of decimals, and gets back `int256(value * 10**decimals)`, signed by the enclave.
Use it for any public JSON API (prices, scores, weather, rates) without writing a template.

Numbers are handled exactly (`decimal.Decimal`, never float), so `"0.1"` with 18 decimals is
exactly `10**17`. Digits beyond `decimals` are truncated toward zero.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from coprocessor.sdk import Context, InvalidInput
from coprocessor.values import loads_exact, parse_path, scale, select, to_decimal

MAX_PATH_CHARS = 256
INT256_MIN, INT256_MAX = -(2**255), 2**255 - 1


class UpstreamError(Exception):
    """The fetched document is not usable JSON (status TemplateError)."""


def run(ctx: Context, url: str, path: str, decimals: int) -> int:
    """Fetches `url`, takes the value at `path` and returns it scaled by `10**decimals`."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise InvalidInput(f"url must start with http:// or https://, got {url[:60]!r}")
    if len(path) > MAX_PATH_CHARS:
        raise InvalidInput(f"path is longer than {MAX_PATH_CHARS} characters")
    try:
        steps = parse_path(path)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    response = ctx.http.get(url, headers={"Accept": "application/json"}).raise_for_status()
    try:
        document = loads_exact(response.body)
    except ValueError as exc:
        raise UpstreamError(f"response from {response.url} is {exc}") from None
    try:
        found = select(document, steps)
    except LookupError as exc:
        raise InvalidInput(f"path: {exc}") from None
    try:
        number = to_decimal(found)
    except ValueError as exc:
        raise InvalidInput(f"value at path is {exc}") from None
    try:
        value = scale(number, decimals)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not INT256_MIN <= value <= INT256_MAX:
        raise InvalidInput(f"{number} with {decimals} decimals does not fit in int256")
    ctx.log(f"json-http: {path or '(document)'} at {response.url} -> {value} ({decimals} decimals)")
    return value
