"""median-price through the real enclave and workers: answers, and every input it refuses says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coprocessor.protocol import Status
from coprocessor.testing import TemplateRunner

TEMPLATE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runner() -> Iterator[TemplateRunner]:
    with TemplateRunner(TEMPLATE) as running:
        yield running


@pytest.mark.parametrize(
    ("prices", "band", "answer"),
    [
        ([100, 104, 98, 1000, 101], 500, (100, 4)),  # 1000 is an outlier; (100 + 101) // 2 of the rest
        ([42], 0, (42, 1)),
        ([100, 100, 300, 300], 10_000, (200, 4)),  # even count, a band wide enough for all
        ([99, 101], 100, (100, 2)),
    ],
)
def test_run_answers(runner: TemplateRunner, prices: list[int], band: int, answer: tuple[int, int]) -> None:
    assert runner.run(None, [prices, band]).values == answer


@pytest.mark.parametrize(
    ("prices", "band", "reason"),
    [
        ([], 500, "no prices given"),
        ([1, 100], 0, "no price within 0 bps of the median 50: widen max_deviation_bps"),  # was an IndexError
        ([1] * 1025, 0, "at most 1024 prices"),
    ],
)
def test_run_refusesInputWithAReason(runner: TemplateRunner, prices: list[int], band: int, reason: str) -> None:
    result = runner.run(None, [prices, band])
    assert (result.status, result.reason) == (Status.INVALID_INPUT, reason)
