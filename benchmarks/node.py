"""Benchmark: the node under load, every figure printed with its ratio to a baseline measured in the same run.

Each phase runs on its own fresh Anvil (its mining rate falls as its chain grows) with the contracts
deployed, the template library published and a DEV enclave started and registered, as `coprocessor
dev` does. The node runs as its own process through the public CLI (`coprocessor node ...`), so the
bench measures the node as shipped, its RSS is its own, and the bench's own Python work does not share
its interpreter. Requests use the `median-price` template. Callbacks are seen through an `eth_subscribe`
logs subscription on Anvil's websocket, stamped on arrival: a request's latency is the wall time from
its `RequestSubmitted` log to its `RequestFulfilled` log, both observed the same way.

1. baselines  eth_blockNumber round trip p50; raw ETH transfer send+receipt p50/p99 (one at a time);
              raw throughput: pre-signed transfers in windows of 100 (send 100, wait for the last, repeat).
2. idle       one request at a time through ExampleConsumer, random 5-50 ms gaps: latency p50/p90/p99.
3. sustained  LoadConsumer.askMany feeds many requests at once (e.g. 20 txs x 100): responses/s from the
              first request mined to the last callback, queueing delay.
4. gas        from the node's fulfil receipts of phases 2 and 3: gas per response by batch size, and the
              callback's share (debug_traceTransaction, callTracer: gasUsed of the calls to the consumer).
5. nodes      the sustained feed again, to 1, 2 and 3 nodes sharing one PostgreSQL journal (each its own
              DEV enclave and account; each size on a fresh Anvil, a new database of one server): responses/s.
6. pending    10,000 requests fed while the node runs: node and enclave RSS idle, at peak, after drain.
7. chains     one node process serving two chains (two fresh Anvils, chain ids 31337 and 31338, one DEV
              enclave answering both through `enclave serve --also`; `coprocessor node --chains FILE`):
              idle latency p50/p90/p99 of each chain, requests interleaved on both chains one at a time
              with random 5-50 ms gaps, against the same node serving one chain (`--rpc --deployment`,
              each chain in turn, same enclave) and each Anvil's raw send+receipt p50.
After phases 3 and 6, with the node stopped, the raw throughput is measured again on that phase's grown
chain: a second baseline that shows how much of a slow drain is Anvil's own slowdown.

    .venv/bin/python benchmarks/node.py [--quick] [--out .coprocessor/bench-node.json]   (make bench)

`--quick` (about 165 requests, 20 pending) is the smoke run of tests/test_bench_smoke.py, not a
measurement. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_abi import decode
from eth_account import Account
from eth_utils import to_checksum_address
from web3 import Web3
from websockets.sync.client import connect as ws_connect

from coprocessor.chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
from coprocessor.dev import chains as dev_chains
from coprocessor.dev import cluster, devnet
from coprocessor.dev.consumer import ExampleConsumerClient
from coprocessor.dev.postgres import LocalPostgres
from coprocessor.dev.toolchain import PROJECT_ROOT, TEMPLATES_DIR, forge_build, tool_path
from coprocessor.errors import ToolchainError
from coprocessor.node.enclave_client import EnclaveClient
from coprocessor_enclave.protocol import (
    FULFILLMENT_SKIPPED_TOPIC,
    REQUEST_FULFILLED_TOPIC,
    REQUEST_SUBMITTED_TOPIC,
    Status,
)
from coprocessor_enclave.template import Template, encode_args, find_template, load_templates

E8 = 10**8
PRICES = [3012 * E8, 3015 * E8, 3009 * E8, 3011 * E8, 9999 * E8]  # median-price input: 5 sources, 1 outlier
MAX_DEVIATION_BPS = 200
REQUEST_TIMEOUT = 3 * 3600  # seconds before a request may be cancelled: never during a bench
WINDOW = 100  # transactions outstanding at once, at most (Anvil 1.7.1 stalls under thousands)
MB = 1024.0  # kB per MB (VmRSS is in kB)
NODE_ARGS: list[str] = []  # extra `coprocessor node` options (--node-args)
PHASES = ("baselines", "idle", "sustained", "nodes", "pending", "chains")  # in the order they run
NODE_COUNTS = (1, 2, 3)  # the nodes phase: cluster sizes, one dev account each (cluster.NODE_ACCOUNTS)
NODES_LEASE = 10.0  # seconds: `coprocessor node --lease`'s default
CHAIN_IDS = (dev_chains.FIRST_CHAIN_ID, dev_chains.FIRST_CHAIN_ID + 1)  # the chains phase's two Anvils: 31337, 31338


class BenchError(Exception):
    """The bench could not measure something (a process died, a phase found nothing to measure)."""


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """How much each phase does."""

    rpc_calls: int
    transfers: int
    throughput_windows: int
    idle_requests: int
    sustained_txs: int
    sustained_per_tx: int
    pending_txs: int
    pending_per_tx: int
    traces_per_size: int
    chains_requests: int  # the chains phase: requests per chain and run
    phase_timeout: float


FULL = Settings(
    rpc_calls=500,
    transfers=200,
    throughput_windows=10,
    idle_requests=100,
    sustained_txs=20,
    sustained_per_tx=100,
    pending_txs=100,
    pending_per_tx=100,
    traces_per_size=3,
    chains_requests=60,
    phase_timeout=900.0,
)
QUICK = Settings(
    rpc_calls=100,
    transfers=30,
    throughput_windows=2,
    idle_requests=15,
    sustained_txs=2,
    sustained_per_tx=10,
    pending_txs=2,
    pending_per_tx=10,
    traces_per_size=2,
    chains_requests=10,
    phase_timeout=60.0,
)


# ---------------------------------------------------------------------------- small helpers


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _progress(message: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {message}", flush=True)


class Rpc:
    """Bare JSON-RPC over one keep-alive HTTP connection: the least client overhead, for baselines."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.Client(timeout=60.0)
        self._id = 0

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = self._client.post(self.url, json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}).json()
        if "error" in body:
            raise BenchError(f"{method} failed: {body['error']}")
        return body["result"]

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------- processes and memory


def _read_kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid: int) -> int:
    """VmRSS of one process, in kB (0 once it is gone)."""
    return _read_kb(f"/proc/{pid}/status", "VmRSS")


def _tree(pid: int) -> list[int]:
    """`pid` and every descendant."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live descendants, each with its reaped children."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / _TICKS


def tree_pss_kb(pid: int) -> int:
    """Proportional set size of a process and its descendants, in kB (shared pages counted once in all)."""
    return sum(_read_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in _tree(pid))


class MemorySampler:
    """Samples node RSS, enclave RSS and the enclave tree's PSS on a thread, with the pending count."""

    def __init__(self, node_pid: int, enclave_pid: int, pending: Callable[[], int], interval: float = 0.25) -> None:
        self.node_pid, self.enclave_pid, self.pending, self.interval = node_pid, enclave_pid, pending, interval
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> dict[str, float]:
        return {
            "t": time.perf_counter(),
            "pending": self.pending(),
            "node_rss_kb": rss_kb(self.node_pid),
            "enclave_rss_kb": rss_kb(self.enclave_pid),
            "enclave_tree_pss_kb": tree_pss_kb(self.enclave_pid),
        }

    def _run(self) -> None:
        while True:
            self.samples.append(self.sample())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


# ---------------------------------------------------------------------------- watching the chain


