"""v4-volatility through the real enclave and workers, reading Uniswap v4's real PoolManager on Anvil.

Tick histories are written into the PoolManager's storage with `anvil_setStorageAt`, one value
per sample block; one pool is also initialised through `PoolManager.initialize` to check the
decoding against a slot the contract wrote itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3 import Web3

from coprocessor import devnet
from coprocessor.chain import ANVIL_KEYS, TxSender, connect
from coprocessor.protocol import Status
from coprocessor.testing import TemplateRunner
from coprocessor.toolchain import NODE_MODULES

TEMPLATE = Path(__file__).resolve().parents[1]
POOL_MANAGER = NODE_MODULES / "@uniswap/v4-core/out/PoolManager.sol/PoolManager.json"
SQRT_PRICE_1_1 = 2**96


def slot0_slot(pool_id: bytes) -> bytes:
    """`_pools[poolId]` in PoolManager: keccak256(abi.encode(poolId, 6)), as StateLibrary computes it."""
    return keccak(pool_id + (6).to_bytes(32, "big"))


def slot0_word(tick: int, sqrt_price: int = SQRT_PRICE_1_1, protocol_fee: int = 0, lp_fee: int = 3000) -> int:
    """A packed Slot0 (src/types/Slot0.sol): lpFee | protocolFee | tick (24-bit two's complement) | sqrtPriceX96."""
    return (lp_fee << 208) | (protocol_fee << 184) | ((tick & 0xFFFFFF) << 160) | sqrt_price


@dataclass
class Chain:
    url: str
    w3: Web3
    manager: str
    sender: TxSender

    def rpc(self, method: str, *params: object) -> object:
        return self.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]

    def write_slot0(self, pool_id: bytes, words: list[int | None], between: int) -> int:
        """Writes one Slot0 word per sample, `between` (>= 2) blocks apart; None keeps the word as it is.

        Returns the block of the last sample (the anchor). Anvil applies `anvil_setStorageAt` to
        the state of the latest block as well, so that block's state no longer matches its
        header's state root and its proofs fail: every write here is made on a block nobody
        samples, a fresh one first, then the last block of each run.
        """
        assert between >= 2
        slot = "0x" + slot0_slot(pool_id).hex()
        self.rpc("anvil_mine", hex(1))
        for i, word in enumerate(words):
            if word is not None:
                self.rpc("anvil_setStorageAt", self.manager, slot, "0x" + word.to_bytes(32, "big").hex())
            self.rpc("anvil_mine", hex(1 if i == len(words) - 1 else between))
        return self.w3.eth.block_number

    def write_ticks(self, pool_id: bytes, ticks: list[int], between: int) -> int:
        """`write_slot0` with a Slot0 of each tick (price 1, lpFee 3000)."""
        return self.write_slot0(pool_id, [slot0_word(tick) for tick in ticks], between)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    try:
        url = f"http://127.0.0.1:{port}"
        w3 = connect(url)
        sender = TxSender(w3, ANVIL_KEYS[0])
        artifact = json.loads(POOL_MANAGER.read_text())
        init_code = bytes.fromhex(artifact["bytecode"]["object"][2:]) + encode(["address"], [sender.address])
        manager = Web3.to_checksum_address(sender.transact(None, init_code)["contractAddress"])
        yield Chain(url, w3, manager, sender)
    finally:
        devnet.stop(anvil)


@pytest.fixture(scope="module")
def runner(chain: Chain) -> Iterator[TemplateRunner]:
    with TemplateRunner(TEMPLATE, chain_rpc=chain.url) as runner:
        yield runner


def volatility(runner: TemplateRunner, chain: Chain, pool_id: bytes, samples: int, between: int, min_fee: int,
               max_fee: int, anchor: int | None = None):
    return runner.run("v4-volatility", [chain.manager, pool_id, samples, between, min_fee, max_fee], anchor_block=anchor)


def test_calmPool_zeroVolatility_minFee(runner: TemplateRunner, chain: Chain) -> None:
    pool = os.urandom(32)
    anchor = chain.write_ticks(pool, [-200] * 5, between=3)
    assert volatility(runner, chain, pool, 4, 3, 500, 10_000, anchor).values == (0, 500)


def test_oneTickWobble_volatility100(runner: TemplateRunner, chain: Chain) -> None:
    pool = os.urandom(32)
    anchor = chain.write_ticks(pool, [7, 8, 7, 8, 7], between=2)
    assert volatility(runner, chain, pool, 4, 2, 500, 10_000, anchor).values == (100, 600)


