"""A price from several independent public APIs, robust against sources that fail or lie.

Every source in the manifest's `[config]` is fetched; a source that fails, times out or answers
something that is not a positive number is skipped (and logged). Of the prices that remain,
those further than `maxDeviationBps` from their median are dropped as outliers, and the median
of the rest is the answer, provided at least `minSources` agree. Use it where one exchange's
API being down, stale or manipulated must not move an on-chain price.

Template bundles are self-contained (a template imports only its own files and the
`coprocessor` package), so the median of `median-price` and the path and number parsing of
`json-http` are repeated here on purpose, in a form that skips a source instead of refusing
the request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from coprocessor.sdk import CapabilityError, Context, InvalidInput

MAX_DECIMALS = 36
MAX_DIGITS = 200
UINT256_MAX = 2**256 - 1

_STEP = re.compile(r'(?P<dot>\.)?(?:(?P<name>[^.\[\]"]+)|\[(?P<index>[0-9]{1,9})\]|\["(?P<quoted>[^"]*)"\])')
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,6})?")


class SourceError(Exception):
    """One source answered something unusable; the source is skipped."""


class ConfigError(Exception):
    """The manifest's `[config]` is malformed (status TemplateError: the template's fault, not the request's)."""


class NotEnoughSources(Exception):
    """Fewer than `minSources` sources answered and agree (status TemplateError)."""


@dataclass(frozen=True)
class Source:
    """A price source from `[config] sources`."""

    name: str
    url: str
    path: tuple[str | int, ...]


def parse_path(path: str) -> tuple[str | int, ...]:
    """`'result.XETHZUSD.c[0]'` -> `('result', 'XETHZUSD', 'c', 0)`; ValueError if it does not parse."""
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


def load_sources(config: dict[str, Any]) -> list[Source]:
    """The sources of `[config]`, checked; ConfigError names the first bad entry."""
    raw = config.get("sources")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("[config] needs at least one [[config.sources]] entry")
    sources = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("name", "url", "path")):
            raise ConfigError(f"[config] sources[{i}] needs string keys name, url and path")
        try:
            path = parse_path(entry["path"])
        except ValueError as exc:
            raise ConfigError(f"[config] sources[{i}]: {exc}") from None
        sources.append(Source(entry["name"], entry["url"], path))
    return sources


def resolve(document: Any, steps: tuple[str | int, ...]) -> Any:
    """The value `steps` lead to in `document`; SourceError if there is none."""
    value = document
    for step in steps:
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            raise SourceError(f"nothing at {step!r} in the answer")
    return value


def to_price(value: Any, decimals: int) -> int:
    """A positive JSON number, or numeric string, × 10**decimals truncated; SourceError otherwise."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = Decimal(value.strip())
    if not isinstance(value, Decimal) or not value.is_finite():
        raise SourceError(f"not a number: {json.dumps(value, default=str)[:60]}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if len(digits) > MAX_DIGITS:
        raise SourceError(f"more than {MAX_DIGITS} significant digits")
    shift = exponent + decimals
    if len(digits) + shift > 78:
        raise SourceError(f"{value} does not fit in uint256")
    coefficient = int("".join(map(str, digits)))
    scaled = 0 if -shift > len(digits) else coefficient * 10**shift if shift >= 0 else coefficient // 10**-shift
    if sign or scaled == 0 or scaled > UINT256_MAX:
        raise SourceError(f"not a positive price at {decimals} decimals: {value}")
    return scaled


def median(values: list[int]) -> int:
    """The median; for an even count, the floor of the mean of the two middle values."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2


def fetch(ctx: Context, source: Source, decimals: int) -> int:
    """One source's price; SourceError or CapabilityError if it has none."""
    response = ctx.http.get(source.url, headers={"Accept": "application/json"}).raise_for_status()
    try:
        document = json.loads(response.body, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal)
    except (ValueError, InvalidOperation) as exc:
        raise SourceError(f"answer is not JSON: {exc}") from None
    return to_price(resolve(document, source.path), decimals)


def run(ctx: Context, max_deviation_bps: int, min_sources: int, decimals: int) -> tuple[int, int]:
    """The median of the sources within `max_deviation_bps` of the median of all answers, and how many those are."""
    sources = load_sources(ctx.config)
    if max_deviation_bps > 10_000:
        raise InvalidInput(f"maxDeviationBps is at most 10000 (100%), got {max_deviation_bps}")
    if not 1 <= min_sources <= len(sources):
        raise InvalidInput(f"minSources must be 1 to {len(sources)} (the configured sources), got {min_sources}")
    if decimals > MAX_DECIMALS:
        raise InvalidInput(f"decimals is at most {MAX_DECIMALS}, got {decimals}")

    prices: dict[str, int] = {}
    for source in sources:
        try:
            prices[source.name] = fetch(ctx, source, decimals)
        except (CapabilityError, SourceError) as exc:
            ctx.log(f"price-aggregate: skipped {source.name}: {type(exc).__name__}: {exc}")
    if len(prices) < min_sources:
        raise NotEnoughSources(f"only {len(prices)} of {len(sources)} sources answered, {min_sources} needed")

    raw = median(list(prices.values()))
    agreeing = {name: p for name, p in prices.items() if abs(p - raw) * 10_000 <= raw * max_deviation_bps}
    for name in sorted(prices.keys() - agreeing.keys()):
        ctx.log(f"price-aggregate: dropped {name}: {prices[name]} is more than {max_deviation_bps} bps from {raw}")
    if len(agreeing) < min_sources:
        raise NotEnoughSources(
            f"only {len(agreeing)} of {len(prices)} answers within {max_deviation_bps} bps of their median, "
            f"{min_sources} needed"
        )
    price = median(list(agreeing.values()))
    ctx.log(f"price-aggregate: {ctx.config.get('pair', 'price')} {price} ({decimals} decimals) from {sorted(agreeing)}")
    return price, len(agreeing)
