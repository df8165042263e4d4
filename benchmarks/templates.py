"""Benchmark: wall time of each library template's run through the real enclave and worker path.

Runs every template in templates/ RUNS times in one in-process enclave (dev attestation, real
confined workers, real capabilities). HTTP templates fetch from a loopback server (as copies
pointed at it), chain templates read a fresh Anvil. Baselines measured in the same run: an
`eth_blockNumber` round trip to that Anvil, and `median-price` (the smallest template: the
enclave and worker overhead). Prints a table and writes a JSON report.

    .venv/bin/python benchmarks/templates.py [--runs 20] [--out .coprocessor/bench-templates.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from eth_utils import keccak

from coprocessor.chain import ANVIL_KEYS, TxSender, connect
from coprocessor.dev import devnet
from coprocessor.dev.toolchain import TEMPLATES_DIR, npm_artifact
from coprocessor.testing import LoopbackHttp, Reply, TemplateRunner, loopback_copy
from coprocessor_enclave.template import load_template

SOURCE_PATHS = [f"/source{i}" for i in range(5)]


def _chain_fixtures(rpc_url: str) -> dict[str, Any]:
    """An ERC-20 with a holder, and the real PoolManager with a pool whose tick moves every other block."""
    w3 = connect(rpc_url)
    owner = TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER])
    erc20 = npm_artifact("@uniswap/v4-core", "TestERC20")
    token = owner.deploy_artifact(erc20, 10**21)
    manager = owner.deploy_artifact(npm_artifact("@uniswap/v4-core", "PoolManager"), owner.address)
    pool_id = keccak(b"benchmark pool")
    slot = "0x" + keccak(pool_id + (6).to_bytes(32, "big")).hex()
    for i in range(70):  # Anvil applies anvil_setStorageAt to the latest block too: sample the blocks between writes
        word = (3000 << 208) | (((40 if i % 2 else 0) & 0xFFFFFF) << 160) | 2**96
        w3.provider.make_request("anvil_setStorageAt", [manager, slot, "0x" + word.to_bytes(32, "big").hex()])  # type: ignore[arg-type]
        w3.provider.make_request("anvil_mine", ["0x2" if i < 69 else "0x1"])  # type: ignore[arg-type]
    return {"token": token, "holder": owner.address, "manager": manager, "pool": pool_id}


def _cases(fixtures: dict[str, Any], server: LoopbackHttp) -> list[tuple[str, str, list[Any]]]:
    """(label, template name, args) for every library template."""
    leaves = ["0x" + keccak(i.to_bytes(32, "big")).hex() for i in range(4096)]
    return [
        ("median-price, 5 prices", "median-price", [[101, 99, 100, 102, 98], 500]),
        ("json-http, one fetch", "json-http", [server.url("/doc"), "data.items[0].price", 8]),
        ("price-aggregate, 5 sources", "price-aggregate", [200, 3, 8]),
        ("ai-moderation, one completion", "ai-moderation", ["Good morning, everyone!"]),
        ("token-holder, ERC-20 via call", "token-holder", [fixtures["token"], fixtures["holder"], 1]),
        ("token-holder, ETH", "token-holder", ["0x" + "00" * 20, fixtures["holder"], 1]),
        ("v4-volatility, 4 x 2 blocks", "v4-volatility", [fixtures["manager"], fixtures["pool"], 4, 2, 500, 10_000]),
        ("v4-volatility, 64 x 2 blocks", "v4-volatility", [fixtures["manager"], fixtures["pool"], 64, 2, 500, 10_000]),
        ("merkle-root, 509 leaves", "merkle-root", [leaves[:509], 7]),
        ("merkle-root, 4096 leaves", "merkle-root", [leaves, 7]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per case (default 20)")
    parser.add_argument("--out", type=Path, default=Path(".coprocessor/bench-templates.json"), help="JSON report path")
    options = parser.parse_args()

    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    try:
        rpc_url = f"http://127.0.0.1:{port}"
        print("deploying an ERC-20 and the real PoolManager on Anvil...", flush=True)
        fixtures = _chain_fixtures(rpc_url)
        with LoopbackHttp() as server, tempfile.TemporaryDirectory() as scratch:
            server.routes["/doc"] = Reply.json({"data": {"items": [{"price": "3456.78"}]}})
            for path, price in zip(SOURCE_PATHS, ["3001.5", "3000.25", "2999.75", "3000.5", "4200"], strict=True):
                server.routes[path] = Reply.json({"price": price})
            server.routes["/v1/chat/completions"] = Reply.json(
                {"choices": [{"message": {"content": '{"allowed": true, "category": "none"}'}}]}
            )
            folders = [p.parent for p in sorted(TEMPLATES_DIR.glob("*/template.toml"))]
            http = {"json-http", "price-aggregate", "ai-moderation"}
            local = [loopback_copy(f, Path(scratch), server, SOURCE_PATHS) if f.name in http else f for f in folders]
            moderation = load_template(Path(scratch) / "ai-moderation")
            with TemplateRunner(*local, secrets={"OPENAI_API_KEY": "sk-bench"}, chain_rpc=rpc_url) as runner:
                report = _measure(runner, _cases(fixtures, server), options.runs, rpc_url)
        report["ids"] = {t.name: t.id_hex for t in (load_template(f) for f in folders)}
        report["note"] = f"HTTP templates ran as loopback copies (ai-moderation copy {moderation.id_hex[:10]}...)"
    finally:
        devnet.stop(anvil)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2))
    print(f"report written to {options.out}")


def _measure(runner: TemplateRunner, cases: list[tuple[str, str, list[Any]]], runs: int, rpc_url: str) -> dict[str, Any]:
    client = httpx.Client()
    rpc = []
    for _ in range(runs * 5):
        started = time.perf_counter()
        client.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
        rpc.append(time.perf_counter() - started)
    rpc_ms = statistics.median(rpc) * 1000
    rows = []
    for label, name, args in cases:
        runner.run(name, args)  # warm: imports inside the worker's first use
        times = []
        for _ in range(runs):
            result = runner.run(name, args)
            if not result.ok:
                raise SystemExit(f"{label}: {result.status.name}: {result.reason}")
            times.append(result.seconds * 1000)
        times.sort()
        rows.append({"case": label, "template": name, "median_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]})
    base = rows[0]["median_ms"]
    print(f"\nbaselines: eth_blockNumber round trip {rpc_ms:.2f} ms; smallest template (median-price) {base:.1f} ms\n")
    print(f"{'case':<32} {'median':>9} {'p95':>9} {'x median-price':>15} {'x RPC':>8}")
    for row in rows:
        row["vs_smallest"] = row["median_ms"] / base
        row["vs_rpc"] = row["median_ms"] / rpc_ms
        print(f"{row['case']:<32} {row['median_ms']:>7.1f}ms {row['p95_ms']:>7.1f}ms {row['vs_smallest']:>14.1f}x {row['vs_rpc']:>7.0f}x")
    return {"runs": runs, "rpc_round_trip_ms": rpc_ms, "cases": rows}


if __name__ == "__main__":
    main()
