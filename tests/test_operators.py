"""What operators see of a running node: Prometheus metrics, `coprocessor status`, and heads by websocket."""

from __future__ import annotations

import json
import time
import urllib.request

from click.testing import CliRunner

from coprocessor.cli import main
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import Status
from coprocessor_enclave.template import encode_args

from .conftest import Devnet


def _settle_one(stack: Devnet, args: list[object]) -> bytes:
    median = stack.template("median-price")
    client = stack.user()
    request_id, sent_at = client.ask(median.template_id, encode_args(median, args))
    assert client.wait(request_id, sent_at).status == Status.OK
    return request_id


def _wait_settled(node: Node, request_id: bytes, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (entry := node.journal.get(request_id)) is None or entry.state.value != "settled":
        assert time.monotonic() < deadline, f"journal never saw the settlement: {entry}"
        time.sleep(0.02)


def test_metrics_servedAfterARequest_countStatesBatchesAndGas(stack: Devnet, node: Node) -> None:
    port = node.metrics.serve(0)
    request_id = _settle_one(stack, [[7, 9, 8], 500])
    _wait_settled(node, request_id)
    deadline = time.monotonic() + 10
    while True:  # the submitter reads its receipt a moment after the intake sees the settlement
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}
        if samples["coprocessor_batch_size_count"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert samples['coprocessor_requests{state="settled"}'] >= 1
    assert samples["coprocessor_batch_size_count"] >= 1
    assert 10_000 < samples["coprocessor_gas_per_item_sum"] / samples["coprocessor_gas_per_item_count"] < 1_000_000
    assert samples['coprocessor_stage_seconds_count{stage="enclave"}'] >= 1
    assert samples["coprocessor_head_block"] >= 1


def test_status_afterARequest_showsCountsCursorAndJson(stack: Devnet, node: Node) -> None:
    request_id = _settle_one(stack, [[1, 2, 3], 500])
    _wait_settled(node, request_id)
    runner = CliRunner()
    shown = runner.invoke(main, ["status", "--journal", str(node.journal.target)])
    assert shown.exit_code == 0, shown.output
    assert "settled" in shown.output and "cursor    block" in shown.output
    as_json = runner.invoke(main, ["status", "--journal", str(node.journal.target), "--json"])
    data = json.loads(as_json.output)
    assert data["counts"]["settled"] >= 1 and data["cursor"]["block"] >= 1


def test_status_missingJournal_oneLineError(tmp_path: object) -> None:
    result = CliRunner().invoke(main, ["status", "--journal", "/nonexistent/journal.sqlite"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: no journal at /nonexistent/journal.sqlite: pass --journal (the node's --journal, or <state dir>/journal.sqlite for `dev`)"
    ]


def test_heads_anvil_followedOverWebsocket(stack: Devnet, node: Node) -> None:
    assert node.heads.wait_started(5.0), "the node did not subscribe to newHeads over Anvil's websocket"
    before = node.heads.version
    _settle_one(stack, [[4], 0])
    assert node.heads.version > before
