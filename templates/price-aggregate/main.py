"""A price from several independent public APIs, robust against sources that fail or lie.

Every source in the manifest's `[config]` is fetched; a source that fails, times out or answers
something that is not a positive number is skipped (and logged). Of the prices that remain,
those further than `maxDeviationBps` from their median are dropped as outliers, and the median
of the rest is the answer, provided at least `minSources` agree. Use it where one exchange's
API being down, stale or manipulated must not move an on-chain price.

Paths, exact numbers and the median come from `coprocessor.values`, shared with `json-http`
and `median-price`; here their errors skip a source instead of refusing the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coprocessor.sdk import CapabilityError, Context, InvalidInput
from coprocessor.values import loads_exact, median, parse_path, scale, select, to_decimal

MAX_DECIMALS = 36
UINT256_MAX = 2**256 - 1


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


def to_price(value: Any, decimals: int) -> int:
    """A positive JSON number, or numeric string, × 10**decimals truncated; SourceError otherwise."""
    try:
        price = scale(to_decimal(value), decimals)
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    if price <= 0 or price > UINT256_MAX:
        raise SourceError(f"not a positive price at {decimals} decimals: {value}")
    return price


def fetch(ctx: Context, source: Source, decimals: int) -> int:
    """One source's price; SourceError or CapabilityError if it has none."""
    response = ctx.http.get(source.url, headers={"Accept": "application/json"}).raise_for_status()
    try:
        document = loads_exact(response.body)
    except ValueError as exc:
        raise SourceError(f"answer is {exc}") from None
    try:
        value = select(document, source.path)
    except LookupError as exc:
        raise SourceError(f"{exc} in the answer") from None
    return to_price(value, decimals)


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
