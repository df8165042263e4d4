"""coprocessor.values: the data helpers templates share (paths, exact decimals, medians)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coprocessor.values import loads_exact, median, parse_path, scale, select, to_decimal


def test_parsePath_stepsAndErrors() -> None:
    assert parse_path('data.items[0]["a.b"]') == ("data", "items", 0, "a.b")
    assert parse_path("") == ()
    for bad in ("a..b", ".a", "a[-1]", "a[x]"):
        with pytest.raises(ValueError, match="cannot parse"):
            parse_path(bad)


def test_select_namesTheStepThatMatchesNothing() -> None:
    document = loads_exact(b'{"data": {"items": [{"price": "1.5"}]}}')
    assert select(document, ("data", "items", 0, "price")) == "1.5"
    with pytest.raises(LookupError, match=r"nothing at 1 under data.items \(found list of 1\)"):
        select(document, ("data", "items", 1))


def test_toDecimalAndScale_exactAndTruncatedTowardZero() -> None:
    assert scale(to_decimal(loads_exact(b"1.1")), 18) == 1_100_000_000_000_000_000
    assert scale(to_decimal("-2.59"), 1) == -25
    assert scale(to_decimal("0.000001"), 2) == 0
    for bad in (True, None, "12 USD", "NaN", loads_exact(b"NaN"), [1]):
        with pytest.raises(ValueError, match="not a"):
            to_decimal(bad)
    with pytest.raises(ValueError, match="does not fit in 256 bits"):
        scale(Decimal("1e80"), 0)


def test_median_oddAndEven() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2
