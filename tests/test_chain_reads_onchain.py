"""Verified chain reads end to end: requests on Anvil, an enclave whose chain RPC lies on demand.

The enclave reads the chain through `tests/lying_rpc.py`, a proxy in front of the same Anvil.
An honest proxy gives the true balance at the anchor block. A lying one gives an on-chain
`ChainDataInvalid`, never a wrong number, even when the template swallows the error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from coprocessor.chain import ANVIL_KEYS, TxSender
from coprocessor.dev import devnet
from coprocessor.node.journal import State
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import Status
from coprocessor_enclave.template import encode_args

from .conftest import TEST_TEMPLATES, Devnet, open_stack
from .lying_rpc import LyingRpc

HOLDER = to_checksum_address("0x" + "7e" * 20)


@pytest.fixture(scope="module")
def proxy_and_stack(contracts_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LyingRpc, Devnet]]:
    proxies: list[LyingRpc] = []

    def through_proxy(anvil_url: str) -> str:
        proxies.append(LyingRpc(anvil_url).__enter__())
        return proxies[0].url

    try:
        with open_stack(tmp_path_factory.mktemp("lying"), [TEST_TEMPLATES], enclave_chain_rpc=through_proxy) as stack:
            yield proxies[0], stack
    finally:
        for proxy in proxies:
            proxy.__exit__(None, None, None)


@pytest.fixture
def lying_node(proxy_and_stack: tuple[LyingRpc, Devnet], tmp_path: Path) -> Iterator[Node]:
    _, stack = proxy_and_stack
    running, thread = stack.start_node(tmp_path / "journal.sqlite")
    yield running
    running.stop()
    thread.join(10)


def _ask_balance(stack: Devnet, swallow: bool) -> tuple[bytes, int]:
    """Requests chain-balance(HOLDER); returns the request id and its anchor block."""
    template = stack.template("chain-balance")
    client = stack.user()
    request_id, _ = client.ask(template.template_id, encode_args(template, [HOLDER, swallow]))
    anchor = stack.w3.eth.block_number - 1  # the request's block is the latest; its anchor is the one before
    return request_id, anchor


def test_chainBalance_honestHost_answersTheBalanceAtTheAnchor(proxy_and_stack: tuple[LyingRpc, Devnet], lying_node: Node) -> None:
    proxy, stack = proxy_and_stack
    proxy.lie = None
    TxSender(stack.w3, ANVIL_KEYS[devnet.USER]).transact(HOLDER, b"", value=12345)
    request_id, anchor = _ask_balance(stack, swallow=False)
    TxSender(stack.w3, ANVIL_KEYS[devnet.USER]).transact(HOLDER, b"", value=1)  # after the anchor: not seen
    answer = stack.user().wait(request_id, time.monotonic(), 30)
    assert answer.status == Status.OK, answer.output
    assert int.from_bytes(answer.output, "big") == stack.w3.eth.get_balance(HOLDER, block_identifier=anchor)


@pytest.mark.parametrize(
    ("lie", "swallow"),
    [("balance", False), ("forged_balance", False), ("state_root", False), ("forged_balance", True)],
)
def test_chainBalance_lyingHost_settlesChainDataInvalid(
    proxy_and_stack: tuple[LyingRpc, Devnet], lying_node: Node, lie: str, swallow: bool
) -> None:
    proxy, stack = proxy_and_stack
    TxSender(stack.w3, ANVIL_KEYS[devnet.USER]).transact(HOLDER, b"", value=7)
    proxy.lie = lie
    told = proxy.lies_told
    from_block = stack.w3.eth.block_number
    request_id, _ = _ask_balance(stack, swallow)
    settled = stack.settled({request_id}, from_block, timeout=30)
    proxy.lie = None
    assert settled == {request_id: Status.CHAIN_DATA_INVALID}
    assert proxy.lies_told > told, "the proxy never lied: the test proved nothing"


def test_chainBalance_stallingHost_signsNothingThenRetries(proxy_and_stack: tuple[LyingRpc, Devnet], lying_node: Node) -> None:
    """A host whose chain RPC stalls gets no signed error status to submit: the node retries, and once the
    host answers the request settles Ok."""
    proxy, stack = proxy_and_stack
    proxy.lie, proxy.stall_seconds = None, 30.0
    from_block = stack.w3.eth.block_number
    try:
        request_id, _ = _ask_balance(stack, swallow=False)
        assert stack.settled({request_id}, from_block, timeout=13) == {}  # nothing signed, nothing submitted
        entry = lying_node.journal.get(request_id)
        assert entry is not None and entry.attempts >= 1, "the node did not see the run as retryable"
        assert entry.state in (State.SEEN, State.RUNNING) and "did not answer" in (entry.error or "")
    finally:
        proxy.stall_seconds = 0.0
    assert stack.settled({request_id}, from_block, timeout=30) == {request_id: Status.OK}


def test_chainBalance_slowHost_isNotTheTemplatesTime(proxy_and_stack: tuple[LyingRpc, Devnet], lying_node: Node) -> None:
    """Answers that each take half the template's 5 s stop its clock: the run ends Ok, never a signed Timeout
    the operator chose by answering slowly."""
    proxy, stack = proxy_and_stack
    proxy.lie, proxy.stall_seconds = None, 2.6
    from_block = stack.w3.eth.block_number
    try:
        request_id, _ = _ask_balance(stack, swallow=False)
        settled = stack.settled({request_id}, from_block, timeout=40)
    finally:
        proxy.stall_seconds = 0.0
    assert settled == {request_id: Status.OK}
    assert proxy.answers_delayed >= 2, "fewer than two slow answers: the template's 5 s were never at stake"
