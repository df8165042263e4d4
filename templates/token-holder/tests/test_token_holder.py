"""token-holder through the real enclave and workers, reading a real ERC-20 on Anvil through verified chain reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_abi import encode
from web3 import Web3

from coprocessor import devnet
from coprocessor.chain import ANVIL_KEYS, TxSender, connect
from coprocessor.protocol import Status
from coprocessor.testing import TemplateRunner
from coprocessor.toolchain import NODE_MODULES

TEMPLATE = Path(__file__).resolve().parents[1]
# Uniswap v4-core's TestERC20: constructor(uint256) mints to the deployer; mint(address,uint256); transfer.
TEST_ERC20 = NODE_MODULES / "@uniswap/v4-core/out/TestERC20.sol/TestERC20.json"
ETH = "0x" + "00" * 20
BOB = "0x00000000000000000000000000000000000000B0"
FRESH = "0x00000000000000000000000000000000C0FFEE02"  # only ever receives ETH here
REVERTS = bytes.fromhex("6005600c60003960056000f3" + "60006000fd")  # runtime: revert(0, 0)
SILENT = bytes.fromhex("6001600c60003960016000f3" + "00")  # runtime: stop, returning nothing


@dataclass
class Chain:
    url: str
    token: str
    alice: str
    before: int  # alice holds 1000, bob nothing
    reverts: str
    silent: str


def deployed(sender: TxSender, init_code: bytes) -> str:
    return Web3.to_checksum_address(sender.transact(None, init_code)["contractAddress"])


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    try:
        url = f"http://127.0.0.1:{port}"
        w3 = connect(url)
        alice = TxSender(w3, ANVIL_KEYS[0])
        artifact = json.loads(TEST_ERC20.read_text())
        token = deployed(alice, bytes.fromhex(artifact["bytecode"]["object"][2:]) + encode(["uint256"], [1000]))
        before = w3.eth.block_number
        handle = w3.eth.contract(address=token, abi=artifact["abi"])
        alice.call_function(handle, "transfer", BOB, 400)
        alice.transact(FRESH, b"", value=10**18)
        yield Chain(url, token, alice.address, before, deployed(alice, REVERTS), deployed(alice, SILENT))
    finally:
        devnet.stop(anvil)


@pytest.fixture(scope="module")
def runner(chain: Chain) -> Iterator[TemplateRunner]:
    with TemplateRunner(TEMPLATE, chain_rpc=chain.url) as runner:
        yield runner


def holds(runner: TemplateRunner, token: str, holder: str, minimum: int, block: int | None = None) -> tuple[bool, int]:
    return runner.run("token-holder", [token, holder, minimum], anchor_block=block).values


def test_erc20_enoughAndNotEnough(runner: TemplateRunner, chain: Chain) -> None:
    assert holds(runner, chain.token, chain.alice, 600) == (True, 600)  # exactly the minimum holds
    assert holds(runner, chain.token, chain.alice, 601) == (False, 600)
    assert holds(runner, chain.token, BOB, 401) == (False, 400)
    assert holds(runner, chain.token, FRESH, 0) == (True, 0)


def test_erc20_anchorBeforeTransfer_seesOldBalance(runner: TemplateRunner, chain: Chain) -> None:
    assert holds(runner, chain.token, chain.alice, 1000, chain.before) == (True, 1000)
    assert holds(runner, chain.token, BOB, 1, chain.before) == (False, 0)


def test_eth_addressZeroToken_nativeBalance(runner: TemplateRunner, chain: Chain) -> None:
    assert holds(runner, ETH, FRESH, 10**18) == (True, 10**18)
    assert holds(runner, ETH, FRESH, 10**18 + 1) == (False, 10**18)
    assert holds(runner, ETH, FRESH, 1, chain.before) == (False, 0)
    assert holds(runner, ETH, chain.token, 0) == (True, 0)  # a contract without ETH


@pytest.mark.parametrize(
    ("which", "reason"),
    [("eoa", "no contract at token"), ("reverts", "balanceOf reverted"), ("silent", "balanceOf returned 0 bytes")],
)
def test_tokenNotAnErc20_invalidInput(runner: TemplateRunner, chain: Chain, which: str, reason: str) -> None:
    token = {"eoa": chain.alice, "reverts": chain.reverts, "silent": chain.silent}[which]
    result = runner.run("token-holder", [token, BOB, 1])
    assert result.status == Status.INVALID_INPUT
    assert reason in result.reason


def test_noChainRpc_chainDataInvalid(chain: Chain) -> None:
    """An enclave that cannot supply verifiable chain data answers ChainDataInvalid, never a guess."""
    with TemplateRunner(TEMPLATE) as offline:
        result = offline.run("token-holder", [chain.token, BOB, 1])
    assert result.status == Status.CHAIN_DATA_INVALID
    assert "no chain RPC configured" in result.reason
