"""A composed template end to end on Anvil: calls-double calls call-double inside the enclave, the node submits
the composed response with its call tree, and the Coprocessor pays the callee's author out of the caller's
author fee."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi import decode, encode

from coprocessor.chain import ANVIL_KEYS, TxSender, contract
from coprocessor.dev import devnet
from coprocessor.node import catalog
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import Status

from .conftest import TEST_TEMPLATES, Devnet, open_stack

CALLER_FEE, CALLEE_FEE = 4 * 10**15, 10**15


@pytest.fixture(scope="module")
def stack(contracts_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    composed = ["call-double", "calls-double"]
    with open_stack(tmp_path_factory.mktemp("composed"), [TEST_TEMPLATES], unpublished=["fee-echo", *composed]) as running:
        # Two authors, so the callee's payment is told apart from the caller's.
        for name, key, fee in (("call-double", devnet.USER, CALLEE_FEE), ("calls-double", devnet.AUTHOR, CALLER_FEE)):
            template = running.template(name)
            sender = TxSender(running.w3, ANVIL_KEYS[key])
            catalog.publish(sender, running.deployment.template_registry, template.template_id, name, template.version, "", fee)
        yield running


@pytest.fixture
def node(stack: Devnet, tmp_path: Path) -> Iterator[Node]:
    running, thread = stack.start_node(tmp_path / "journal.sqlite")
    yield running
    running.stop()
    thread.join(10)


def test_composedTemplate_onChain_answeredAndTheCalleesAuthorPaid(stack: Devnet, node: Node) -> None:
    caller, callee = stack.template("calls-double"), stack.template("call-double")
    assert callee.template_id in caller.calls  # the manifest pins what it may call
    coprocessor = contract(stack.w3, "Coprocessor", stack.deployment.coprocessor)
    fee = coprocessor.functions.requestFee(caller.template_id).call()
    callee_author = TxSender(stack.w3, ANVIL_KEYS[devnet.USER]).address
    caller_author = TxSender(stack.w3, ANVIL_KEYS[devnet.AUTHOR]).address
    before = {a: coprocessor.functions.balanceOf(a).call() for a in (callee_author, caller_author)}

    client = stack.user()
    request_id, sent_at = client.ask(caller.template_id, encode(["uint256"], [20]), fee=fee)
    answer = client.wait(request_id, sent_at, 30)
    assert answer.status == Status.OK, answer.output
    assert decode(["uint256"], answer.output)[0] == 41

    deadline = time.monotonic() + 10
    while coprocessor.functions.balanceOf(callee_author).call() == before[callee_author] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert coprocessor.functions.balanceOf(callee_author).call() - before[callee_author] == CALLEE_FEE
    assert coprocessor.functions.balanceOf(caller_author).call() - before[caller_author] == CALLER_FEE - CALLEE_FEE
    paid = coprocessor.events.CallPaid().get_logs(from_block=stack.w3.eth.block_number - 5)
    assert [(bytes(e.args.templateId), e.args.author, e.args.amount) for e in paid] == [(callee.template_id, callee_author, CALLEE_FEE)]
