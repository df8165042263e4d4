"""Verified reads across chains: a template answering on chain A reads chain B at a block its request names.

The enclave reads B through three RPCs (proxies in front of B's Anvil that lie on demand) and trusts a
block's hash only when two of them give it, each with the block `FINALITY` deep. A liar outside the
quorum changes nothing; RPCs that disagree, or a quorum member lying about state, give ChainDataInvalid,
never a wrong Ok; a block not yet final is answered once it is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from coprocessor.chain import ANVIL_KEYS, TxSender, connect
from coprocessor.dev import devnet
from coprocessor.errors import ChainError, ManifestError
from coprocessor.node.pipeline import Node
from coprocessor_enclave.capabilities import load_remote_chains
from coprocessor_enclave.protocol import Status
from coprocessor_enclave.template import encode_args

from .conftest import TEST_TEMPLATES, Devnet, open_stack
from .lying_rpc import LyingRpc

HOLDER = to_checksum_address("0x" + "7e" * 20)
CHAIN_B = 31338
FINALITY = 3


@dataclass
class TwoChains:
    stack: Devnet  # chain A, its contracts and the enclave
    b_url: str
    proxies: list[LyingRpc]  # B's three RPCs as the enclave sees them


@pytest.fixture(scope="module")
def chains(contracts_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoChains]:
    state = tmp_path_factory.mktemp("remote")
    port = devnet.free_port()
    anvil_b = devnet.start_anvil(port, ["--chain-id", str(CHAIN_B)])
    b_url = f"http://127.0.0.1:{port}"
    proxies = [LyingRpc(b_url).__enter__() for _ in range(3)]
    try:
        read_chains = state / "read-chains.toml"
        rpcs = ", ".join(f'"{p.url}"' for p in proxies)
        read_chains.write_text(f"[[chains]]\nchain_id = {CHAIN_B}\nrpcs = [{rpcs}]\nquorum = 2\nfinality_depth = {FINALITY}\n")
        with open_stack(state, [TEST_TEMPLATES], read_chains=read_chains) as stack:
            yield TwoChains(stack, b_url, proxies)
    finally:
        for proxy in proxies:
            proxy.__exit__(None, None, None)
        devnet.stop(anvil_b)


@pytest.fixture
def node(chains: TwoChains, tmp_path: Path) -> Iterator[Node]:
    for proxy in chains.proxies:
        proxy.lie = None
    running, thread = chains.stack.start_node(tmp_path / "journal.sqlite")
    yield running
    running.stop()
    thread.join(10)


def _fund_and_settle(chains: TwoChains, value: int) -> int:
    """Sends `value` to HOLDER on B and mines FINALITY blocks on top; returns the block the balance changed in."""
    w3 = connect(chains.b_url)
    receipt = TxSender(w3, ANVIL_KEYS[devnet.USER]).transact(HOLDER, b"", value=value)
    w3.provider.make_request("anvil_mine", [FINALITY])  # type: ignore[arg-type]
    return int(receipt["blockNumber"])


def _ask(chains: TwoChains, block: int, swallow: bool = False) -> tuple[bytes, float]:
    template = chains.stack.template("remote-balance")
    return chains.stack.user().ask(template.template_id, encode_args(template, [CHAIN_B, block, HOLDER, swallow]))


def test_remoteBalance_honestQuorum_answersTheBalanceAtTheNamedBlock(chains: TwoChains, node: Node) -> None:
    block = _fund_and_settle(chains, 4321)
    _fund_and_settle(chains, 1)  # later: not part of the named block
    w3 = connect(chains.b_url)
    request_id, sent_at = _ask(chains, block)
    answer = chains.stack.user().wait(request_id, sent_at, 30)
    assert answer.status == Status.OK, answer.output
    assert int.from_bytes(answer.output, "big") == w3.eth.get_balance(HOLDER, block_identifier=block) > 0


@pytest.mark.parametrize("lie", ["other_block", "block_hash", "balance"])
def test_remoteBalance_oneLiarOutsideTheQuorum_stillTheTrueBalance(chains: TwoChains, node: Node, lie: str) -> None:
    block = _fund_and_settle(chains, 77)
    chains.proxies[2].lie = lie  # the third RPC: the first two agree before it is needed, or outvote it
    request_id, sent_at = _ask(chains, block)
    answer = chains.stack.user().wait(request_id, sent_at, 30)
    assert answer.status == Status.OK, answer.output
    assert int.from_bytes(answer.output, "big") == connect(chains.b_url).eth.get_balance(HOLDER, block_identifier=block)


@pytest.mark.parametrize("swallow", [False, True])
def test_remoteBalance_rpcsDisagree_chainDataInvalidNeverAWrongOk(chains: TwoChains, node: Node, swallow: bool) -> None:
    block = _fund_and_settle(chains, 5)
    chains.proxies[1].lie, chains.proxies[2].lie = "other_block", "block_hash"  # three hashes: no two agree
    request_id, sent_at = _ask(chains, block, swallow)
    answer = chains.stack.user().wait(request_id, sent_at, 30)
    assert answer.status == Status.CHAIN_DATA_INVALID, answer
    assert chains.proxies[1].lies_told > 0 and chains.proxies[2].lies_told > 0


@pytest.mark.parametrize("lie", ["balance", "forged_balance", "state_root"])
def test_remoteBalance_quorumMemberLiesAboutState_chainDataInvalid(chains: TwoChains, node: Node, lie: str) -> None:
    block = _fund_and_settle(chains, 9)
    chains.proxies[0].lie = lie  # agrees on the hash (it is the quorum's first), then lies about the state
    request_id, sent_at = _ask(chains, block, swallow=True)
    answer = chains.stack.user().wait(request_id, sent_at, 30)
    assert answer.status == Status.CHAIN_DATA_INVALID, answer
    assert chains.proxies[0].lies_told > 0


def test_remoteBalance_blockNotYetFinal_answeredOnceItIs(chains: TwoChains, node: Node) -> None:
    w3 = connect(chains.b_url)
    receipt = TxSender(w3, ANVIL_KEYS[devnet.USER]).transact(HOLDER, b"", value=3)
    block = int(receipt["blockNumber"])  # the head: FINALITY blocks short
    request_id, sent_at = _ask(chains, block)
    with pytest.raises(ChainError):  # nothing signed while B's RPCs cannot vouch for the block
        chains.stack.user().wait(request_id, sent_at, 3)
    w3.provider.make_request("anvil_mine", [FINALITY])  # type: ignore[arg-type]
    answer = chains.stack.user().wait(request_id, time.monotonic(), 60)
    assert answer.status == Status.OK, answer.output
    assert int.from_bytes(answer.output, "big") == w3.eth.get_balance(HOLDER, block_identifier=block)


def test_remoteBalance_unknownChain_invalidStatus(chains: TwoChains, node: Node) -> None:
    template = chains.stack.template("remote-balance")
    request_id, sent_at = chains.stack.user().ask(template.template_id, encode_args(template, [999, 1, HOLDER, False]))
    answer = chains.stack.user().wait(request_id, sent_at, 30)
    assert answer.status == Status.CHAIN_DATA_INVALID
    assert b"reads no chain 999" in answer.output


def test_loadRemoteChains_badFiles_sayWhatIsWrong(tmp_path: Path) -> None:
    cases = {
        "": re.escape("[[chains]]"),
        '[[chains]]\nchain_id = 1\nrpcs = ["a", "b"]\nquorum = 1\nfinality_depth = 1\n': "more than half",
        "[[chains]]\nchain_id = 1\nrpcs = []\nquorum = 1\nfinality_depth = 1\n": "1-7 RPC URLs",
        '[[chains]]\nchain_id = 1\nrpcs = ["a"]\nquorum = 1\nfinality_depth = -1\n': "finality_depth",
        '[[chains]]\nchain_id = 0\nrpcs = ["a"]\nquorum = 1\nfinality_depth = 1\n': "positive integer",
    }
    for text, message in cases.items():
        path = tmp_path / "read.toml"
        path.write_text(text)
        with pytest.raises(ManifestError, match=message):
            load_remote_chains(path)
    path.write_text('[[chains]]\nchain_id = 10\nrpcs = ["a", "b", "c"]\nquorum = 2\nfinality_depth = 64\n')
    assert load_remote_chains(path)[10].quorum == 2


def test_remoteBalance_blockFarBeyondTheHead_refusedNotWaitedFor(chains: TwoChains, node: Node) -> None:
    head = connect(chains.b_url).eth.block_number
    request_id, sent_at = _ask(chains, head + 10_000)
    answer = chains.stack.user().wait(request_id, sent_at, 30)
    assert answer.status == Status.CHAIN_DATA_INVALID
    assert b"past its head" in answer.output
