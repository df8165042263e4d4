"""Median price with outlier rejection: robust against a minority of bad or manipulated sources."""

from coprocessor.sdk import Context, InvalidInput
from coprocessor.values import median

MAX_PRICES = 1024


def run(ctx: Context, prices: tuple[int, ...], max_deviation_bps: int) -> tuple[int, int]:
    """Drops prices further than `max_deviation_bps` from the raw median, returns the median of the rest."""
    if not prices:
        raise InvalidInput("no prices given")
    if len(prices) > MAX_PRICES:
        raise InvalidInput(f"at most {MAX_PRICES} prices")
    raw = median(list(prices))
    accepted = [p for p in prices if abs(p - raw) * 10_000 <= raw * max_deviation_bps]
    if not accepted:  # an even count's median lies between two prices: a narrow band may hold none
        raise InvalidInput(f"no price within {max_deviation_bps} bps of the median {raw}: widen max_deviation_bps")
    ctx.log(f"median-price: {len(accepted)} of {len(prices)} prices within {max_deviation_bps} bps of {raw}")
    return median(accepted), len(accepted)