def test_jumpyPool_higherFee_thenClampedAtMax(runner: TemplateRunner, chain: Chain) -> None:
    pool = os.urandom(32)
    anchor = chain.write_ticks(pool, [0, 50, -30, 40, 0], between=4)  # changes 50, -80, 70, -40
    # sqrt((2500 + 6400 + 4900 + 1600) / 4) = 62.04... ticks -> 6204 hundredths
    assert volatility(runner, chain, pool, 4, 4, 500, 100_000, anchor).values == (6204, 6704)
    assert volatility(runner, chain, pool, 4, 4, 500, 3000, anchor).values == (6204, 3000)


def test_ticksAcrossZero_signExtended(runner: TemplateRunner, chain: Chain) -> None:
    pool = os.urandom(32)
    anchor = chain.write_ticks(pool, [-5, 5, -5], between=2)
    assert volatility(runner, chain, pool, 2, 2, 0, 1_000_000, anchor).values == (1000, 1000)


def test_ticksNearMinTick(runner: TemplateRunner, chain: Chain) -> None:
    pool = os.urandom(32)
    anchor = chain.write_ticks(pool, [-887_272, -887_262, -887_272], between=2)
    assert volatility(runner, chain, pool, 2, 2, 0, 1_000_000, anchor).values == (1000, 1000)


def test_realInitialize_decodedLikeThePoolManager(runner: TemplateRunner, chain: Chain) -> None:
    artifact = json.loads(POOL_MANAGER.read_text())
    handle = chain.w3.eth.contract(address=chain.manager, abi=artifact["abi"])
    key = ("0x0000000000000000000000000000000000000000", "0x000000000000000000000000000000000000bEEF", 3000, 60,
           "0x0000000000000000000000000000000000000000")
    pool = keccak(encode(["address", "address", "uint24", "int24", "address"], list(key)))
    chain.sender.call_function(handle, "initialize", key, 2**95)  # price 1/4: tick floor(log1.0001(0.25)) = -13864
    word = int.from_bytes(bytes(chain.w3.eth.get_storage_at(chain.manager, slot0_slot(pool))), "big")
    assert word >> 208 == 3000 and word & (2**160 - 1) == 2**95  # lpFee and price where the template expects them
    # The contract's own write is the oldest sample; then tick +13864 with other fee bits; then the contract's word
    # again. Only a sign-extended, masked tick gives changes of exactly +27728 and -27728.
    other = slot0_word(13864, sqrt_price=2**97, protocol_fee=(100 << 12) | 100, lp_fee=500)
    anchor = chain.write_slot0(pool, [None, other, word], between=2)
    assert volatility(runner, chain, pool, 2, 2, 100, 50_000, anchor).values == (2_772_800, 50_000)


def test_uninitialisedPool_invalidInput(runner: TemplateRunner, chain: Chain) -> None:
    result = volatility(runner, chain, b"\x42" * 32, 4, 2, 500, 10_000)
    assert result.status == Status.INVALID_INPUT
    assert "pool 0x4242" in result.reason and "is not initialised at block" in result.reason


def test_poolYoungerThanWindow_invalidInput(runner: TemplateRunner, chain: Chain) -> None:
    pool = os.urandom(32)
    anchor = chain.write_ticks(pool, [1, 2, 3], between=2)
    result = volatility(runner, chain, pool, 3, 2, 500, 10_000, anchor)  # one sample more than written
    assert result.status == Status.INVALID_INPUT
    assert f"is not initialised at block {anchor - 6}" in result.reason


@pytest.mark.parametrize(
    ("samples", "between", "min_fee", "max_fee", "reason"),
    [
        (129, 2, 500, 10_000, "258 blocks; chain reads reach 256 blocks back"),
        (1, 10, 500, 10_000, "samples must be at least 2"),
        (4, 0, 500, 10_000, "blocksBetween must be at least 1"),
        (4, 2, 10_001, 10_000, "need minFee <= maxFee <= 1000000"),
        (4, 2, 500, 1_000_001, "need minFee <= maxFee <= 1000000"),
    ],
)
def test_badWindowOrFees_invalidInput(
    runner: TemplateRunner, chain: Chain, samples: int, between: int, min_fee: int, max_fee: int, reason: str
) -> None:
    result = volatility(runner, chain, os.urandom(32), samples, between, min_fee, max_fee)
    assert result.status == Status.INVALID_INPUT
    assert reason in result.reason


def test_windowBeforeGenesis_invalidInput(runner: TemplateRunner, chain: Chain) -> None:
    result = volatility(runner, chain, os.urandom(32), 3, 1, 0, 10, anchor=2)
    assert result.status == Status.INVALID_INPUT and "starts before block 0" in result.reason
