"""heartbeat through the real enclave and workers: the run index comes back, and without a chain to read it says so."""

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


def test_run_withoutAChainToRead_chainDataInvalid(runner: TemplateRunner) -> None:
    result = runner.run(None, [3, b""])
    assert result.status == Status.CHAIN_DATA_INVALID
