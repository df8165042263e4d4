"""Scheduled jobs on Anvil: the node's leader triggers each due run of a subscription by chain time, each run
settles as a request carrying its run index, and a node restarted mid-schedule neither doubles nor loses a run;
a cron schedule's runs start on its due times, checked by the chain."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from coprocessor.chain import ANVIL_KEYS, TxSender, contract
from coprocessor.cron import compile_cron, next_due_times
from coprocessor.dev import devnet
from coprocessor_enclave.protocol import REQUEST_FULFILLED_TOPIC

from .conftest import Devnet

INTERVAL, RUNS = 3600, 4
NEVER = 2**256 - 1  # `nextRunAt`'s due time of a finished subscription


def _advance(stack: Devnet, seconds: int) -> None:
    stack.w3.provider.make_request("evm_increaseTime", [seconds])
    stack.w3.provider.make_request("evm_mine", [])


def _wait_calls(consumer: object, calls: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    seen = consumer.functions.calls().call()  # type: ignore[attr-defined]
    while seen < calls and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = consumer.functions.calls().call()  # type: ignore[attr-defined]
    return int(seen)


def test_subscription_runsOnScheduleAndSurvivesANodeRestart(stack: Devnet, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="coprocessor")
    w3, deployment = stack.w3, stack.deployment
    owner = TxSender(w3, ANVIL_KEYS[devnet.USER])
    consumer = contract(w3, "RunConsumer", owner.deploy("RunConsumer", deployment.subscriptions))
    subscriptions = contract(w3, "Subscriptions", deployment.subscriptions)
    template_id = stack.template("run-echo").template_id
    fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(template_id).call()
    start = w3.eth.get_block("latest")["timestamp"] + 60
    schedule = (start, INTERVAL, RUNS, 600, 0, 0)  # startAt, interval, maxRuns, tolerance, RunLate, no cron
    data = subscriptions.encode_abi("create", args=[consumer.address, template_id, b"job", schedule, 100_000, 3600])
    assert owner.wait(owner.send(deployment.subscriptions, bytes.fromhex(data[2:]), value=fee * RUNS))["status"] == 1
    first_block = w3.eth.block_number

    node, thread = stack.start_node(tmp_path / "journal.sqlite", start_block=first_block)
    try:
        time.sleep(1.0)
        assert consumer.functions.calls().call() == 0, "run 0 is not due before startAt"
        _advance(stack, 60)
        assert _wait_calls(consumer, 1) == 1, caplog.text[-3000:]
        _advance(stack, INTERVAL)
        assert _wait_calls(consumer, 2) == 2
    finally:
        node.stop()
        thread.join(10)

    _advance(stack, INTERVAL)  # run 2 falls due while no node runs
    node, thread = stack.start_node(tmp_path / "journal.sqlite", start_block=first_block)
    try:
        assert _wait_calls(consumer, 3) == 3, "the run due during the outage is run late, within its tolerance"
        _advance(stack, INTERVAL)
        assert _wait_calls(consumer, 4) == 4
        _advance(stack, INTERVAL)
        time.sleep(1.5)
        assert consumer.functions.calls().call() == RUNS, "no run past maxRuns, none doubled"
        assert consumer.functions.lastRunIndex().call() == RUNS - 1
    finally:
        node.stop()
        thread.join(10)

    triggered = subscriptions.events.RunTriggered().get_logs(from_block=first_block)
    assert sorted(int(e["args"]["runIndex"]) for e in triggered) == list(range(RUNS))
    fulfilled = w3.eth.get_logs(
        {"address": deployment.coprocessor, "fromBlock": first_block, "topics": ["0x" + REQUEST_FULFILLED_TOPIC.hex()]}
    )
    assert sorted(bytes(e["topics"][1]) for e in fulfilled) == sorted(bytes(e["args"]["requestId"]) for e in triggered)


def test_subscription_runThatExpired_itsFeeIsReclaimedToTheBudget(stack: Devnet, tmp_path: Path) -> None:
    w3, deployment = stack.w3, stack.deployment
    owner = TxSender(w3, ANVIL_KEYS[devnet.USER])
    consumer = contract(w3, "RunConsumer", owner.deploy("RunConsumer", deployment.subscriptions))
    subscriptions = contract(w3, "Subscriptions", deployment.subscriptions)
    template_id = stack.template("run-echo").template_id
    fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(template_id).call()
    schedule = (0, INTERVAL, 1, 600, 0, 0)
    data = subscriptions.encode_abi("create", args=[consumer.address, template_id, b"late", schedule, 100_000, 120])
    owner.wait(owner.send(deployment.subscriptions, bytes.fromhex(data[2:]), value=fee))
    sub_id = subscriptions.functions.subscriptionCount().call()
    first_block = w3.eth.block_number
    # Triggered by anyone while no node runs, then left past its 120 s timeout.
    trigger = subscriptions.encode_abi("trigger", args=[sub_id])
    assert owner.wait(owner.send(deployment.subscriptions, bytes.fromhex(trigger[2:])))["status"] == 1
    assert subscriptions.functions.subscriptions(sub_id).call()[5] == 0, "the budget paid the run"
    _advance(stack, 300)

    node, thread = stack.start_node(tmp_path / "journal.sqlite", start_block=first_block)
    try:
        deadline = time.monotonic() + 30
        while not subscriptions.events.RunRefunded().get_logs(from_block=first_block) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        node.stop()
        thread.join(10)
    assert subscriptions.events.RunRefunded().get_logs(from_block=first_block), "the node reclaimed the expired run"
    assert subscriptions.functions.subscriptions(sub_id).call()[5] == fee, "its fee is back in the budget"
    assert consumer.functions.calls().call() == 0


def _mine_at(stack: Devnet, timestamp: int) -> None:
    stack.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
    stack.w3.provider.make_request("evm_mine", [])


def test_subscription_cronRunsOnItsDueTimes_answeredByTheNode(stack: Devnet, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="coprocessor")
    w3, deployment = stack.w3, stack.deployment
    owner = TxSender(w3, ANVIL_KEYS[devnet.USER])
    consumer = contract(w3, "RunConsumer", owner.deploy("RunConsumer", deployment.subscriptions))
    subscriptions = contract(w3, "Subscriptions", deployment.subscriptions)
    template_id = stack.template("run-echo").template_id
    fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(template_id).call()
    expression, runs, tolerance = "30 */2 * * *", 3, 600  # every two hours at half past
    start = w3.eth.get_block("latest")["timestamp"] + 120  # nothing due while the node starts
    due = next_due_times(expression, start, runs + 1)
    schedule = (start, 0, runs, tolerance, 0, compile_cron(expression))  # startAt, no interval, maxRuns, tolerance, RunLate, cron
    data = subscriptions.encode_abi("create", args=[consumer.address, template_id, b"cron", schedule, 100_000, 3600])
    assert owner.wait(owner.send(deployment.subscriptions, bytes.fromhex(data[2:]), value=fee * (runs + 1)))["status"] == 1
    sub_id = subscriptions.functions.subscriptionCount().call()
    assert subscriptions.functions.nextRunAt(sub_id).call() == [0, due[0]], "the chain's first due time is APScheduler's"
    first_block = w3.eth.block_number

    node, thread = stack.start_node(tmp_path / "journal.sqlite", start_block=first_block)
    try:
        time.sleep(1.0)
        assert consumer.functions.calls().call() == 0, "nothing runs before the first due time"
        for k in range(runs):
            _mine_at(stack, due[k])
            assert _wait_calls(consumer, k + 1) == k + 1, caplog.text[-3000:]
            assert subscriptions.functions.nextRunAt(sub_id).call() == [k + 1, due[k + 1] if k + 1 < runs else NEVER]
        _mine_at(stack, due[runs])  # a due time past maxRuns
        time.sleep(1.5)
        assert consumer.functions.calls().call() == runs, "no run past maxRuns, none doubled"
        assert consumer.functions.lastRunIndex().call() == runs - 1
    finally:
        node.stop()
        thread.join(10)

    triggered = [e for e in subscriptions.events.RunTriggered().get_logs(from_block=first_block) if e["args"]["id"] == sub_id]
    assert [int(e["args"]["runIndex"]) for e in triggered] == list(range(runs))
    for event, due_at in zip(triggered, due, strict=False):
        started = w3.eth.get_block(event["blockNumber"])["timestamp"]
        assert due_at <= started <= due_at + tolerance, "each run starts on its due time"
    assert not subscriptions.events.DueTimesMissed().get_logs(from_block=first_block)
    fulfilled = w3.eth.get_logs(
        {"address": deployment.coprocessor, "fromBlock": first_block, "topics": ["0x" + REQUEST_FULFILLED_TOPIC.hex()]}
    )
    assert {bytes(e["args"]["requestId"]) for e in triggered} <= {bytes(e["topics"][1]) for e in fulfilled}
