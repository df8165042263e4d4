"""A node killed with SIGKILL mid-flight resumes from its journal: every request settles exactly once."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eth_abi import decode, encode

from coprocessor import devnet
from coprocessor.chain import ANVIL_KEYS, contract
from coprocessor.journal import Journal, State
from coprocessor_enclave.protocol import REQUEST_FULFILLED_TOPIC, Status

from .conftest import Devnet

REQUESTS = 12


def _start_node(stack: Devnet, deployment_path: Path, journal_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "coprocessor", "node",
        "--rpc", stack.rpc_url,
        "--deployment", str(deployment_path),
        "--enclave", stack.enclave_url,
        "--enclave-token-file", str(stack.enclave_token_file),
        "--journal", str(journal_path),
    ]
    env = {**os.environ, "COPROCESSOR_NODE_KEY": ANVIL_KEYS[devnet.NODE]}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "ab"))  # noqa: SIM115


def test_node_sigkillMidFlightSettlesEveryRequestExactlyOnce(stack: Devnet, tmp_path: Path) -> None:
    slow = stack.template("slow-echo")
    consumer = contract(stack.w3, "ExampleConsumer", stack.deployment.consumer)
    callbacks_before = consumer.functions.callbackCount().call()
    deployment_path = tmp_path / "deployment.json"
    start_block = stack.w3.eth.block_number
    dataclasses.replace(stack.deployment, start_block=start_block).save(deployment_path)
    journal_path, log_path = tmp_path / "journal.sqlite", tmp_path / "node.log"

    first = _start_node(stack, deployment_path, journal_path, log_path)
    client = stack.user()
    sent = [client.ask(slow.template_id, encode(["uint256", "uint32"], [value, 250])) for value in range(REQUESTS)]

    # Kill as soon as some requests are settled and others are still in the enclave or in a transaction.
    deadline = time.monotonic() + 30
    while sum(client.answer(rid) is not None for rid, _ in sent) < 2:
        assert time.monotonic() < deadline, f"first node settled nothing; log:\n{log_path.read_text()}"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    answered_at_kill = sum(client.answer(rid) is not None for rid, _ in sent)
    assert answered_at_kill < REQUESTS, "all requests finished before the kill: nothing was in flight"

    second = _start_node(stack, deployment_path, journal_path, log_path)
    try:
        answers = [client.wait(rid, sent_at, timeout=60) for rid, sent_at in sent]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)

    for value, answer in enumerate(answers):
        assert answer.status == Status.OK
        assert decode(["uint256"], answer.output) == (value,)
    assert consumer.functions.callbackCount().call() - callbacks_before == REQUESTS
    fulfilled = stack.w3.eth.get_logs(
        {
            "address": stack.deployment.coprocessor,
            "fromBlock": start_block,
            "toBlock": "latest",
            "topics": ["0x" + REQUEST_FULFILLED_TOPIC.hex()],
        }
    )
    settled_ids = [bytes(entry["topics"][1]) for entry in fulfilled]
    assert sorted(settled_ids) == sorted(rid for rid, _ in sent), "each request must settle exactly once"
    journal = Journal(journal_path)
    assert {e.request.request_id for e in journal.entries(State.SETTLED)} == {rid for rid, _ in sent}
