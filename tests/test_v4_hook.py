"""CoprocessorFeeHook on Uniswap v4's real PoolManager (the shipped bytecode) on Anvil, with a node.

Swaps alternate direction, one block each, so the pool's tick swings by ~200 ticks between blocks;
the hook then asks `v4-volatility` (which reads Slot0 over those blocks through proofs), the node's
callback raises the LP fee, and the next swap's Swap event carries it.
"""

from __future__ import annotations

from eth_utils import to_checksum_address

from coprocessor.chain import ANVIL_KEYS, TxSender, contract
from coprocessor.dev import devnet, v4
from coprocessor.dev.toolchain import artifact
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import REQUEST_SUBMITTED_TOPIC, Status

from .conftest import Devnet

MIN_FEE, MAX_FEE = 500, 50_000
SAMPLES, BLOCKS_BETWEEN = 6, 1
NO_REQUESTS = 2**32 - 1  # a minInterval no block number reaches: swaps first, requests later
SWAP = 10**18


def _config(template_id: bytes, min_interval: int) -> tuple[bytes, int, int, int, int, int, int, int]:
    """(templateId, minFee, maxFee, samples, blocksBetween, minInterval, callbackGasLimit, timeout)."""
    return (template_id, MIN_FEE, MAX_FEE, SAMPLES, BLOCKS_BETWEEN, min_interval, 150_000, 600)


def _request_ids(receipt: object, coprocessor: str) -> list[bytes]:
    return [
        bytes(log["topics"][1])
        for log in receipt["logs"]  # type: ignore[index]
        if to_checksum_address(log["address"]) == to_checksum_address(coprocessor) and bytes(log["topics"][0]) == REQUEST_SUBMITTED_TOPIC
    ]


def test_feeHook_volatileSwaps_nodeCallbackRaisesFeeSeenByNextSwap(stack: Devnet, node: Node) -> None:
    deployer = TxSender(stack.w3, ANVIL_KEYS[devnet.DEPLOYER])
    v4_stack = v4.deploy_v4_stack(deployer)
    template_id = stack.template("v4-volatility").template_id
    hook_address = v4.deploy_hook(
        deployer,
        artifact("CoprocessorFeeHook"),
        v4.AFTER_INITIALIZE_FLAG | v4.AFTER_SWAP_FLAG,
        v4_stack.pool_manager,
        stack.deployment.coprocessor,
        _config(template_id, NO_REQUESTS),
        deployer.address,
    )
    assert int(hook_address, 16) & v4.ALL_HOOK_MASK == v4.AFTER_INITIALIZE_FLAG | v4.AFTER_SWAP_FLAG
    deployer.transact(hook_address, b"", value=10**17)  # the request budget
    pool = v4.init_pool(deployer, v4_stack, hook_address)
    hook = contract(stack.w3, "CoprocessorFeeHook", hook_address)

    # Volatile swaps, one block each, with requests held back; the starting fee is minFee.
    for i in range(SAMPLES):
        receipt = v4.swap(deployer, v4_stack, pool, i % 2 == 0, SWAP)
        assert v4.swap_fee(receipt, v4_stack.pool_manager) == MIN_FEE
        assert not _request_ids(receipt, stack.deployment.coprocessor)
    deployer.call_function(hook, "setConfig", _config(template_id, 1))

    receipt = v4.swap(deployer, v4_stack, pool, True, SWAP)
    assert v4.swap_fee(receipt, v4_stack.pool_manager) == MIN_FEE
    (request_id,) = _request_ids(receipt, stack.deployment.coprocessor)
    assert stack.settled({request_id}, receipt["blockNumber"], timeout=60) == {request_id: Status.OK}

    (updated,) = hook.events.FeeUpdated().get_logs(from_block=receipt["blockNumber"])
    fee = updated["args"]["fee"]
    assert updated["args"]["requestId"] == request_id
    assert updated["args"]["volatility"] > 100 * 100  # more than 100 ticks per block, in hundredths
    assert MIN_FEE < fee <= MAX_FEE and fee == min(MAX_FEE, MIN_FEE + updated["args"]["volatility"])

    after = v4.swap(deployer, v4_stack, pool, False, SWAP)
    assert v4.swap_fee(after, v4_stack.pool_manager) == fee
