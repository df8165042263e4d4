"""The node benchmark runs end to end in quick mode (every phase, the nodes phase's 1-, 2- and 3-node clusters
and the chains phase's node serving one chain and two too): every figure reported, every request answered once."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

from coprocessor.dev.toolchain import PROJECT_ROOT

BASELINES = [
    "rpc_round_trip_p50_ms",
    "transfer_send_receipt_p50_ms",
    "transfer_send_receipt_p99_ms",
    "transfer_gas",
    "raw_throughput_tx_per_s",
    "node_rss_idle_mb",
    "enclave_rss_idle_mb",
    "enclave_tree_pss_idle_mb",
    "chains_31337_send_receipt_p50_ms",
    "chains_31338_send_receipt_p50_ms",
]
FIGURES = [
    "idle_latency_p50_ms",
    "idle_latency_p90_ms",
    "idle_latency_p99_ms",
    "request_gas_example_consumer",
    "gas_per_response_single",
    "callback_gas_single",
    "sustained_responses_per_s",
    "sustained_queueing_delay_mean_ms",
    "sustained_latency_p99_ms",
    "request_gas_per_item_batched",
    "gas_per_response_sustained",
    "gas_per_response_largest_batch",
    "callback_gas_largest_batch",
    "pending_peak",
    "node_rss_peak_mb",
    "node_rss_drained_mb",
    "enclave_rss_peak_mb",
    "enclave_rss_drained_mb",
    "drain_responses_per_s",
    "nodes_1_responses_per_s",
    "nodes_2_responses_per_s",
    "nodes_3_responses_per_s",
    "nodes_1_postgres_vs_sqlite",
    *(f"chains_{n}_{c}_latency_{p}_ms" for n in (1, 2) for c in (31337, 31338) for p in ("p50", "p90", "p99")),
    "chains_2_vs_1_31337_p50",
    "chains_2_vs_1_31338_p50",
]
TIME_LIMIT = 90.0


def test_bench_node_quick(contracts_built: None, tmp_path: Path) -> None:
    out = tmp_path / "bench-node.json"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "node.py"), "--quick", "--no-build", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT + 30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"bench failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert elapsed < TIME_LIMIT, f"quick bench took {elapsed:.0f} s"
    report = json.loads(out.read_text())

    assert report["mode"] == "quick"
    assert {"nproc", "python", "anvil"} <= set(report["machine"])
    assert report["started_at"] < report["finished_at"]
    for name in ("baselines", "idle", "sustained", "nodes", "pending", "chains"):
        assert report["phases"][name]["started_at"] < report["phases"][name]["finished_at"]
    for key in BASELINES:
        value = report["baselines"][key]["value"]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, key
    for key in FIGURES:
        figure = report["figures"][key]
        for field in ("value", "baseline_value", "ratio"):
            assert isinstance(figure[field], (int, float)) and math.isfinite(figure[field]) and figure[field] > 0, (key, field)
    consumers = {row["consumer"] for row in report["gas_by_batch_size"]}
    assert consumers == {"ExampleConsumer", "LoadConsumer"}

    # Exactly once: the consumers' own counters equal the requests fed; nothing settled or sent twice.
    for name in ("idle", "sustained", "pending", "nodes_1", "nodes_2", "nodes_3", "chains_31337", "chains_31338"):
        check = report["checks"][name]
        assert check["answered_on_chain"] == check["requests"], (name, check)
        assert check["answered_seen"] == check["requests"], (name, check)
        assert check["settled_twice"] == 0 and check["skipped"] == 0, (name, check)
        assert check["not_ok"] == 0 and check["callbacks_failed"] == 0, (name, check)
    for name in ("sustained", "pending", "nodes_1", "nodes_2", "nodes_3"):
        check = report["checks"][name]
        assert check["complete"], (name, check)
        assert check["example_consumer_callbacks"] == check["example_consumer_requests"], (name, check)

    # The nodes phase: each cluster size ran its own nodes, every response sent by one of them.
    for count in (1, 2, 3):
        run = report["phases"]["nodes"]["runs"][str(count)]
        assert len(run["node_logs"]) == count, run
        assert set(run["responses_by_node"]) <= {str(i) for i in range(count)}, run
        assert sum(run["responses_by_node"].values()) == run["requests"] + 1, run  # the warm-up request too

    # The chains phase: the node serving both chains answered every request on each.
    runs = report["phases"]["chains"]["runs"]
    per_chain = report["phases"]["chains"]["requests_per_chain"]
    assert runs["2_chains"]["31337"]["answered"] == runs["2_chains"]["31338"]["answered"] == per_chain, runs
