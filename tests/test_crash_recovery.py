"""A node killed with SIGKILL mid-batch resumes from its journal: every request settles exactly once."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from eth_abi import decode, encode

from coprocessor.chain import ANVIL_KEYS, contract
from coprocessor.dev import devnet
from coprocessor.node.journal import Journal, State
from coprocessor_enclave.protocol import FULFILLMENT_SKIPPED_TOPIC, REQUEST_FULFILLED_TOPIC, REQUEST_SUBMITTED_TOPIC, Status

from .conftest import Devnet

REQUESTS = 40  # five waves of the node's 8 enclave runs: work still waits while the second batch is in flight, even under load
SLEEP_MS = 400


def _start_node(stack: Devnet, deployment_path: Path, journal_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "coprocessor",
        "node",
        "--rpc",
        stack.rpc_url,
        "--deployment",
        str(deployment_path),
        "--enclave",
        stack.enclave_url,
        "--enclave-token-file",
        str(stack.enclave_token_file),
        "--journal",
        str(journal_path),
    ]
    env = {**os.environ, "COPROCESSOR_NODE_KEY": ANVIL_KEYS[devnet.NODE]}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "ab"))  # noqa: SIM115


def _mid_batch(journal_path: Path) -> tuple[str, int] | None:
    """A fulfil transaction of several items that is sent and not yet mined, while other requests are still
    waiting to be run, running or waiting to be sent: (its hash, its size), or None."""
    if not journal_path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True, timeout=1)) as db:
            batches = db.execute(
                "SELECT tx_hash, COUNT(*) FROM requests WHERE state = 'submitted' AND mined_block IS NULL"
                " GROUP BY tx_hash HAVING COUNT(*) >= 2"
            ).fetchall()
            (waiting,) = db.execute("SELECT COUNT(*) FROM requests WHERE state IN ('seen', 'running', 'signed')").fetchone()
    except sqlite3.OperationalError:  # the node is still creating the schema
        return None
    return (batches[0][0], batches[0][1]) if batches and waiting else None


def _settled(journal_path: Path) -> int:
    with closing(sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True, timeout=1)) as db:
        return db.execute("SELECT COUNT(*) FROM requests WHERE state = 'settled'").fetchone()[0]


def test_node_sigkillMidBatchSettlesEveryRequestExactlyOnce(stack: Devnet, tmp_path: Path) -> None:
    w3 = stack.w3
    slow = stack.template("slow-echo")
    consumer = contract(w3, "ExampleConsumer", stack.deployment.consumer)
    callbacks_before = consumer.functions.callbackCount().call()
    deployment_path = tmp_path / "deployment.json"
    start_block = w3.eth.block_number
    dataclasses.replace(stack.deployment, start_block=start_block).save(deployment_path)
    journal_path, log_path = tmp_path / "journal.sqlite", tmp_path / "node.log"

    # A block a second: a fulfil batch stays pending long enough to kill the node while it is in flight,
    # and the responses signed meanwhile gather into batches of several items.
    assert "error" not in w3.provider.make_request("evm_setIntervalMining", [1])
    second = None
    try:
        first = _start_node(stack, deployment_path, journal_path, log_path)
        client = stack.user()
        # A burst: every request sent at once, mined in the next block.
        ask_txs = []
        for value in range(REQUESTS):
            data = client.consumer.encode_abi("ask", args=[slow.template_id, encode(["uint256", "uint32"], [value, SLEEP_MS]), 300])
            ask_txs.append(client.sender.send(client.consumer.address, bytes.fromhex(data.removeprefix("0x")), gas=1_000_000))
        request_ids = []
        for tx_hash in ask_txs:
            receipt = client.sender.wait(tx_hash, timeout=30)
            request_ids += [bytes(e["topics"][1]) for e in receipt["logs"] if bytes(e["topics"][0]) == REQUEST_SUBMITTED_TOPIC]
        assert len(request_ids) == REQUESTS

        # Kill while a batch of several is in flight and other requests are still in the enclave or waiting.
        deadline = time.monotonic() + 30
        while (in_flight := _mid_batch(journal_path)) is None:
            assert first.poll() is None, f"first node exited; log:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"never caught a batch in flight; log:\n{log_path.read_text()}"
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait()
        batch_tx, batch_size = in_flight
        answered_at_kill = sum(client.answer(rid) is not None for rid in request_ids)
        assert answered_at_kill < REQUESTS, "all requests finished before the kill: nothing was in flight"

        second = _start_node(stack, deployment_path, journal_path, log_path)
        answers = [client.wait(rid, time.monotonic(), timeout=60) for rid in request_ids]
        # The node journals a settlement when its listener reads the block: give it that block.
        deadline = time.monotonic() + 10
        while _settled(journal_path) < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if second is not None:
            second.send_signal(signal.SIGTERM)
            second.wait(10)
        w3.provider.make_request("evm_setIntervalMining", [0])
        w3.provider.make_request("evm_setAutomine", [True])

    for value, answer in enumerate(answers):
        assert answer.status == Status.OK
        assert decode(["uint256"], answer.output) == (value,)
    assert consumer.functions.callbackCount().call() - callbacks_before == REQUESTS

    def logs(topic: bytes) -> list[dict]:
        return list(
            w3.eth.get_logs(
                {"address": stack.deployment.coprocessor, "fromBlock": start_block, "toBlock": "latest", "topics": ["0x" + topic.hex()]}
            )
        )

    fulfilled = logs(REQUEST_FULFILLED_TOPIC)
    settled_ids = [bytes(entry["topics"][1]) for entry in fulfilled]
    assert sorted(settled_ids) == sorted(request_ids), "each request must settle exactly once"
    # The batch in flight at the kill was adopted by the second node, not sent again beside the original.
    in_batch = [bytes(e["topics"][1]) for e in fulfilled if bytes(e["transactionHash"]).hex() == batch_tx]
    assert len(in_batch) == batch_size >= 2
    skipped = {bytes(e["topics"][1]) for e in logs(FULFILLMENT_SKIPPED_TOPIC)}
    assert not skipped & set(in_batch), "a request of the batch in flight was sent a second time"
    journal = Journal(journal_path)
    assert {e.request.request_id for e in journal.entries(State.SETTLED)} == set(request_ids)
