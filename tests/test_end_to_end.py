"""Requests answered end to end on a real Anvil: consumer -> node -> enclave -> Coprocessor -> consumer."""

from __future__ import annotations

import time
from pathlib import Path

from eth_abi import decode, encode

from coprocessor.chain import ANVIL_KEYS, TxSender, contract
from coprocessor.dev import devnet
from coprocessor.errors import EnclaveError
from coprocessor.node import catalog
from coprocessor.node.journal import State
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import Request, RequestState, Status
from coprocessor_enclave.template import encode_args

from .conftest import Devnet


def test_request_callbackCarriesTemplateOutput(stack: Devnet, node: Node) -> None:
    median = stack.template("median-price")
    client = stack.user()
    request_id, sent_at = client.ask(median.template_id, encode_args(median, [[100, 104, 98, 1000, 101], 500]))
    answer = client.wait(request_id, sent_at)
    assert answer.status == Status.OK
    # 1000 is rejected as an outlier; the median of [100, 104, 98, 101] is (100 + 101) // 2.
    assert decode(["uint256", "uint16"], answer.output) == (100, 4)


def test_request_feeCreditedToEnclavePayee(stack: Devnet, node: Node) -> None:
    median = stack.template("median-price")
    coprocessor = contract(stack.w3, "Coprocessor", stack.deployment.coprocessor)
    before = coprocessor.functions.balanceOf(stack.payee).call()
    client = stack.user()
    fee = 10**15
    request_id, sent_at = client.ask(median.template_id, encode_args(median, [[5], 0]), fee=fee)
    assert client.wait(request_id, sent_at).status == Status.OK
    assert coprocessor.functions.balanceOf(stack.payee).call() == before + fee


def test_request_malformedInputSettlesAsInvalidInput(stack: Devnet, node: Node) -> None:
    median = stack.template("median-price")
    client = stack.user()
    request_id, sent_at = client.ask(median.template_id, b"\x00\x01 not abi")
    answer = client.wait(request_id, sent_at)
    assert answer.status == Status.INVALID_INPUT
    assert b"does not decode" in answer.output


def test_request_templateExceptionSettlesAsTemplateError(stack: Devnet, node: Node) -> None:
    failing = stack.template("raises-error")
    client = stack.user()
    request_id, sent_at = client.ask(failing.template_id, encode(["string"], ["boom at 42"]))
    answer = client.wait(request_id, sent_at)
    assert answer.status == Status.TEMPLATE_ERROR
    assert answer.output.decode() == "RuntimeError: boom at 42"


def test_request_publishedTemplateTheEnclaveLacksSettlesAsInvalidInput(stack: Devnet, node: Node) -> None:
    # The chain refuses ids nobody published (test_template_registry.py); this one is published, never served.
    missing = b"\x42" * 32
    author = TxSender(stack.w3, ANVIL_KEYS[devnet.AUTHOR])
    catalog.publish(author, stack.deployment.template_registry, missing, "served-nowhere", "1.0.0")
    client = stack.user()
    request_id, sent_at = client.ask(missing, b"")
    answer = client.wait(request_id, sent_at)
    assert answer.status == Status.INVALID_INPUT
    assert answer.output.startswith(b"unknown template")


def test_request_expiredWhileNodeDownIsCancelledAndRefunded(stack: Devnet, tmp_path: Path) -> None:
    median = stack.template("median-price")
    coprocessor = contract(stack.w3, "Coprocessor", stack.deployment.coprocessor)
    start_block = stack.w3.eth.block_number
    client = stack.user()
    fee = 3 * 10**15
    refunds_before = coprocessor.functions.balanceOf(stack.deployment.consumer).call()
    request_id, _ = client.ask(median.template_id, encode_args(median, [[1, 2, 3], 100]), timeout=5, fee=fee)
    stack.w3.provider.make_request("evm_increaseTime", [60])
    stack.w3.provider.make_request("evm_mine", [])

    node, thread = stack.start_node(tmp_path / "journal.sqlite", start_block)
    try:
        deadline = time.monotonic() + 30
        while RequestState(coprocessor.functions.requestState(request_id).call()) == RequestState.PENDING:
            assert time.monotonic() < deadline, "expired request was never cancelled"
            time.sleep(0.05)
    finally:
        node.stop()
        thread.join(10)
    assert RequestState(coprocessor.functions.requestState(request_id).call()) == RequestState.CANCELLED
    assert coprocessor.functions.balanceOf(stack.deployment.consumer).call() == refunds_before + fee
    assert client.answer(request_id) is None, "an expired request must not be called back"
    entry = node.journal.get(request_id)
    assert entry is not None and entry.state == State.EXPIRED


def test_enclave_refusesInputThatDoesNotMatchCommitment(stack: Devnet) -> None:
    median = stack.template("median-price")
    request = Request(b"\x01" * 32, stack.deployment.consumer, median.template_id, b"\x00" * 32, 100_000, 0, 2**40, 1, b"\x00" * 32)
    try:
        stack.enclave().run(request, encode_args(median, [[1], 0]))
    except EnclaveError as exc:
        assert "inputHash" in str(exc)
    else:
        raise AssertionError("the enclave signed a response for an input the request did not commit to")


def test_request_endlessTemplateSettlesAsTimeout(stack: Devnet, node: Node) -> None:
    client = stack.user()
    request_id, sent_at = client.ask(stack.template("spins").template_id, b"")
    answer = client.wait(request_id, sent_at)
    assert answer.status == Status.TIMEOUT


def test_request_memoryHogSettlesAsResourceLimit(stack: Devnet, node: Node) -> None:
    client = stack.user()
    request_id, sent_at = client.ask(stack.template("eats-memory").template_id, b"")
    answer = client.wait(request_id, sent_at)
    assert answer.status == Status.RESOURCE_LIMIT
    assert answer.output.startswith(b"MemoryError")
