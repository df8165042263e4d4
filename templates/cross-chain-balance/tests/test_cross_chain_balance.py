"""cross-chain-balance through the real enclave and workers: a chain the enclave does not read is refused."""

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


def test_run_unknownChain_chainDataInvalidSaysWhy(runner: TemplateRunner) -> None:
    result = runner.run(None, [8453, 100, "0x" + "11" * 20])
    assert result.status == Status.CHAIN_DATA_INVALID
    assert b"reads no chain 8453" in result.output
