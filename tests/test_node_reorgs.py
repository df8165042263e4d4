"""The node against a chain that changes its mind: reorgs, dropped transactions, an RPC that restarts.

Each test drives a real Anvil (the pinned 1.7.1) with its own tools (`anvil_reorg`, `anvil_rollback`,
`anvil_dropTransaction`, `evm_setAutomine`, `--state`) and checks the final chain: every request is
settled exactly once, with the answer to the request that is on that chain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from eth_abi import decode, encode
from web3 import Web3

from coprocessor.chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
from coprocessor.dev import devnet
from coprocessor.dev.consumer import ExampleConsumerClient
from coprocessor.node.enclave_client import EnclaveClient
from coprocessor.node.journal import Journal, State
from coprocessor.node.listener import Listener, decode_request_submitted
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import (
    FULFILLMENT_SKIPPED_TOPIC,
    REQUEST_FULFILLED_TOPIC,
    REQUEST_SUBMITTED_TOPIC,
    Fulfillment,
    Status,
    encode_fulfill,
)
from coprocessor_enclave.template import load_templates

from .conftest import TEST_TEMPLATES, Devnet

T = TypeVar("T")


# ---------------------------------------------------------------------- helpers


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, f"{method}: {response}"
    return response.get("result")


def _wait_for(what: str, predicate: Callable[[], T | None], timeout: float, poll: float = 0.01) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def _echo_input(value: int, sleep_ms: int = 0) -> bytes:
    return encode(["uint256", "uint32"], [value, sleep_ms])


def _logs(w3: Web3, coprocessor: str, topic: bytes, request_id: bytes, from_block: int) -> list[Any]:
    return list(
        w3.eth.get_logs(
            {
                "address": coprocessor,
                "fromBlock": from_block,
                "toBlock": "latest",
                "topics": ["0x" + topic.hex(), "0x" + request_id.hex()],
            }
        )
    )


def _journal_state(journal: Journal, request_id: bytes) -> State | None:
    entry = journal.get(request_id)
    return None if entry is None else entry.state


def _settled_in_journal(journal: Journal, request_id: bytes) -> bool:
    return _journal_state(journal, request_id) == State.SETTLED


def _callbacks(stack: Devnet) -> int:
    return contract(stack.w3, "ExampleConsumer", stack.deployment.consumer).functions.callbackCount().call()


@contextmanager
def _manual_mining(w3: Web3) -> Iterator[None]:
    """Automine off: transactions wait in the pool until `evm_mine`."""
    _rpc(w3, "evm_setAutomine", False)
    try:
        yield
    finally:
        _rpc(w3, "evm_setAutomine", True)


def _ask_unmined(client: ExampleConsumerClient, template_id: bytes, input_data: bytes) -> bytes:
    """Sends `ask` without waiting for it to be mined; returns the transaction hash."""
    data = client.consumer.encode_abi("ask", args=[template_id, input_data, 300])
    return client.sender.send(client.consumer.address, bytes.fromhex(data.removeprefix("0x")), gas=1_000_000)


def _request_id(client: ExampleConsumerClient, ask_tx: bytes) -> bytes:
    """The id of the request an `ask` transaction opened."""
    receipt = client.sender.wait(ask_tx, timeout=5)
    (submitted,) = [e for e in receipt["logs"] if e["topics"] and bytes(e["topics"][0]) == REQUEST_SUBMITTED_TOPIC]
    return bytes(submitted["topics"][1])


def _submitted_tx(journal: Journal, request_id: bytes) -> str | None:
    """The transaction the node sent the request in, while it is submitted."""
    entry = journal.get(request_id)
    return entry.tx_hash if entry is not None and entry.state == State.SUBMITTED else None


# ---------------------------------------------------------------------- 1. a reorg removes a fulfilment
# (the test of item 4, SIGKILL mid-batch, is tests/test_crash_recovery.py)


def test_reorg_removingFulfilTxFulfilsAgainExactlyOnce(stack: Devnet, node: Node) -> None:
    w3, coprocessor = stack.w3, stack.deployment.coprocessor
    echo = stack.template("slow-echo")
    client = stack.user()
    callbacks_before = _callbacks(stack)

    request_id, _ = client.ask(echo.template_id, _echo_input(7))
    request_block = _logs(w3, coprocessor, REQUEST_SUBMITTED_TOPIC, request_id, 0)[-1]["blockNumber"]
    _wait_for("the node to settle the request", lambda: _settled_in_journal(node.journal, request_id), 20)
    (fulfilled,) = _logs(w3, coprocessor, REQUEST_FULFILLED_TOPIC, request_id, request_block)
    fulfil_block, fulfil_tx = fulfilled["blockNumber"], bytes(fulfilled["transactionHash"])
    assert request_block < fulfil_block, "the fulfilment must be in a later block than the request"
    old_hash = bytes(w3.eth.get_block(fulfil_block)["hash"])

    # Replace every block from the fulfilment's up with empty ones: the request stays, its fulfilment is gone
    # (Anvil does not put the removed transactions back in its pool).
    depth = w3.eth.block_number - fulfil_block + 1
    _rpc(w3, "anvil_reorg", depth, [])
    replaced = w3.eth.get_block(fulfil_block)
    assert bytes(replaced["hash"]) != old_hash and fulfil_tx not in [bytes(t) for t in replaced["transactions"]]

    # The node notices, rewinds and fulfils again.
    def fulfilled_again() -> list[Any] | None:
        logs = _logs(w3, coprocessor, REQUEST_FULFILLED_TOPIC, request_id, request_block)
        return logs or None

    _wait_for("a second fulfilment on the new chain", fulfilled_again, 10)
    _wait_for("the journal to settle the request again", lambda: _settled_in_journal(node.journal, request_id), 10)
    time.sleep(0.5)  # room for a wrong extra fulfilment to show up
    final = _logs(w3, coprocessor, REQUEST_FULFILLED_TOPIC, request_id, request_block)
    assert len(final) == 1, "exactly one RequestFulfilled for the request on the final chain"
    assert _logs(w3, coprocessor, FULFILLMENT_SKIPPED_TOPIC, request_id, request_block) == [], "no duplicate sent"
    assert _callbacks(stack) - callbacks_before == 1
    answer = client.answer(request_id)
    assert answer is not None and answer[0] == Status.OK and decode(["uint256"], answer[1]) == (7,)
    entry = node.journal.get(request_id)
    assert entry is not None and entry.state == State.SETTLED
    assert entry.tx_hash == bytes(final[0]["transactionHash"]).hex()
    assert node.listener.reorgs >= 1


def test_reorg_removingFulfilBelowOneInFlightFillsTheNonceGap(stack: Devnet, node: Node) -> None:
    """A reorg removes a mined fulfilment while the next one is pending: the pending one cannot be mined until
    its nonce gap is filled, so the re-signed request must go out at once, not wait for a full batch."""
    w3, coprocessor = stack.w3, stack.deployment.coprocessor
    echo = stack.template("slow-echo")
    client = stack.user()
    callbacks_before = _callbacks(stack)

    with _manual_mining(w3):
        asks = [
            _ask_unmined(client, echo.template_id, _echo_input(1)),
            _ask_unmined(client, echo.template_id, _echo_input(2, sleep_ms=1500)),
        ]
        _rpc(w3, "evm_mine")  # both requests in one block
        first_id, second_id = (_request_id(client, tx) for tx in asks)
        request_block = w3.eth.block_number
        _wait_for("the first fulfilment to be sent", lambda: _submitted_tx(node.journal, first_id), 10)
        _rpc(w3, "evm_mine")
        fulfil_block = w3.eth.block_number
        _wait_for("the first request to settle", lambda: _settled_in_journal(node.journal, first_id), 10)
        _wait_for("the submitter to see it mined", lambda: not node.submitter.in_flight, 5)
        _wait_for("the second fulfilment to be sent", lambda: _submitted_tx(node.journal, second_id), 10)

        _rpc(w3, "anvil_reorg", 1, [])  # removes the first fulfilment; the second one now sits above a gap
        assert w3.eth.block_number == fulfil_block
        _wait_for("the first request to be sent again", lambda: _submitted_tx(node.journal, first_id), 5)
    _rpc(w3, "evm_mine")

    for request_id, value in ((first_id, 1), (second_id, 2)):
        answer = client.wait(request_id, time.monotonic(), timeout=5)
        assert answer.status == Status.OK and decode(["uint256"], answer.output) == (value,)
        _wait_for("the journal to settle it", lambda: _settled_in_journal(node.journal, request_id), 5)  # noqa: B023
        assert len(_logs(w3, coprocessor, REQUEST_FULFILLED_TOPIC, request_id, request_block)) == 1
    assert _callbacks(stack) - callbacks_before == 2
    assert node.listener.reorgs >= 1


# ---------------------------------------------------------------------- 2. a reorg removes the request; its id is reused


def test_reorg_requestIdReusedWithOtherInputIsAnsweredWithItsOwnOutput(stack: Devnet, node: Node) -> None:
    w3, coprocessor = stack.w3, stack.deployment.coprocessor
    echo = stack.template("slow-echo")
    callbacks_before = _callbacks(stack)

    first_id, _ = stack.user().ask(echo.template_id, _echo_input(111))
    (first_log,) = _logs(w3, coprocessor, REQUEST_SUBMITTED_TOPIC, first_id, 0)
    first_request, _ = decode_request_submitted(first_log)
    request_block = first_log["blockNumber"]
    _wait_for("the node to settle the first request", lambda: _settled_in_journal(node.journal, first_id), 20)
    assert node.journal.by_commitment(first_request.commitment()) is not None

    # Roll back below the request: the chain forgets it, its fulfilment and the Coprocessor's nonce.
    _rpc(w3, "anvil_rollback", w3.eth.block_number - request_block + 1)
    assert w3.eth.block_number == request_block - 1
    assert _logs(w3, coprocessor, REQUEST_SUBMITTED_TOPIC, first_id, 0) == []

    client = stack.user()  # a fresh sender: the user's nonce went back too
    second_id, _ = client.ask(echo.template_id, _echo_input(222))
    assert second_id == first_id, "after the rollback the next request reuses the id"
    (second_log,) = _logs(w3, coprocessor, REQUEST_SUBMITTED_TOPIC, second_id, 0)
    second_request, second_input = decode_request_submitted(second_log)
    assert second_request.commitment() != first_request.commitment()

    answer = client.wait(second_id, time.monotonic(), timeout=20)
    assert answer.status == Status.OK
    assert decode(["uint256"], answer.output) == (222,), "answered with the new request's own output"
    _wait_for("the journal to settle the new request", lambda: _settled_in_journal(node.journal, second_id), 10)
    time.sleep(0.3)
    assert len(_logs(w3, coprocessor, REQUEST_FULFILLED_TOPIC, second_id, 0)) == 1
    assert _callbacks(stack) - callbacks_before == 1
    entry = node.journal.get(second_id)
    assert entry is not None and entry.commitment == second_request.commitment() and entry.input == second_input
    assert node.journal.by_commitment(first_request.commitment()) is None, "the removed request is forgotten"


# ---------------------------------------------------------------------- 3. a dropped transaction


def test_droppedFulfilTx_isResentAndSettlesWithinTwoSeconds(stack: Devnet, node: Node) -> None:
    w3, coprocessor = stack.w3, stack.deployment.coprocessor
    echo = stack.template("slow-echo")
    client = stack.user()
    node_address = TxSender(w3, ANVIL_KEYS[devnet.NODE]).address

    with _manual_mining(w3):
        ask_tx = _ask_unmined(client, echo.template_id, _echo_input(5))
        _rpc(w3, "evm_mine")
        request_id = _request_id(client, ask_tx)

        # The node signs and sends its fulfilment; nothing mines it.
        fulfil_tx = _wait_for("the node to send its fulfilment", lambda: _submitted_tx(node.journal, request_id), 20)
        assert w3.eth.get_transaction("0x" + fulfil_tx)["from"] == node_address
        _rpc(w3, "anvil_dropTransaction", "0x" + fulfil_tx)
        dropped_at = time.monotonic()

        # The node sees the transaction gone and sends the response again (with mining still off, so the
        # original cannot have been mined instead).
        def resent() -> bool:
            content = _rpc(w3, "txpool_content")
            return any(k.lower() == node_address.lower() for k in content["pending"])

        _wait_for("the node to resend the dropped fulfilment", resent, 2)
        entry = node.journal.get(request_id)
        assert entry is not None and entry.error is not None and "dropped" in entry.error
    _rpc(w3, "evm_mine")  # what automine does not mine by itself

    answer = client.wait(request_id, dropped_at, timeout=2)
    assert answer.status == Status.OK and decode(["uint256"], answer.output) == (5,)
    assert answer.latency < 2.0, f"settled {answer.latency:.2f} s after the drop"
    assert len(_logs(w3, coprocessor, REQUEST_FULFILLED_TOPIC, request_id, 0)) == 1

    # The next request goes through at once too (no nonce gap, nothing stuck behind the dropped one), still
    # within 2 s of the drop.
    next_id, _ = client.ask(echo.template_id, _echo_input(6))
    answer = client.wait(next_id, dropped_at, timeout=2)
    assert answer.status == Status.OK and decode(["uint256"], answer.output) == (6,)
    assert answer.latency < 2.0, f"the next request settled {answer.latency:.2f} s after the drop"


# ---------------------------------------------------------------------- confirmations > 0 (listener only)


def test_listener_withConfirmationsIgnoresShallowReorgsAndRewindsDeepOnes(stack: Devnet, tmp_path: Path) -> None:
    w3, coprocessor = stack.w3, stack.deployment.coprocessor
    echo = stack.template("slow-echo")
    journal = Journal(tmp_path / "journal.sqlite")
    listener = Listener(w3, journal, coprocessor, start_block=w3.eth.block_number + 1, confirmations=2, reorg_depth=8)
    request_id, _ = stack.user().ask(echo.template_id, _echo_input(1))
    request_block = w3.eth.block_number
    assert listener.poll() == 0, "not recorded before two confirmations"
    _rpc(w3, "anvil_mine", 2)
    assert listener.poll() == 1
    assert journal.cursor() == (request_block, bytes(w3.eth.get_block(request_block)["hash"]).hex())

    # A reorg of the two unconfirmed blocks above the cursor changes nothing the listener recorded.
    _rpc(w3, "anvil_reorg", 2, [])
    assert listener.poll() == 0 and listener.reorgs == 0
    assert _journal_state(journal, request_id) == State.SEEN

    # Settle it on-chain (the enclave signs, another account sends); seen only once confirmed.
    entry = journal.get(request_id)
    assert entry is not None
    result = stack.enclave().run(entry.request, entry.input)
    fulfil = encode_fulfill([Fulfillment(entry.request, result.status, result.output, result.signature)])
    receipt = TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER]).transact(coprocessor, fulfil)
    fulfil_block = receipt["blockNumber"]
    listener.poll()
    assert _journal_state(journal, request_id) == State.SEEN, "a settlement is not taken before its confirmations"
    _rpc(w3, "anvil_mine", 2)
    listener.poll()
    assert _journal_state(journal, request_id) == State.SETTLED

    # A reorg deeper than the confirmations removes the settlement: the request goes back to be answered.
    _rpc(w3, "anvil_reorg", w3.eth.block_number - fulfil_block + 1, [])
    listener.poll()
    assert listener.reorgs == 1
    assert _journal_state(journal, request_id) == State.SEEN
    _assert_cursor_on_chain(w3, journal, w3.eth.block_number - 2)

    # One that also removes the request's block forgets the request.
    _rpc(w3, "anvil_reorg", w3.eth.block_number - request_block + 1, [])
    listener.poll()
    assert listener.reorgs == 2
    assert journal.get(request_id) is None, "the request the reorg removed is forgotten"
    _assert_cursor_on_chain(w3, journal, w3.eth.block_number - 2)


def _assert_cursor_on_chain(w3: Web3, journal: Journal, block: int) -> None:
    assert journal.cursor() == (block, bytes(w3.eth.get_block(block)["hash"]).hex())


# ---------------------------------------------------------------------- 5. Anvil restarts from its --state file


@dataclass
class _RestartableChain:
    """An Anvil of its own that dumps its state on SIGTERM and is started again from it on the same port."""

    port: int
    state_file: Path
    process: Any = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # Historical states too, so a reorg still works on the reloaded chain.
        self.process = devnet.start_anvil(self.port, ["--state", str(self.state_file), "--preserve-historical-states"])

    def stop(self) -> None:
        devnet.stop(self.process)  # SIGTERM: Anvil writes its state file


@pytest.fixture
def restartable(contracts_built: None, tmp_path: Path) -> Iterator[tuple[_RestartableChain, Deployment, EnclaveClient, Any]]:
    """A restartable Anvil with the contracts, slow-echo published, and a registered DEV enclave."""
    chain = _RestartableChain(devnet.free_port(), tmp_path / "anvil-state.json")
    chain.start()
    enclave_process = None
    try:
        folder = TEST_TEMPLATES / "slow-echo"
        (template,) = load_templates([folder]).values()
        deployment = devnet.deploy(chain.rpc_url, templates=[template])
        payee = TxSender(connect(chain.rpc_url), ANVIL_KEYS[devnet.PAYEE]).address
        enclave_process, enclave = devnet.start_enclave(
            deployment,
            payee,
            [folder],
            tmp_path / "dev-pki",
            tmp_path / "enclave.token",
            tmp_path / "enclave.log",
            chain_rpc=chain.rpc_url,
        )
        devnet.register_enclave(chain.rpc_url, deployment, enclave, tmp_path / "dev-pki")
        yield chain, deployment, enclave, template
    finally:
        devnet.stop(enclave_process)
        chain.stop()


def test_anvilRestartFromState_nothingLost(restartable: tuple[_RestartableChain, Deployment, EnclaveClient, Any], tmp_path: Path) -> None:
    chain, deployment, enclave, echo = restartable
    w3 = connect(chain.rpc_url)
    start_block = w3.eth.block_number + 1
    node = Node(
        connect(chain.rpc_url),
        deployment.coprocessor,
        Journal(tmp_path / "journal.sqlite"),
        enclave,
        TxSender(connect(chain.rpc_url), ANVIL_KEYS[devnet.NODE]),
        start_block,
    )
    thread = threading.Thread(target=node.run, daemon=True)
    thread.start()
    try:
        assert node.heads.wait_started(5), "the node follows heads over the websocket"
        client = ExampleConsumerClient(w3, TxSender(w3, ANVIL_KEYS[devnet.USER]), deployment.consumer)
        count = 12
        request_ids = [client.ask(echo.template_id, _echo_input(value, sleep_ms=300))[0] for value in range(count)]

        # Stop the chain while some requests are settled and others are in the enclave or in flight.
        _wait_for("a first settlement", lambda: any(client.answer(rid) for rid in request_ids), 20)
        answered_before = sum(client.answer(rid) is not None for rid in request_ids)
        assert answered_before < count, "everything was settled before the chain stopped"
        hashes = {n: w3.eth.get_block(n)["hash"] for n in range(start_block, w3.eth.block_number + 1)}
        chain.stop()
        time.sleep(2.5)  # the node meets an RPC outage: refused connections, a closed websocket
        assert not node.heads.subscribed
        chain.start()
        assert w3.eth.block_number >= start_block, "Anvil reloaded its state"
        kept_history = all(w3.eth.get_block(n)["hash"] == h for n, h in hashes.items() if n <= w3.eth.block_number)

        answers = [client.wait(rid, time.monotonic(), timeout=30) for rid in request_ids]
        assert [decode(["uint256"], a.output)[0] for a in answers] == list(range(count))
        assert all(a.status == Status.OK for a in answers)
        assert node.heads.wait_started(10), "the node subscribed to new heads again"
        if kept_history:  # (a SIGTERM dump may lose the last blocks' history: then a rescan is right)
            assert node.listener.reorgs == 0, "an RPC outage was taken for a reorg"

        # A reorg on the reloaded chain removes the last fulfilment: it is fulfilled again.
        last_block = max(
            _logs(w3, deployment.coprocessor, REQUEST_FULFILLED_TOPIC, rid, start_block)[0]["blockNumber"] for rid in request_ids
        )
        _wait_for("the journal to settle everything", lambda: all(_settled_in_journal(node.journal, rid) for rid in request_ids), 10)
        _rpc(w3, "anvil_reorg", w3.eth.block_number - last_block + 1, [])

        def all_settled_once() -> bool:
            counts = [len(_logs(w3, deployment.coprocessor, REQUEST_FULFILLED_TOPIC, rid, start_block)) for rid in request_ids]
            assert max(counts) <= 1
            return min(counts) == 1 and all(_settled_in_journal(node.journal, rid) for rid in request_ids)

        _wait_for("every request settled exactly once on the final chain", all_settled_once, 20, poll=0.1)
        consumer = contract(w3, "ExampleConsumer", deployment.consumer)
        assert consumer.functions.callbackCount().call() == count
        assert thread.is_alive()
    finally:
        node.stop()
        thread.join(10)
    assert not thread.is_alive(), "node did not stop"
