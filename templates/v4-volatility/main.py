"""Realised volatility of a Uniswap v4 pool, and a dynamic LP fee that follows it.

A dynamic-fee hook wants higher fees when the price moves fast (LPs lose more to arbitrage)
and lower fees when it is calm, but the EVM cannot cheaply look at past prices. This template
reads the pool's `Slot0` from the PoolManager's storage at `samples + 1` blocks,
`blocksBetween` apart, ending at the request's anchor block, every read Merkle-proven against
the anchor's block hash (`ctx.chain.storage` walks parent hashes back from the anchor).

    volatility = sqrt(mean(Δtick²)) × 100     (hundredths of a tick per interval; 1 tick ≈ 1 bip of price)
    fee        = min(maxFee, minFee + volatility)   (hundredths of a bip, Uniswap's LP fee unit)

The RMS is not de-meaned: a steady trend counts as movement, as it does for LPs.
"""

from __future__ import annotations

from math import isqrt

from eth_utils import keccak

from coprocessor.sdk import Context, InvalidInput

POOLS_SLOT = 6  # StateLibrary.POOLS_SLOT: PoolManager's `mapping(PoolId => Pool.State) _pools`
MAX_LP_FEE = 1_000_000  # LPFeeLibrary.MAX_LP_FEE: 100% in hundredths of a bip
SCALE = 100  # volatility is reported in hundredths of a tick


def slot0_slot(pool_id: bytes) -> bytes:
    """Storage slot of `_pools[poolId].slot0`: keccak256(abi.encode(poolId, POOLS_SLOT)), Slot0 being the first word."""
    return keccak(pool_id + POOLS_SLOT.to_bytes(32, "big"))


def decode_slot0(word: int) -> tuple[int, int]:
    """(sqrtPriceX96, tick) of a packed Slot0: price in the low 160 bits, then a signed 24-bit tick."""
    sqrt_price = word & (2**160 - 1)
    tick = (word >> 160) & 0xFFFFFF
    return sqrt_price, tick - (1 << 24) if tick & (1 << 23) else tick


def realised_volatility(ticks: list[int]) -> int:
    """RMS of the changes between consecutive ticks, in hundredths of a tick (floored)."""
    changes = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
    return isqrt(sum(c * c for c in changes) * SCALE * SCALE // len(changes))


def run(
    ctx: Context, pool_manager: str, pool_id: bytes, samples: int, blocks_between: int, min_fee: int, max_fee: int
) -> tuple[int, int]:
    """(volatility, fee) of pool `pool_id` over the `samples * blocks_between` blocks before the anchor."""
    if samples < 2:
        raise InvalidInput(f"samples must be at least 2 intervals, got {samples}")
    if blocks_between < 1:
        raise InvalidInput("blocksBetween must be at least 1")
    if not min_fee <= max_fee <= MAX_LP_FEE:
        raise InvalidInput(f"need minFee <= maxFee <= {MAX_LP_FEE}, got {min_fee} and {max_fee}")
    span, reach = samples * blocks_between, ctx.chain.max_blocks_back
    if span > reach:
        raise InvalidInput(f"samples × blocksBetween is {span} blocks; chain reads reach {reach} blocks back")
    if span > ctx.anchor_block:
        raise InvalidInput(f"the window of {span} blocks starts before block 0 (anchor {ctx.anchor_block})")

    slot = slot0_slot(pool_id)
    ticks = []
    for i in range(samples + 1):  # newest first: an uninitialised pool fails on the first read
        block = ctx.anchor_block - i * blocks_between
        sqrt_price, tick = decode_slot0(ctx.chain.storage(pool_manager, slot, block))
        if sqrt_price == 0:
            raise InvalidInput(f"pool 0x{pool_id.hex()} is not initialised at block {block}")
        ticks.append(tick)
    ticks.reverse()

    volatility = realised_volatility(ticks)
    fee = min(max_fee, min_fee + volatility)
    ctx.log(f"v4-volatility: ticks {ticks} -> volatility {volatility / SCALE:.2f} ticks/interval, fee {fee}")
    return volatility, fee
