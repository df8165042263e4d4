"""The listener on a real Anvil: it records requests once, and a reorg drops what the chain dropped."""

from __future__ import annotations

from pathlib import Path

from coprocessor.node.journal import Journal, State
from coprocessor.node.listener import Listener
from coprocessor_enclave.template import encode_args

from .conftest import Devnet


def test_poll_recordsEachRequestOnce(stack: Devnet, tmp_path: Path) -> None:
    median = stack.template("median-price")
    journal = Journal(tmp_path / "journal.sqlite")
    listener = Listener(stack.w3, journal, stack.deployment.coprocessor, start_block=stack.w3.eth.block_number + 1)
    request_id, _ = stack.user().ask(median.template_id, encode_args(median, [[1], 0]))
    assert listener.poll() == 1
    assert listener.poll() == 0
    entry = journal.get(request_id)
    assert entry is not None and entry.state == State.SEEN


def test_poll_reorgDropsRequestsTheChainDropped(stack: Devnet, tmp_path: Path) -> None:
    median = stack.template("median-price")
    journal = Journal(tmp_path / "journal.sqlite")
    listener = Listener(stack.w3, journal, stack.deployment.coprocessor, start_block=stack.w3.eth.block_number + 1, reorg_depth=4)
    kept_id, _ = stack.user().ask(median.template_id, encode_args(median, [[1], 0]))
    stack.w3.provider.make_request("evm_mine", [])
    stack.w3.provider.make_request("evm_mine", [])
    stack.w3.provider.make_request("evm_mine", [])
    dropped_id, _ = stack.user().ask(median.template_id, encode_args(median, [[2], 0]))
    assert listener.poll() == 2

    # Replace the last block (holding the second request) with an empty one.
    response = stack.w3.provider.make_request("anvil_reorg", [1, []])
    assert "error" not in response, response
    listener.poll()
    assert journal.get(kept_id) is not None, "a request below the fork point must survive"
    assert journal.get(dropped_id) is None, "a request the reorg removed must be forgotten"
    cursor = journal.cursor()
    assert cursor is not None and cursor[1] == bytes(stack.w3.eth.get_block(cursor[0])["hash"]).hex()