class LogWatcher:
    """The Coprocessor's RequestSubmitted / RequestFulfilled / FulfillmentSkipped logs, pushed by an
    `eth_subscribe` logs subscription over Anvil's websocket and stamped (perf_counter) as they arrive."""

    def __init__(self, ws_url: str, coprocessor: str) -> None:
        self.submitted: dict[bytes, float] = {}
        self.fulfilled: dict[bytes, float] = {}
        self.consumer_of: dict[bytes, str] = {}
        self.submitted_tx: dict[bytes, str] = {}
        self.fulfil_counts: Counter[bytes] = Counter()
        self.submitted_by: Counter[str] = Counter()  # consumer -> requests opened
        self.answered_by: Counter[str] = Counter()  # consumer -> requests answered (first fulfilment only)
        self.tx_items: Counter[str] = Counter()  # fulfil tx hash -> responses in it
        self.tx_consumers: dict[str, set[str]] = defaultdict(set)
        self.skipped = 0
        self.not_ok = 0
        self.callback_failed = 0
        self.cond = threading.Condition()
        self._exit = ExitStack()
        self._ws = self._exit.enter_context(ws_connect(ws_url, max_size=None, open_timeout=10))
        topics = ["0x" + t.hex() for t in (REQUEST_SUBMITTED_TOPIC, REQUEST_FULFILLED_TOPIC, FULFILLMENT_SKIPPED_TOPIC)]
        self._ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_subscribe",
                    "params": ["logs", {"address": to_checksum_address(coprocessor), "topics": [topics]}],
                }
            )
        )
        reply = json.loads(self._ws.recv(timeout=10))
        if "result" not in reply:
            raise BenchError(f"eth_subscribe refused: {reply}")
        self._thread = threading.Thread(target=self._run, name="log-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for message in self._ws:
                stamp = time.perf_counter()
                entry = json.loads(message).get("params", {}).get("result")
                if not entry or entry.get("removed"):
                    continue
                with self.cond:
                    self._record(entry, stamp)
                    self.cond.notify_all()
        except Exception:  # closed at the end of a phase
            return

    def _record(self, entry: dict[str, Any], stamp: float) -> None:
        topic, rid = (bytes.fromhex(t[2:]) for t in entry["topics"][:2])
        tx = entry["transactionHash"]
        if topic == REQUEST_SUBMITTED_TOPIC:
            consumer = to_checksum_address("0x" + entry["topics"][2][-40:])
            self.submitted.setdefault(rid, stamp)
            self.consumer_of[rid] = consumer
            self.submitted_tx[rid] = tx
            self.submitted_by[consumer] += 1
        elif topic == REQUEST_FULFILLED_TOPIC:
            status, succeeded = decode(["uint8", "bool"], bytes.fromhex(entry["data"][2:]))
            self.fulfil_counts[rid] += 1
            consumer = self.consumer_of.get(rid, "?")
            self.tx_items[tx] += 1
            self.tx_consumers[tx].add(consumer)
            if self.fulfil_counts[rid] == 1:
                self.fulfilled[rid] = stamp
                self.answered_by[consumer] += 1
                self.not_ok += status != Status.OK
                self.callback_failed += not succeeded
        elif topic == FULFILLMENT_SKIPPED_TOPIC:
            self.skipped += 1

    def pending(self) -> int:
        with self.cond:
            return len(self.submitted) - len(self.fulfilled)

    def exactly_once(self) -> dict[str, int]:
        """Responses settled more than once (the chain forbids it), and fulfilments the chain skipped: a
        second delivery of a settled request (or one past its deadline), gas the node should not spend."""
        with self.cond:
            return {"settled_twice": sum(n - 1 for n in self.fulfil_counts.values() if n > 1), "skipped": self.skipped}

    def wait(
        self,
        done: Callable[[], bool],
        timeout: float,
        alive: Callable[[], None] = lambda: None,
        progress: Callable[[], None] | None = None,
        every: float = 3.0,
    ) -> bool:
        """Waits until `done()` (called under the lock) holds; False after `timeout`. `alive` raises if the node died."""
        deadline = time.perf_counter() + timeout
        last = time.perf_counter()
        while True:
            with self.cond:
                if done():
                    return True
                self.cond.wait(min(0.5, max(0.0, deadline - time.perf_counter())))
                if done():
                    return True
            alive()
            now = time.perf_counter()
            if now >= deadline:
                return False
            if progress is not None and now - last >= every:
                last = now
                progress()

    def close(self) -> None:
        self._exit.close()
        self._thread.join(5)


# ---------------------------------------------------------------------------- one fresh stack per phase


def start_node_process(chains: list[str], enclave_url: str, token_file: Path, journal: Path, log: Path) -> subprocess.Popen[bytes]:
    """`coprocessor node` as its own process (the public CLI), serving `chains` (`--rpc URL --deployment FILE`, or
    `--chains FILE`) with the node account's key and NODE_ARGS, its stderr appended to `log`."""
    command = [sys.executable, "-m", "coprocessor", "node", *chains, "--enclave", enclave_url, "--enclave-token-file", str(token_file)]
    command += ["--journal", str(journal), *NODE_ARGS]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPROCESSOR_")}
    env["COPROCESSOR_NODE_KEY"] = ANVIL_KEYS[devnet.NODE]
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=PROJECT_ROOT, preexec_fn=devnet.die_with_parent
        )


@dataclass
class Stack:
    """A fresh Anvil with the contracts, a registered DEV enclave and (once started) the node process."""

    folder: Path
    rpc_url: str
    ws_url: str
    w3: Web3
    deployment: Deployment
    median: Template
    enclave_process: subprocess.Popen[bytes]
    enclave: EnclaveClient
    anvil_pid: int
    node: subprocess.Popen[bytes] | None = None
    watcher: LogWatcher | None = None
    cluster_nodes: list[cluster.ClusterNode] = field(default_factory=list)  # nodes sharing a PostgreSQL journal, if any
    rpc: Rpc = field(init=False)
    sender: TxSender = field(init=False)

    def __post_init__(self) -> None:
        self.rpc = Rpc(self.rpc_url)
        self.sender = TxSender(self.w3, ANVIL_KEYS[devnet.USER])

    def median_input(self) -> bytes:
        return encode_args(self.median, [PRICES, MAX_DEVIATION_BPS])

    def start_node(self) -> None:
        """`coprocessor node` as its own process (the public CLI), logging to node.log."""
        self.node = start_node_process(
            ["--rpc", self.rpc_url, "--deployment", str(self.folder / "deployment.json")],
            self.enclave.url,
            self.folder / "enclave.token",
            self.folder / "journal.sqlite",
            self.folder / "node.log",
        )

    def start_cluster(self, journal: str) -> None:
        """`coprocessor node` for each enclave of the cluster, all on the PostgreSQL journal at `journal`;
        returns once every node logged that it serves."""
        for member in self.cluster_nodes:
            cluster.start_node(
                member, self.rpc_url, self.folder / "deployment.json", self.folder, journal, NODES_LEASE, extra_args=NODE_ARGS
            )
        try:
            cluster.wait_serving(self.cluster_nodes)
        except ToolchainError as exc:
            raise BenchError(str(exc)) from exc

    def node_alive(self) -> None:
        """Raises with the tail of the node's log if the node process (or a cluster node) exited."""
        if self.node is not None and self.node.poll() is not None:
            raise BenchError(f"the node exited with code {self.node.returncode}; its log ends:\n{self.log_tail('node.log')}")
        for member in self.cluster_nodes:
            if member.process is not None and member.process.poll() is not None:
                raise BenchError(f"node {member.index} exited with code {member.process.returncode}; its log ends:\n{member.log_tail()}")

    def node_logs_tail(self) -> str:
        if not self.cluster_nodes:
            return self.log_tail("node.log")
        return "\n".join(f"node {m.index}:\n{m.log_tail(10)}" for m in self.cluster_nodes)

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join((self.folder / name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def user(self) -> ExampleConsumerClient:
        """ExampleConsumer driven by the USER account (one nonce counter for all of its transactions)."""
        return ExampleConsumerClient(self.w3, self.sender, self.deployment.consumer)

    def warm_up(self, client: ExampleConsumerClient, timeout: float = 90.0) -> float:
        """One request through ExampleConsumer, answered: the node is up and the enclave has run the template."""
        assert self.watcher is not None
        started = time.perf_counter()
        rid, _ = client.ask(self.median.template_id, self.median_input(), REQUEST_TIMEOUT)
        if not self.watcher.wait(lambda: rid in self.watcher.fulfilled, timeout, self.node_alive):  # type: ignore[union-attr]
            raise BenchError(f"warm-up request not answered within {timeout:g} s; node log ends:\n{self.node_logs_tail()}")
        return time.perf_counter() - started

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far: the node, the enclave's own process, Anvil, this process, and the whole machine.

        Template jobs are reaped by the kernel (their parents ignore SIGCHLD), so no process's counters
        hold them: they are most of what the machine spent beyond the processes named.
        """
        assert self.node is not None
        me = os.times()
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
        return {
            "node": tree_cpu_seconds(self.node.pid),
            "enclave": tree_cpu_seconds(self.enclave_process.pid),
            "anvil": tree_cpu_seconds(self.anvil_pid),
            "bench (feed and watch)": me.user + me.system,
            "machine": busy / _TICKS,
        }

    def callback_count(self) -> int:
        return contract(self.w3, "ExampleConsumer", self.deployment.consumer).functions.callbackCount().call()


@contextmanager
def fresh_stack(root: Path, name: str, cluster_size: int = 0) -> Iterator[Stack]:
    """Anvil, the contracts, the library published, a DEV enclave serving it, registered; torn down after.

    With `cluster_size`, that many DEV enclaves instead (`coprocessor.dev.cluster`, enclave-<i>.log), each
    registered, for as many nodes with their own accounts (`Stack.start_cluster`); the first is `stack.enclave`."""
    folder = root / name
    folder.mkdir(parents=True)
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    enclave_process = None
    members: list[cluster.ClusterNode] = []
    stack = None
    try:
        rpc_url = f"http://127.0.0.1:{port}"
        templates = load_templates([TEMPLATES_DIR])
        deployment = devnet.deploy(rpc_url, templates=templates.values())
        deployment.save(folder / "deployment.json")
        w3 = connect(rpc_url)
        payee = TxSender(w3, ANVIL_KEYS[devnet.PAYEE]).address
        template_dirs = [t.path for t in templates.values()]
        if cluster_size:
            try:
                members = cluster.start_enclaves(rpc_url, deployment, folder, cluster_size, template_dirs)
            except ToolchainError as exc:
                raise BenchError(str(exc)) from exc
            enclave_process, enclave = members[0].enclave_process, members[0].enclave
        else:
            enclave_process, enclave = devnet.start_enclave(
                deployment,
                payee,
                template_dirs,
                folder / "dev-pki",
                folder / "enclave.token",
                folder / "enclave.log",
                chain_rpc=rpc_url,
            )
            devnet.register_enclave(rpc_url, deployment, enclave, folder / "dev-pki")
        stack = Stack(
            folder,
            rpc_url,
            f"ws://127.0.0.1:{port}",
            w3,
            deployment,
            find_template(templates, "median-price"),
            enclave_process,
            enclave,
            anvil.pid,
            cluster_nodes=members,
        )
        stack.watcher = LogWatcher(stack.ws_url, deployment.coprocessor)
        yield stack
    finally:
        if stack is not None:
            devnet.stop(stack.node, timeout=10)
            if stack.watcher is not None:
                stack.watcher.close()
            stack.rpc.close()
        cluster.stop_cluster(members)  # nodes, then enclaves
        devnet.stop(enclave_process)
        devnet.stop(anvil)


# ---------------------------------------------------------------------------- the report


# How the table names a baseline in its baseline column.
_SHORT = {
    "transfer_send_receipt_p50_ms": "raw send+receipt p50",
    "raw_throughput_tx_per_s": "raw windowed throughput",
    "transfer_gas": "ETH transfer gas",
    "idle_latency_p50_ms": "idle latency p50",
    "gas_per_response_single": "gas/response, batch 1",
    "gas_per_response_largest_batch": "gas/response, largest",
    "pending_fed": "requests fed",
    "sustained_responses_per_s": "sustained (SQLite)",
    "node_rss_idle_mb": "node RSS idle",
    "enclave_rss_idle_mb": "enclave RSS idle",
    "enclave_tree_pss_idle_mb": "enclave tree PSS idle",
    **{f"chains_{c}_send_receipt_p50_ms": f"raw send+receipt, {c}" for c in CHAIN_IDS},
    **{f"chains_1_{c}_latency_p50_ms": f"1 chain p50, {c}" for c in CHAIN_IDS},
}


class Report:
    """Baselines, figures (each with its baseline and ratio), tables, checks and phase timings."""

    def __init__(self, settings: Settings, quick: bool) -> None:
        self.data: dict[str, Any] = {
            "bench": "node",
            "mode": "quick" if quick else "full",
            "started_at": _now_iso(),
            "machine": _machine(),
            "settings": settings.__dict__,
            "node_mode": "subprocess: coprocessor node (public CLI) with its defaults and node_args",
            "baselines": {},
            "figures": {},
            "gas_by_batch_size": [],
            "checks": {},
            "phases": {},
        }

    def baseline(self, key: str, label: str, value: float, unit: str) -> None:
        self.data["baselines"][key] = {"label": label, "value": value, "unit": unit}

    def value_of(self, key: str) -> float:
        for group in ("baselines", "figures"):
            if key in self.data[group]:
                return self.data[group][key]["value"]
        raise KeyError(key)

    def figure(self, key: str, label: str, value: float, unit: str, baseline: str) -> None:
        base = self.value_of(baseline) if baseline in self.data["baselines"] or baseline in self.data["figures"] else None  # phase not run
        ratio = value / base if base else None
        self.data["figures"][key] = {
            "label": label,
            "value": value,
            "unit": unit,
            "baseline": baseline,
            "baseline_value": base,
            "ratio": ratio,
        }

    @contextmanager
    def phase(self, name: str, description: str) -> Iterator[dict[str, Any]]:
        print(f"\n== {name}: {description}", flush=True)
        record: dict[str, Any] = {"description": description, "started_at": _now_iso(), "loadavg_start": _loadavg()}
        self.data["phases"][name] = record
        started = time.perf_counter()
        try:
            yield record
        finally:
            record["finished_at"] = _now_iso()
            record["loadavg_end"] = _loadavg()
            record["seconds"] = round(time.perf_counter() - started, 2)
            print(f"   {name} took {record['seconds']:.1f} s", flush=True)

    def print_table(self) -> None:
        print("\nbaselines (measured in this run)")
        print(f"  {'baseline':<58} {'value':>14}")
        for b in self.data["baselines"].values():
            print(f"  {b['label']:<58} {_fmt(b['value'], b['unit']):>14}")
        print(f"\n  {'figure':<58} {'value':>14}   {'baseline':<39} {'ratio':>9}")
        print("  " + "-" * 127)
        for f in self.data["figures"].values():
            base_label = _SHORT.get(f["baseline"], f["baseline"])
            ratio = "n/a" if f["ratio"] is None else f"{f['ratio']:.3g}x"
            base_value = "-" if f["baseline_value"] is None else _fmt(f["baseline_value"], self._unit(f["baseline"]))
            print(f"  {f['label']:<58} {_fmt(f['value'], f['unit']):>14}   {base_label:<24} {base_value:>14} {ratio:>9}")
        rows = self.data["gas_by_batch_size"]
        if rows:
            transfer = self.value_of("transfer_gas")
            print("\n  gas per response by batch size (node's fulfil receipts; callback share from callTracer)")
            print(f"  {'consumer':<16} {'batch':>5} {'txs':>5} {'gas/response':>13} {'x transfer':>11} {'callback/resp':>14} {'share':>7}")
            for r in rows:
                cb = "-" if r["callback_gas_per_response"] is None else f"{r['callback_gas_per_response']:,.0f}"
                share = "-" if r["callback_share"] is None else f"{r['callback_share']:.1%}"
                print(
                    f"  {r['consumer']:<16} {r['batch_size']:>5} {r['txs']:>5} {r['gas_per_response']:>13,.0f} {r['gas_per_response'] / transfer:>10.2f}x {cb:>14} {share:>7}"
                )

    def _unit(self, key: str) -> str:
        for group in ("baselines", "figures"):
            if key in self.data[group]:
                return self.data[group][key]["unit"]
        return ""

    def write(self, path: Path) -> None:
        self.data["finished_at"] = _now_iso()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.data, indent=2) + "\n")


def _fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "gas":
        return f"{value:,.0f} gas"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit in ("tx/s", "responses/s"):
        return f"{value:,.1f} /s"
    return f"{value:,.0f} {unit}".strip()


def _loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _machine() -> dict[str, Any]:
    anvil = subprocess.run([str(tool_path("anvil")), "--version"], capture_output=True, text=True, check=False).stdout
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), ""
    )
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_kb": _read_kb("/proc/meminfo", "MemTotal"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "anvil": anvil.splitlines()[0] if anvil else "unknown",
        "git_commit": commit,
        "git_dirty": bool(dirty),
    }


# ---------------------------------------------------------------------------- phase 1: baselines


def phase_baselines(report: Report, settings: Settings, root: Path) -> None:
    with report.phase("baselines", "raw Anvil: RPC round trip, transfer send+receipt, windowed throughput") as record:
        port = devnet.free_port()
        anvil = devnet.start_anvil(port)
        rpc = Rpc(f"http://127.0.0.1:{port}")
        try:
            for _ in range(20):
                rpc.call("eth_blockNumber")
            rtts = []
            for _ in range(settings.rpc_calls):
                started = time.perf_counter()
                rpc.call("eth_blockNumber")
                rtts.append((time.perf_counter() - started) * 1000)
            report.baseline("rpc_round_trip_p50_ms", "JSON-RPC round trip p50 (eth_blockNumber)", statistics.median(rtts), "ms")

            latencies, gas = send_receipt_latencies(rpc, settings.transfers)
            report.baseline("transfer_send_receipt_p50_ms", "raw ETH transfer send+receipt p50", statistics.median(latencies), "ms")
            report.baseline("transfer_send_receipt_p99_ms", "raw ETH transfer send+receipt p99", _pct(latencies, 0.99), "ms")
            report.baseline("transfer_gas", "raw ETH transfer gas (receipt gasUsed)", statistics.median(gas), "gas")

            rate, window_rates = windowed_throughput(rpc, ANVIL_KEYS[devnet.USER], settings.throughput_windows)
            total = settings.throughput_windows * WINDOW
            report.baseline("raw_throughput_tx_per_s", f"raw throughput, windows of {WINDOW} pre-signed transfers", rate, "tx/s")
            record.update(
                rpc_calls=settings.rpc_calls,
                transfers=settings.transfers,
                throughput_txs=total,
                transfer_p90_ms=_pct(latencies, 0.9),
                window_rates_tx_per_s=[round(r, 1) for r in window_rates],
            )
            _progress(
                f"rtt p50 {statistics.median(rtts):.2f} ms, send+receipt p50 {statistics.median(latencies):.2f} ms,"
                f" throughput {rate:.0f} tx/s (windows {window_rates[0]:.0f} -> {window_rates[-1]:.0f} tx/s)"
            )
        finally:
            rpc.close()
            devnet.stop(anvil)


def _signed_transfer(account: Any, to: str, nonce: int, chain_id: int = 31337) -> str:
    tx = {
        "chainId": chain_id,
        "nonce": nonce,
        "to": to,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 10 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    return "0x" + account.sign_transaction(tx).raw_transaction.hex()


def send_receipt_latencies(rpc: Rpc, count: int) -> tuple[list[float], list[int]]:
    """`count` pre-signed 1-wei transfers (USER to PAYEE) sent one at a time, each polled to its receipt: the
    wall time of each (ms), and each one's gasUsed."""
    account = Account.from_key(ANVIL_KEYS[devnet.USER])
    to = Account.from_key(ANVIL_KEYS[devnet.PAYEE]).address
    nonce = int(rpc.call("eth_getTransactionCount", account.address, "pending"), 16)
    chain_id = int(rpc.call("eth_chainId"), 16)
    raws = [_signed_transfer(account, to, nonce + i, chain_id) for i in range(count)]
    latencies, gas = [], []
    for raw in raws:
        started = time.perf_counter()
        tx_hash = rpc.call("eth_sendRawTransaction", raw)
        receipt = _poll_receipt(rpc, tx_hash)
        latencies.append((time.perf_counter() - started) * 1000)
        gas.append(int(receipt["gasUsed"], 16))
    return latencies, gas


def windowed_throughput(rpc: Rpc, key: str, windows: int) -> tuple[float, list[float]]:
    """Pre-signed 1-wei transfers from `key`'s account, sent in windows of WINDOW (send them all, wait for the
    last, repeat): transactions per second over all windows, and each window's rate."""
    account = Account.from_key(key)
    to = Account.from_key(ANVIL_KEYS[devnet.DEPLOYER]).address
    nonce = int(rpc.call("eth_getTransactionCount", account.address, "pending"), 16)
    total = windows * WINDOW
    chain_id = int(rpc.call("eth_chainId"), 16)
    raws = [_signed_transfer(account, to, nonce + i, chain_id) for i in range(total)]
    window_rates = []
    started = time.perf_counter()
    for w in range(windows):
        window_started = time.perf_counter()
        hashes = [rpc.call("eth_sendRawTransaction", raw) for raw in raws[w * WINDOW : (w + 1) * WINDOW]]
        _poll_receipt(rpc, hashes[-1])  # consecutive nonces: the last mined means all mined
        window_rates.append(WINDOW / (time.perf_counter() - window_started))
    elapsed = time.perf_counter() - started
    mined = int(rpc.call("eth_getTransactionCount", account.address, "latest"), 16)
    if mined != nonce + total:
        raise BenchError(f"throughput: {mined - nonce} of {total} transfers mined")
    return total / elapsed, window_rates


def anvil_after(report: Report, stack: Stack, phase: str, record: dict[str, Any]) -> None:
    """With the node stopped: raw throughput on this phase's grown chain (Anvil slows as its chain grows)."""
    devnet.stop(stack.node, timeout=10)
    blocks = int(stack.rpc.call("eth_blockNumber"), 16)
    rate, _ = windowed_throughput(stack.rpc, ANVIL_KEYS[devnet.ATTESTOR], 2)
    report.baseline(f"raw_throughput_after_{phase}_tx_per_s", f"raw throughput after {phase} (chain of {blocks:,} blocks)", rate, "tx/s")
    record.update(chain_blocks=blocks, raw_throughput_after_tx_per_s=round(rate, 1))
    _progress(f"raw throughput on this chain after the phase ({blocks:,} blocks): {rate:.0f} tx/s")


def _poll_receipt(rpc: Rpc, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.perf_counter() + timeout
    while True:
        receipt = rpc.call("eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return receipt
        if time.perf_counter() > deadline:
            raise BenchError(f"no receipt for {tx_hash} after {timeout:g} s")


# ---------------------------------------------------------------------------- phase 2: idle latency (+ gas, batch of 1)


def phase_idle(report: Report, settings: Settings, root: Path, seed: int) -> None:
    with (
        report.phase("idle", f"{settings.idle_requests} requests one at a time, random 5-50 ms gaps") as record,
        fresh_stack(root, "idle") as stack,
    ):
        watcher = stack.watcher
        assert watcher is not None
        client = stack.user()
        stack.start_node()
        record["warm_up_seconds"] = round(stack.warm_up(client), 2)
        rng = random.Random(seed)
        latencies, rids, missing = [], [], 0
        last = time.perf_counter()
        for i in range(settings.idle_requests):
            time.sleep(rng.uniform(0.005, 0.05))
            rid, _ = client.ask(stack.median.template_id, stack.median_input(), REQUEST_TIMEOUT)
            rids.append(rid)
            if not watcher.wait(lambda rid=rid: rid in watcher.fulfilled, 30.0, stack.node_alive):
                missing += 1
                _progress(f"request {i}: no callback within 30 s")
                continue
            latencies.append((watcher.fulfilled[rid] - watcher.submitted[rid]) * 1000)
            if time.perf_counter() - last >= 3:
                last = time.perf_counter()
                _progress(f"{i + 1}/{settings.idle_requests} answered, p50 so far {statistics.median(latencies):.1f} ms")
        if not latencies:
            raise BenchError("idle phase: no request was answered")
        time.sleep(0.5)  # a duplicate delivery would show up here
        base = "transfer_send_receipt_p50_ms"
        report.figure("idle_latency_p50_ms", "idle latency p50 (request mined -> callback mined)", statistics.median(latencies), "ms", base)
        report.figure("idle_latency_p90_ms", "idle latency p90", _pct(latencies, 0.9), "ms", base)
        report.figure("idle_latency_p99_ms", "idle latency p99", _pct(latencies, 0.99), "ms", base)
        report.figure("idle_latency_max_ms", "idle latency max", max(latencies), "ms", base)

        ask_gas = [int(stack.rpc.call("eth_getTransactionReceipt", watcher.submitted_tx[r])["gasUsed"], 16) for r in rids[:20]]
        report.figure(
            "request_gas_example_consumer", "request gas, ExampleConsumer.ask (whole tx)", statistics.median(ask_gas), "gas", "transfer_gas"
        )
        rows = _gas_by_batch(stack, stack.deployment.consumer, "ExampleConsumer", settings.traces_per_size)
        report.data["gas_by_batch_size"].extend(rows)
        single = next((r for r in rows if r["batch_size"] == 1), None)
        if single is not None:
            report.figure(
                "gas_per_response_single",
                "gas per response, batch of 1 (ExampleConsumer)",
                single["gas_per_response"],
                "gas",
                "transfer_gas",
            )
            if single["callback_gas_per_response"]:
                report.figure(
                    "callback_gas_single",
                    "  of which the callback (ExampleConsumer, stores output)",
                    single["callback_gas_per_response"],
                    "gas",
                    "gas_per_response_single",
                )
        expected = settings.idle_requests + 1
        report.data["checks"]["idle"] = {
            "requests": expected,
            "answered_on_chain": stack.callback_count(),
            "answered_seen": watcher.answered_by[stack.deployment.consumer],
            **watcher.exactly_once(),
            "not_ok": watcher.not_ok,
            "callbacks_failed": watcher.callback_failed,
            "missing": missing,
        }
        record.update(requests=settings.idle_requests, answered=len(latencies), node_log=str(stack.folder / "node.log"))


# ---------------------------------------------------------------------------- phase 3: sustained responses/s


def _deploy_load_consumer(stack: Stack) -> tuple[TxSender, Any]:
    address = stack.sender.deploy("LoadConsumer", stack.deployment.coprocessor)
    return stack.sender, contract(stack.w3, "LoadConsumer", address)


def _feed(stack: Stack, sender: TxSender, load: Any, txs: int, per_tx: int, window: int) -> list[Any]:
    """Sends `txs` askMany(per_tx) transactions, at most `window` outstanding; returns their receipts."""
    data = bytes.fromhex(
        load.encode_abi("askMany", args=[stack.median.template_id, stack.median_input(), per_tx, REQUEST_TIMEOUT]).removeprefix("0x")
    )
    gas = sender.estimate(load.address, data) * 6 // 5 + 50_000
    receipts = []
    for start in range(0, txs, window):
        hashes = [sender.send(load.address, data, gas=gas) for _ in range(min(window, txs - start))]
        for tx_hash in hashes:
            receipt = sender.wait(tx_hash, 120)
            if receipt["status"] != 1:
                raise BenchError(f"askMany transaction 0x{tx_hash.hex()} reverted")
            receipts.append(receipt)
    return receipts


def phase_sustained(report: Report, settings: Settings, root: Path) -> None:
    fed = settings.sustained_txs * settings.sustained_per_tx
    with (
        report.phase(
            "sustained", f"{fed} requests fed at once ({settings.sustained_txs} txs x {settings.sustained_per_tx}, LoadConsumer)"
        ) as record,
        fresh_stack(root, "sustained") as stack,
    ):
        watcher = stack.watcher
        assert watcher is not None
        sender, load = _deploy_load_consumer(stack)
        stack.start_node()
        record["warm_up_seconds"] = round(stack.warm_up(stack.user()), 2)
        consumer = load.address
        cpu_before = stack.cpu_seconds()
        receipts = _feed(stack, sender, load, settings.sustained_txs, settings.sustained_per_tx, WINDOW)
        if not watcher.wait(lambda: watcher.submitted_by[consumer] >= fed, 30.0):
            raise BenchError(f"sustained phase: saw {watcher.submitted_by[consumer]} of {fed} RequestSubmitted logs")
        with watcher.cond:
            rids = [r for r, c in watcher.consumer_of.items() if c == consumer]
        started = time.perf_counter()

        def progress() -> None:
            done = watcher.answered_by[consumer]
            _progress(f"{done}/{fed} answered ({done / (time.perf_counter() - started):.1f}/s so far)")

        complete = watcher.wait(lambda: watcher.answered_by[consumer] >= fed, settings.phase_timeout, stack.node_alive, progress)
        if not complete:
            _progress(f"timed out after {settings.phase_timeout:g} s: reporting what was answered")
        cpu_after = stack.cpu_seconds()
        time.sleep(0.5)
        with watcher.cond:
            answered = [r for r in rids if r in watcher.fulfilled]
            first = min(watcher.submitted[r] for r in rids)
            last_sub = max(watcher.submitted[r] for r in rids)
            last = max((watcher.fulfilled[r] for r in answered), default=first)
            delays = [(watcher.fulfilled[r] - watcher.submitted[r]) * 1000 for r in answered]
        if not answered:
            raise BenchError("sustained phase: no request was answered")
        rate = len(answered) / (last - first)
        # Where the two cores went: CPU per response of each process, over the feed and the answers.
        cpu_ms = {name: (cpu_after[name] - cpu_before[name]) * 1000 / len(answered) for name in cpu_before}
        cpu_ms["template jobs and the rest"] = cpu_ms["machine"] - sum(v for k, v in cpu_ms.items() if k != "machine")
        record["cpu_ms_per_response"] = {name: round(ms, 2) for name, ms in cpu_ms.items()}
        _progress("CPU per response: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu_ms.items()))
        report.figure(
            "sustained_responses_per_s", f"sustained responses/s ({fed} fed at once)", rate, "responses/s", "raw_throughput_tx_per_s"
        )
        report.figure(
            "sustained_queueing_delay_mean_ms",
            "queueing delay mean (request mined -> callback)",
            statistics.fmean(delays),
            "ms",
            "idle_latency_p50_ms",
        )
        report.figure("sustained_latency_p50_ms", "latency under load p50", statistics.median(delays), "ms", "idle_latency_p50_ms")
        report.figure("sustained_latency_p99_ms", "latency under load p99", _pct(delays, 0.99), "ms", "idle_latency_p50_ms")
        ask_gas = statistics.median(int(r["gasUsed"]) for r in receipts) / settings.sustained_per_tx
        report.figure(
            "request_gas_per_item_batched", f"request gas per request, askMany({settings.sustained_per_tx})", ask_gas, "gas", "transfer_gas"
        )

        rows = _gas_by_batch(stack, consumer, "LoadConsumer", settings.traces_per_size)
        report.data["gas_by_batch_size"].extend(rows)
        if rows:
            total_gas = sum(r["gas_per_response"] * r["batch_size"] * r["txs"] for r in rows)
            total_items = sum(r["batch_size"] * r["txs"] for r in rows)
            report.figure(
                "gas_per_response_sustained",
                "gas per response under load, mean (LoadConsumer)",
                total_gas / total_items,
                "gas",
                "transfer_gas",
            )
            largest = rows[-1]
            report.figure(
                "gas_per_response_largest_batch",
                f"gas per response, largest batch ({largest['batch_size']}, LoadConsumer)",
                largest["gas_per_response"],
                "gas",
                "transfer_gas",
            )
            if largest["callback_gas_per_response"]:
                report.figure(
                    "callback_gas_largest_batch",
                    "  of which the callback (LoadConsumer, counts)",
                    largest["callback_gas_per_response"],
                    "gas",
                    "gas_per_response_largest_batch",
                )
        report.data["checks"]["sustained"] = {
            "requests": fed,
            "answered_on_chain": load.functions.answered().call(),
            "answered_seen": len(answered),
            "example_consumer_callbacks": stack.callback_count(),
            "example_consumer_requests": 1,
            **watcher.exactly_once(),
            "not_ok": watcher.not_ok,
            "callbacks_failed": watcher.callback_failed,
            "complete": complete,
        }
        record.update(
            requests=fed,
            answered=len(answered),
            feed_seconds=round(last_sub - first, 3),
            drain_seconds=round(last - first, 3),
            batches=sorted(Counter(watcher.tx_items[t] for t in watcher.tx_items if watcher.tx_consumers[t] == {consumer}).items()),
            node_log=str(stack.folder / "node.log"),
        )
        anvil_after(report, stack, "sustained", record)


# ---------------------------------------------------------------------------- the nodes phase: 1, 2, 3 nodes on one PostgreSQL journal


def _postgres_pid(postgres: LocalPostgres) -> int:
    """The postmaster's pid: the first line of postmaster.pid in the server's data folder (0 if unreadable)."""
    try:
        return int((postgres.folder / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _cluster_cpu_seconds(stack: Stack, postgres_pid: int) -> dict[str, float]:
    """CPU seconds so far: the nodes, their enclaves, Anvil, PostgreSQL (server and backends), this process, the machine."""
    me = os.times()
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return {
        "nodes": sum(tree_cpu_seconds(m.process.pid) for m in stack.cluster_nodes if m.process is not None),
        "enclaves": sum(tree_cpu_seconds(m.enclave_process.pid) for m in stack.cluster_nodes),
        "anvil": tree_cpu_seconds(stack.anvil_pid),
        "postgres": tree_cpu_seconds(postgres_pid) if postgres_pid else 0.0,
        "bench (feed and watch)": me.user + me.system,
        "machine": (sum(ticks) - ticks[3] - ticks[4]) / _TICKS,
    }


def _nodes_run(report: Report, settings: Settings, root: Path, postgres: LocalPostgres, count: int) -> dict[str, Any]:
    """One cluster size: a fresh Anvil, `count` registered enclaves and nodes on a new database, the sustained feed."""
    fed = settings.sustained_txs * settings.sustained_per_tx
    with fresh_stack(root, f"nodes/{count}-nodes", cluster_size=count) as stack:
        watcher = stack.watcher
        assert watcher is not None
        sender, load = _deploy_load_consumer(stack)
        journal = postgres.new_database(f"bench_{count}_nodes")
        stack.start_cluster(journal)
        record: dict[str, Any] = {"warm_up_seconds": round(stack.warm_up(stack.user()), 2)}
        consumer = load.address
        postgres_pid = _postgres_pid(postgres)
        cpu_before = _cluster_cpu_seconds(stack, postgres_pid)
        receipts = _feed(stack, sender, load, settings.sustained_txs, settings.sustained_per_tx, WINDOW)
        if not watcher.wait(lambda: watcher.submitted_by[consumer] >= fed, 30.0):
            raise BenchError(f"nodes phase, {count} nodes: saw {watcher.submitted_by[consumer]} of {fed} RequestSubmitted logs")
        with watcher.cond:
            rids = [r for r, c in watcher.consumer_of.items() if c == consumer]
        started = time.perf_counter()

        label = f"{count} node{'s' if count > 1 else ''}"

        def progress() -> None:
            done = watcher.answered_by[consumer]
            _progress(f"{label}: {done}/{fed} answered ({done / (time.perf_counter() - started):.1f}/s so far)")

        complete = watcher.wait(lambda: watcher.answered_by[consumer] >= fed, settings.phase_timeout, stack.node_alive, progress)
        if not complete:
            _progress(f"{label}: timed out after {settings.phase_timeout:g} s: reporting what was answered")
        cpu_after = _cluster_cpu_seconds(stack, postgres_pid)
        time.sleep(0.5)  # a duplicate delivery would show up here
        with watcher.cond:
            answered = [r for r in rids if r in watcher.fulfilled]
            first = min(watcher.submitted[r] for r in rids)
            last = max((watcher.fulfilled[r] for r in answered), default=first)
            delays = [(watcher.fulfilled[r] - watcher.submitted[r]) * 1000 for r in answered]
            fulfil_txs = dict(watcher.tx_items)
        if not answered:
            raise BenchError(f"nodes phase, {count} nodes: no request was answered")
        rate = len(answered) / (last - first)
        report.figure(
            f"nodes_{count}_responses_per_s",
            f"responses/s, {label} on one PostgreSQL journal ({fed} fed)",
            rate,
            "responses/s",
            "raw_throughput_tx_per_s",
        )

        # Who sent what: each fulfil transaction's sender is one node's account.
        index_of = {m.account.lower(): m.index for m in stack.cluster_nodes}
        responses: Counter[int] = Counter()
        txs: Counter[int] = Counter()
        for tx, items in fulfil_txs.items():
            sent_by = index_of.get(stack.rpc.call("eth_getTransactionByHash", tx)["from"].lower(), -1)
            responses[sent_by] += items
            txs[sent_by] += 1
        cpu_ms = {name: (cpu_after[name] - cpu_before[name]) * 1000 / len(answered) for name in cpu_before}
        cpu_ms["template jobs and the rest"] = cpu_ms["machine"] - sum(v for k, v in cpu_ms.items() if k != "machine")
        _progress(
            f"{label}: {rate:.1f} responses/s; responses by node {dict(sorted(responses.items()))};"
            f" skipped {watcher.skipped}; CPU per response: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu_ms.items())
        )
        report.data["checks"][f"nodes_{count}"] = {
            "requests": fed,
            "answered_on_chain": load.functions.answered().call(),
            "answered_seen": len(answered),
            "example_consumer_callbacks": stack.callback_count(),
            "example_consumer_requests": 1,
            **watcher.exactly_once(),
            "duplicates": watcher.skipped,  # fulfilments the chain skipped: a request sent again after it settled
            "not_ok": watcher.not_ok,
            "callbacks_failed": watcher.callback_failed,
            "complete": complete,
        }
        record.update(
            nodes=count,
            requests=fed,
            answered=len(answered),
            responses_per_s=round(rate, 1),
            drain_seconds=round(last - first, 3),
            latency_p50_ms=round(statistics.median(delays), 1),
            latency_p99_ms=round(_pct(delays, 0.99), 1),
            request_gas_per_item=statistics.median(int(r["gasUsed"]) for r in receipts) / settings.sustained_per_tx,
            responses_by_node={str(i): n for i, n in sorted(responses.items())},
            fulfil_txs_by_node={str(i): n for i, n in sorted(txs.items())},
            batches=sorted(Counter(n for t, n in fulfil_txs.items() if watcher.tx_consumers[t] == {consumer}).items()),
            cpu_ms_per_response={name: round(ms, 2) for name, ms in cpu_ms.items()},
            journal=journal,
            node_logs=[str(m.log) for m in stack.cluster_nodes],
            enclave_logs=[str(stack.folder / f"enclave-{m.index}.log") for m in stack.cluster_nodes],
        )
        return record


def phase_nodes(report: Report, settings: Settings, root: Path) -> None:
    fed = settings.sustained_txs * settings.sustained_per_tx
    sizes = ", ".join(str(n) for n in NODE_COUNTS)
    with report.phase(
        "nodes",
        f"{fed} requests fed at once ({settings.sustained_txs} txs x {settings.sustained_per_tx}) to {sizes} nodes"
        " sharing one PostgreSQL journal, each its own enclave and account, each size on a fresh Anvil",
    ) as record:
        try:
            postgres = LocalPostgres()
        except ToolchainError as exc:
            raise BenchError(f"nodes phase: {exc}") from exc
        runs: dict[str, Any] = {}
        record.update(folder=str(root / "nodes"), lease_seconds=NODES_LEASE, runs=runs)
        try:
            for count in NODE_COUNTS:
                runs[str(count)] = _nodes_run(report, settings, root, postgres, count)
        finally:
            postgres.stop()
        one = report.value_of("nodes_1_responses_per_s")
        record["scaling_vs_1_node"] = {str(n): round(report.value_of(f"nodes_{n}_responses_per_s") / one, 3) for n in NODE_COUNTS}
        _progress("throughput against 1 node: " + ", ".join(f"{n} {x:.2f}x" for n, x in record["scaling_vs_1_node"].items()))
        if "sustained_responses_per_s" in report.data["figures"]:  # the same feed, 1 node on SQLite, this run
            report.figure(
                "nodes_1_postgres_vs_sqlite",
                "  1 node: PostgreSQL journal against SQLite (sustained)",
                one,
                "responses/s",
                "sustained_responses_per_s",
            )


# ---------------------------------------------------------------------------- phase 4: gas by batch size


def _callback_gas(frame: dict[str, Any], consumer: str) -> int:
    """gasUsed of the calls into `consumer` in a callTracer frame tree (not descending into them)."""
    if frame.get("to", "").lower() == consumer.lower():
        return int(frame.get("gasUsed", "0x0"), 16)
    return sum(_callback_gas(child, consumer) for child in frame.get("calls", []))


def _gas_by_batch(stack: Stack, consumer: str, label: str, traces_per_size: int) -> list[dict[str, Any]]:
    """Per batch size: the node's fulfil txs that answered only `consumer`, their gasUsed per response, and the
    callback's gas per response from a callTracer trace of a few of them."""
    watcher = stack.watcher
    assert watcher is not None
    with watcher.cond:
        by_size: dict[int, list[str]] = defaultdict(list)
        for tx, items in watcher.tx_items.items():
            if watcher.tx_consumers[tx] == {consumer}:
                by_size[items].append(tx)
    rows = []
    for size in sorted(by_size):
        txs = by_size[size]
        gas = [int(stack.rpc.call("eth_getTransactionReceipt", tx)["gasUsed"], 16) for tx in txs]
        step = max(1, len(txs) // traces_per_size)
        callback = []
        for tx in txs[::step][:traces_per_size]:
            trace = stack.rpc.call("debug_traceTransaction", tx, {"tracer": "callTracer"})
            callback.append(_callback_gas(trace, consumer))
        per_response = statistics.fmean(gas) / size
        cb = statistics.fmean(callback) / size if callback else None
        rows.append(
            {
                "consumer": label,
                "batch_size": size,
                "txs": len(txs),
                "gas_per_response": per_response,
                "callback_gas_per_response": cb,
                "callback_share": cb / per_response if cb else None,
                "traced": len(callback),
            }
        )
    return rows


# ---------------------------------------------------------------------------- phase 5: RSS with many pending


def _samples(sampler: MemorySampler, count: int, gap: float = 0.25) -> list[dict[str, float]]:
    found = []
    for _ in range(count):
        time.sleep(gap)
        found.append(sampler.sample())
    return found


def phase_pending(report: Report, settings: Settings, root: Path) -> None:
    fed = settings.pending_txs * settings.pending_per_tx
    with (
        report.phase(
            "pending", f"{fed:,} requests pending ({settings.pending_txs} txs x {settings.pending_per_tx}): RSS at peak and after drain"
        ) as record,
        fresh_stack(root, "pending") as stack,
    ):
        watcher = stack.watcher
        assert watcher is not None and stack.enclave_process is not None
        sender, load = _deploy_load_consumer(stack)
        stack.start_node()
        assert stack.node is not None
        record["warm_up_seconds"] = round(stack.warm_up(stack.user()), 2)
        consumer = load.address
        report.baseline("pending_fed", "requests fed in the pending phase", fed, "requests")
        sampler = MemorySampler(stack.node.pid, stack.enclave_process.pid, watcher.pending)
        time.sleep(1.0)
        idle = _samples(sampler, 4)
        report.baseline(
            "node_rss_idle_mb", "node RSS, idle after one request", statistics.median(s["node_rss_kb"] for s in idle) / MB, "MB"
        )
        report.baseline(
            "enclave_rss_idle_mb", "enclave RSS, idle after one request", statistics.median(s["enclave_rss_kb"] for s in idle) / MB, "MB"
        )
        report.baseline(
            "enclave_tree_pss_idle_mb", "enclave + children PSS, idle", statistics.median(s["enclave_tree_pss_kb"] for s in idle) / MB, "MB"
        )
        # A backlog, as after an outage: the node is stopped while the requests are fed, then started
        # to catch up on all of them at once (a node that keeps up with the feed would never hold one).
        devnet.stop(stack.node, timeout=10)
        feed_started = time.perf_counter()
        window = 10
        sent = 0
        for start in range(0, settings.pending_txs, window):
            count = min(window, settings.pending_txs - start)
            _feed(stack, sender, load, count, settings.pending_per_tx, window)
            sent += count * settings.pending_per_tx
            if start // window % 3 == 2:
                _progress(f"fed {sent:,}/{fed:,} with the node stopped; pending {watcher.pending():,}")
        feed_seconds = time.perf_counter() - feed_started
        watcher.wait(lambda: watcher.submitted_by[consumer] >= fed, 30.0)
        stack.start_node()
        assert stack.node is not None
        first = time.perf_counter()
        sampler = MemorySampler(stack.node.pid, stack.enclave_process.pid, watcher.pending)
        with sampler:

            def progress() -> None:
                done = watcher.answered_by[consumer]
                _progress(
                    f"{done:,}/{fed:,} answered; pending {watcher.pending():,}; node RSS {rss_kb(stack.node.pid) / MB:.0f} MB, enclave {rss_kb(stack.enclave_process.pid) / MB:.0f} MB"
                )  # type: ignore[union-attr]

            drained = watcher.wait(
                lambda: watcher.answered_by[consumer] >= fed, settings.phase_timeout, stack.node_alive, progress, every=15.0
            )
            if not drained:
                _progress(f"not drained after {settings.phase_timeout:g} s: reporting what was answered")
            with watcher.cond:
                answered = watcher.answered_by[consumer]
                last = max((t for r, t in watcher.fulfilled.items() if watcher.consumer_of.get(r) == consumer), default=first)
            time.sleep(2.0)  # let the node settle its bookkeeping
        after = _samples(sampler, 4)
        samples = sampler.samples or after
        peak = max(samples, key=lambda s: s["node_rss_kb"])
        report.figure(
            "pending_peak", f"requests pending at peak (of {fed:,} fed)", max(s["pending"] for s in samples), "requests", "pending_fed"
        )
        report.figure("node_rss_peak_mb", "node RSS at peak", peak["node_rss_kb"] / MB, "MB", "node_rss_idle_mb")
        report.figure("node_rss_drained_mb", "node RSS after drain", after[-1]["node_rss_kb"] / MB, "MB", "node_rss_idle_mb")
        report.figure(
            "enclave_rss_peak_mb", "enclave RSS at peak", max(s["enclave_rss_kb"] for s in samples) / MB, "MB", "enclave_rss_idle_mb"
        )
        report.figure("enclave_rss_drained_mb", "enclave RSS after drain", after[-1]["enclave_rss_kb"] / MB, "MB", "enclave_rss_idle_mb")
        report.figure(
            "enclave_tree_pss_peak_mb",
            "enclave + children PSS at peak",
            max(s["enclave_tree_pss_kb"] for s in samples) / MB,
            "MB",
            "enclave_tree_pss_idle_mb",
        )
        if answered:
            report.figure(
                "drain_responses_per_s",
                f"responses/s draining {fed:,} from a cold node start",
                answered / (last - first),
                "responses/s",
                "raw_throughput_tx_per_s",
            )
        report.data["checks"]["pending"] = {
            "requests": fed,
            "answered_on_chain": load.functions.answered().call(),
            "answered_seen": answered,
            "example_consumer_callbacks": stack.callback_count(),
            "example_consumer_requests": 1,
            **watcher.exactly_once(),
            "not_ok": watcher.not_ok,
            "callbacks_failed": watcher.callback_failed,
            "complete": drained,
        }
        journal = stack.folder / "journal.sqlite"
        record.update(
            requests=fed,
            answered=answered,
            feed_seconds=round(feed_seconds, 2),
            drain_seconds=round(last - first, 2),
            peak_pending_at_node_rss_peak=peak["pending"],
            journal_bytes=sum(p.stat().st_size for p in journal.parent.glob("journal.sqlite*")),
            samples=len(samples),
            node_log=str(stack.folder / "node.log"),
        )
        anvil_after(report, stack, "pending", record)


# ---------------------------------------------------------------------------- phase 7: one node, two chains


@dataclass
class BenchChain:
    """One chain of the chains phase: its Anvil and deployment, ExampleConsumer driven by USER, and its log watcher."""

    chain: dev_chains.DevChain
    deployment_file: Path
    rpc: Rpc
    client: ExampleConsumerClient
    watcher: LogWatcher

    @property
    def chain_id(self) -> int:
        return self.chain.chain_id


@dataclass
class ChainsStack:
    """Two fresh Anvils with the contracts, one DEV enclave answering both (registered on each), and the node
    process once started: `--rpc --deployment` for one chain, or `--chains chains.toml` for both."""

    folder: Path
    chains: list[BenchChain]
    median: Template
    enclave: EnclaveClient
    node: subprocess.Popen[bytes] | None = None
    node_log: Path | None = None

    def median_input(self) -> bytes:
        return encode_args(self.median, [PRICES, MAX_DEVIATION_BPS])

    def start_node(self, name: str, chains: list[str]) -> None:
        """`coprocessor node` serving `chains`, with its own journal (`<name>.sqlite`) and log (`<name>.log`)."""
        self.node_log = self.folder / f"{name}.log"
        token = self.folder / "enclave.token"
        self.node = start_node_process(chains, self.enclave.url, token, self.folder / f"{name}.sqlite", self.node_log)

    def stop_node(self) -> None:
        devnet.stop(self.node, timeout=10)
        self.node = None

    def node_alive(self) -> None:
        if self.node is not None and self.node.poll() is not None:
            tail = "\n".join(self.node_log.read_text(errors="replace").splitlines()[-30:]) if self.node_log else ""
            raise BenchError(f"the node exited with code {self.node.returncode}; its log ends:\n{tail}")

    def warm_up(self, chains: list[BenchChain], timeout: float = 90.0) -> float:
        """One request answered on each of `chains`: the node serves them and the enclave has run the template."""
        started = time.perf_counter()
        for chain in chains:
            rid, _ = chain.client.ask(self.median.template_id, self.median_input(), REQUEST_TIMEOUT)
            if not chain.watcher.wait(lambda rid=rid, w=chain.watcher: rid in w.fulfilled, timeout, self.node_alive):
                raise BenchError(f"chain {chain.chain_id}: warm-up request not answered within {timeout:g} s; see {self.node_log}")
        return time.perf_counter() - started


@contextmanager
def two_chains(root: Path) -> Iterator[ChainsStack]:
    """Two Anvils (chain ids 31337, 31338) with the contracts and the library published, their deployment records
    and chains.toml in `root/chains`, and one DEV enclave answering both, registered on each; torn down after."""
    folder = root / "chains"
    folder.mkdir(parents=True)
    templates = load_templates([TEMPLATES_DIR])
    try:
        running = dev_chains.start_chains(len(CHAIN_IDS), templates.values())
    except ToolchainError as exc:
        raise BenchError(f"chains phase: {exc}") from exc
    enclave_process = None
    stack = None
    members: list[BenchChain] = []
    try:
        records = [folder / ("deployment.json" if i == 0 else f"deployment-{c.chain_id}.json") for i, c in enumerate(running)]
        for chain, record in zip(running, records, strict=True):  # the names dev_chains.chains_file expects
            chain.deployment.save(record)
        (folder / "chains.toml").write_text(dev_chains.chains_file(running, folder))
        enclave_process, enclave = dev_chains.start_enclave(running, [t.path for t in templates.values()], folder)
        for chain, record in zip(running, records, strict=True):
            watcher = LogWatcher(chain.rpc_url.replace("http://", "ws://", 1), chain.deployment.coprocessor)
            w3 = connect(chain.rpc_url)
            client = ExampleConsumerClient(w3, TxSender(w3, ANVIL_KEYS[devnet.USER]), chain.deployment.consumer)
            members.append(BenchChain(chain, record, Rpc(chain.rpc_url), client, watcher))
        stack = ChainsStack(folder, members, find_template(templates, "median-price"), enclave)
        yield stack
    finally:
        if stack is not None:
            stack.stop_node()
        for member in members:
            member.watcher.close()
            member.rpc.close()
        devnet.stop(enclave_process)
        dev_chains.stop_chains(running)


def _idle_rounds(stack: ChainsStack, chains: list[BenchChain], rounds: int, rng: random.Random, label: str) -> dict[int, list[float]]:
    """`rounds` rounds of one request on each of `chains` in a random order, one request at a time: each sent after a
    random 5-50 ms gap once the previous callback is seen. Each chain's latencies (ms), RequestSubmitted log to
    RequestFulfilled log."""
    latencies: dict[int, list[float]] = {c.chain_id: [] for c in chains}
    last = time.perf_counter()
    for i in range(rounds):
        order = list(chains)
        rng.shuffle(order)
        for chain in order:
            time.sleep(rng.uniform(0.005, 0.05))
            rid, _ = chain.client.ask(stack.median.template_id, stack.median_input(), REQUEST_TIMEOUT)
            watcher = chain.watcher
            if not watcher.wait(lambda rid=rid, w=watcher: rid in w.fulfilled, 30.0, stack.node_alive):
                _progress(f"{label}, chain {chain.chain_id}, request {i}: no callback within 30 s")
                continue
            latencies[chain.chain_id].append((watcher.fulfilled[rid] - watcher.submitted[rid]) * 1000)
        if time.perf_counter() - last >= 3:
            last = time.perf_counter()
            _progress(f"{label}: {i + 1}/{rounds} rounds")
    return latencies


def _summary(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of latencies in ms (nothing if there are none)."""
    if not values:
        return {}
    return {
        "p50_ms": round(statistics.median(values), 2),
        "p90_ms": round(_pct(values, 0.9), 2),
        "p99_ms": round(_pct(values, 0.99), 2),
        "max_ms": round(max(values), 2),
    }


def _describe(values: list[float]) -> str:
    if not values:
        return "nothing answered"
    return (
        f"p50 {statistics.median(values):.1f} ms, p90 {_pct(values, 0.9):.1f} ms, p99 {_pct(values, 0.99):.1f} ms ({len(values)} requests)"
    )


def phase_chains(report: Report, settings: Settings, root: Path, seed: int) -> None:
    n = settings.chains_requests
    ids = " and ".join(str(c) for c in CHAIN_IDS)
    with (
        report.phase(
            "chains",
            f"{n} requests per chain one at a time, random 5-50 ms gaps: one node serving chains {ids} (requests"
            " interleaved), against the node serving one chain (each in turn); one enclave answering both",
        ) as record,
        two_chains(root) as stack,
    ):
        runs: dict[str, Any] = {}
        record.update(folder=str(stack.folder), requests_per_chain=n, runs=runs)
        # Each Anvil's raw send+receipt, before any node runs on it.
        for chain in stack.chains:
            for _ in range(20):
                chain.rpc.call("eth_blockNumber")
            raw, _ = send_receipt_latencies(chain.rpc, settings.transfers)
            report.baseline(
                f"chains_{chain.chain_id}_send_receipt_p50_ms",
                f"raw ETH transfer send+receipt p50, Anvil of chain {chain.chain_id}",
                statistics.median(raw),
                "ms",
            )
            record[f"send_receipt_{chain.chain_id}"] = {"transfers": len(raw), **_summary(raw)}

        measured: dict[str, dict[int, list[float]]] = {}
        for chain in stack.chains:  # the node serving one chain: `--rpc --deployment`
            name = f"node-1-chain-{chain.chain_id}"
            stack.start_node(name, ["--rpc", chain.chain.rpc_url, "--deployment", str(chain.deployment_file)])
            assert stack.node is not None
            warm = stack.warm_up([chain])
            label = f"1 chain ({chain.chain_id})"
            found = _idle_rounds(stack, [chain], n, random.Random(seed), label)
            runs[f"1_chain_{chain.chain_id}"] = {
                "command": f"coprocessor node --rpc {chain.chain.rpc_url} --deployment {chain.deployment_file.name}",
                "warm_up_seconds": round(warm, 2),
                "node_rss_mb": round(rss_kb(stack.node.pid) / MB, 1),
                "node_log": str(stack.node_log),
                **{str(c): {"answered": len(v), **_summary(v)} for c, v in found.items()},
            }
            stack.stop_node()
            measured[f"1_{chain.chain_id}"] = found
            _progress(f"{label}: {_describe(found[chain.chain_id])}")

        stack.start_node("node-2-chains", ["--chains", str(stack.folder / "chains.toml")])  # one node, both chains
        assert stack.node is not None
        warm = stack.warm_up(stack.chains)
        both = _idle_rounds(stack, stack.chains, n, random.Random(seed), "2 chains")
        runs["2_chains"] = {
            "command": "coprocessor node --chains chains.toml",
            "warm_up_seconds": round(warm, 2),
            "node_rss_mb": round(rss_kb(stack.node.pid) / MB, 1),
            "node_log": str(stack.node_log),
            **{str(c): {"answered": len(v), **_summary(v)} for c, v in both.items()},
        }
        for chain_id, values in both.items():
            _progress(f"2 chains, chain {chain_id}: {_describe(values)}")
        time.sleep(0.5)  # a duplicate delivery would show up here
        stack.stop_node()

        for size, label in ((1, "1 chain"), (2, "2 chains")):
            for chain_id in CHAIN_IDS:
                values = measured[f"1_{chain_id}"][chain_id] if size == 1 else both[chain_id]
                if not values:
                    raise BenchError(f"chains phase: no request on chain {chain_id} answered by the node serving {label}")
                base = f"chains_{chain_id}_send_receipt_p50_ms"
                key = f"chains_{size}_{chain_id}_latency"
                report.figure(
                    f"{key}_p50_ms", f"chain {chain_id}, node serving {label}: latency p50", statistics.median(values), "ms", base
                )
                report.figure(f"{key}_p90_ms", f"chain {chain_id}, node serving {label}: latency p90", _pct(values, 0.9), "ms", base)
                report.figure(f"{key}_p99_ms", f"chain {chain_id}, node serving {label}: latency p99", _pct(values, 0.99), "ms", base)
        for chain_id in CHAIN_IDS:
            report.figure(
                f"chains_2_vs_1_{chain_id}_p50",
                f"  chain {chain_id} p50: node serving 2 chains against 1",
                report.value_of(f"chains_2_{chain_id}_latency_p50_ms"),
                "ms",
                f"chains_1_{chain_id}_latency_p50_ms",
            )

        for chain in stack.chains:
            expected = 2 * (n + 1)  # a warm-up and n requests from each node
            answered = sum(len(v) for v in measured[f"1_{chain.chain_id}"].values()) + len(both[chain.chain_id])
            report.data["checks"][f"chains_{chain.chain_id}"] = {
                "requests": expected,
                "answered_on_chain": chain.client.consumer.functions.callbackCount().call(),
                "answered_seen": chain.watcher.answered_by[chain.chain.deployment.consumer],
                **chain.watcher.exactly_once(),
                "not_ok": chain.watcher.not_ok,
                "callbacks_failed": chain.watcher.callback_failed,
                "missing": 2 * n - answered,
            }


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small feeds (~165 requests, 20 pending): a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=Path(".coprocessor/bench-node.json"), help="JSON report path")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep each phase's logs, journal and deployment here (default: a temporary folder, removed)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the idle and chains phases' random gaps")
    parser.add_argument("--no-build", action="store_true", help="skip `forge build` (the contracts are already built)")
    parser.add_argument(
        "--node-args", default="", help='extra options for `coprocessor node`, e.g. "--max-batch 25" (default: none, the node\'s defaults)'
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="the phases to run, comma-separated (default: all; the baselines always run, every ratio needs them)",
    )
    parser.add_argument(
        "--phase-timeout", type=float, default=None, help="seconds a load phase waits for its callbacks (default 900, quick 60)"
    )
    options = parser.parse_args()
    phases = {p.strip() for p in options.phases.split(",") if p.strip()}
    if unknown := phases - set(PHASES):
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}: choose from {', '.join(PHASES)}")
    settings = QUICK if options.quick else FULL
    if options.phase_timeout is not None:
        settings = Settings(**{**settings.__dict__, "phase_timeout": options.phase_timeout})
    if not options.no_build:
        forge_build()
    NODE_ARGS[:] = shlex.split(options.node_args)
    report = Report(settings, options.quick)
    report.data["node_args"] = NODE_ARGS
    started = time.perf_counter()
    print(
        f"node benchmark ({report.data['mode']}): {report.data['machine']['nproc']} CPUs, Python {report.data['machine']['python']}, {report.data['machine']['anvil']}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-node-") as scratch:
        root = options.work_dir or Path(scratch)
        root = root / time.strftime("%Y%m%d-%H%M%S") if options.work_dir else root
        failure = None
        try:
            phase_baselines(report, settings, root)
            if "idle" in phases:
                phase_idle(report, settings, root, options.seed)
            if "sustained" in phases:
                phase_sustained(report, settings, root)
            report.data["phases"]["gas"] = {
                "description": "gas per response by batch size, from the node's fulfil receipts of the idle and"
                " sustained phases, traced (callTracer) before each phase's Anvil stopped",
            }
            if "nodes" in phases:
                phase_nodes(report, settings, root)
            if "pending" in phases:
                phase_pending(report, settings, root)
            if "chains" in phases:
                phase_chains(report, settings, root, options.seed)
        except BenchError as exc:
            failure = str(exc)
            report.data["error"] = failure
        finally:
            report.data["seconds"] = round(time.perf_counter() - started, 1)
            report.write(options.out)
    report.print_table()
    print(f"\n{report.data['seconds']:.0f} s in all; report written to {options.out}")
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(1)
    failed = {
        name: c
        for name, c in report.data["checks"].items()
        if c["answered_on_chain"] != c["requests"] or c["settled_twice"] or c["skipped"]
    }
    if failed:
        print(f"error: not every request was answered exactly once: {json.dumps(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
