"""A local Uniswap v4 for the hook examples: the real PoolManager and test routers from v4-core's shipped
artifacts (never recompiled), hook address mining, pools, liquidity, swaps and their Swap events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from ..chain import TxSender
from ..errors import ChainError
from .toolchain import artifact, npm_artifact

V4_CORE = "@uniswap/v4-core"
# The deterministic CREATE2 deployer (Arachnid's), present on Anvil from genesis: call it with salt ‖ init code.
CREATE2_DEPLOYER = "0x4e59b44847b379578588920ca78fbf26c0b4956c"

# Hooks.sol: the low 14 bits of a hook's address are its permissions.
ALL_HOOK_MASK = (1 << 14) - 1
# Hooks.sol's permission flags by name, as `coprocessor v4 hook --flags` takes them.
HOOK_FLAGS = {
    name: 1 << bit
    for bit, name in enumerate(
        [
            "after-remove-liquidity-returns-delta",
            "after-add-liquidity-returns-delta",
            "after-swap-returns-delta",
            "before-swap-returns-delta",
            "after-donate",
            "before-donate",
            "after-swap",
            "before-swap",
            "after-remove-liquidity",
            "before-remove-liquidity",
            "after-add-liquidity",
            "before-add-liquidity",
            "after-initialize",
            "before-initialize",
        ]
    )
}
AFTER_INITIALIZE_FLAG = HOOK_FLAGS["after-initialize"]
AFTER_SWAP_FLAG = HOOK_FLAGS["after-swap"]
BEFORE_SWAP_FLAG = HOOK_FLAGS["before-swap"]
DYNAMIC_FEE_FLAG = 0x800000  # LPFeeLibrary.DYNAMIC_FEE_FLAG
SQRT_PRICE_1_1 = 2**96
MIN_SQRT_PRICE = 4295128739  # TickMath.MIN_SQRT_PRICE
MAX_SQRT_PRICE = 1461446703485210103287273052203988822378723970342
TICK_SPACING = 60
MAX_UINT = 2**256 - 1

SWAP_TOPIC = keccak(b"Swap(bytes32,address,int128,int128,uint160,uint128,int24,uint24)")


def create2_address(deployer: str, salt: bytes, init_code_hash: bytes) -> str:
    """The address `deployer` creates with CREATE2 from `salt` and the keccak256 of the init code."""
    return to_checksum_address(keccak(b"\xff" + bytes.fromhex(deployer.removeprefix("0x")) + salt + init_code_hash)[12:])


def mine_hook_salt(deployer: str, init_code: bytes, flags: int, start: int = 0) -> tuple[bytes, str]:
    """The first salt from `start` whose CREATE2 address carries exactly `flags` in its low 14 bits.

    About 16k tries on average for any flag set (one keccak each, ~10 ms per thousand here).
    """
    flags &= ALL_HOOK_MASK
    code_hash = keccak(init_code)
    prefix = b"\xff" + bytes.fromhex(deployer.removeprefix("0x"))
    for n in range(start, start + 1_000_000):
        salt = n.to_bytes(32, "big")
        address = keccak(prefix + salt + code_hash)[12:]
        if int.from_bytes(address[-2:], "big") & ALL_HOOK_MASK == flags:
            return salt, to_checksum_address(address)
    raise ChainError(f"no salt in [{start}, {start + 1_000_000}) gives hook flags {flags:#x}")


def deploy_hook(sender: TxSender, artifact: dict[str, Any], flags: int, *args: Any) -> str:
    """Deploys a hook through the CREATE2 deployer at a mined address carrying `flags`; returns the address.

    Skips salts whose address already holds code (a second deployment of the same init code on one chain).
    """
    factory = sender.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"]["object"])
    init_code = bytes.fromhex(factory._encode_constructor_data(*args).removeprefix("0x"))
    start = 0
    while True:
        salt, address = mine_hook_salt(CREATE2_DEPLOYER, init_code, flags, start)
        if not sender.w3.eth.get_code(to_checksum_address(address)):
            break
        start = int.from_bytes(salt, "big") + 1
    sender.transact(CREATE2_DEPLOYER, salt + init_code)
    if not sender.w3.eth.get_code(to_checksum_address(address)):
        raise ChainError(f"the CREATE2 deployer did not create the hook at {address}")
    return address


@dataclass(frozen=True)
class V4Stack:
    """Addresses of a local v4 deployment; tokens sorted (currency0 < currency1) and approved for the routers."""

    pool_manager: str
    swap_router: str
    liquidity_router: str
    currency0: str
    currency1: str


@dataclass(frozen=True)
class Pool:
    """A pool key and its id."""

    currency0: str
    currency1: str
    fee: int
    tick_spacing: int
    hooks: str

    @property
    def key(self) -> tuple[str, str, int, int, str]:
        """The PoolKey tuple as the contracts take it."""
        return (self.currency0, self.currency1, self.fee, self.tick_spacing, self.hooks)

    @property
    def pool_id(self) -> bytes:
        """PoolId: keccak256(abi.encode(key))."""
        return keccak(encode(["address", "address", "uint24", "int24", "address"], list(self.key)))


def v4_contract(w3: Web3, name: str, address: str) -> Contract:
    """A handle on a v4-core contract from its shipped artifact."""
    return w3.eth.contract(address=to_checksum_address(address), abi=npm_artifact(V4_CORE, name)["abi"])


def deploy_v4_stack(sender: TxSender, token_supply: int = 2**128) -> V4Stack:
    """Deploys PoolManager (owned by `sender`), PoolSwapTest, PoolModifyLiquidityTest and two TestERC20s
    (minted to `sender`) from v4-core's artifacts, and approves the routers for both tokens."""
    manager = sender.deploy_artifact(npm_artifact(V4_CORE, "PoolManager"), sender.address)
    swap_router = sender.deploy_artifact(npm_artifact(V4_CORE, "PoolSwapTest"), manager)
    liquidity_router = sender.deploy_artifact(npm_artifact(V4_CORE, "PoolModifyLiquidityTest"), manager)
    erc20 = npm_artifact(V4_CORE, "TestERC20")
    tokens = sorted((sender.deploy_artifact(erc20, token_supply) for _ in range(2)), key=lambda a: int(a, 16))
    for token in tokens:
        handle = v4_contract(sender.w3, "TestERC20", token)
        for spender in (swap_router, liquidity_router):
            sender.call_function(handle, "approve", spender, MAX_UINT)
    return V4Stack(manager, swap_router, liquidity_router, tokens[0], tokens[1])


def init_pool(
    sender: TxSender,
    stack: V4Stack,
    hooks: str,
    fee: int = DYNAMIC_FEE_FLAG,
    liquidity: int = 100 * 10**18,
    tick_range: tuple[int, int] = (-6000, 6000),
    tick_spacing: int = TICK_SPACING,
) -> Pool:
    """Initialises a pool of the stack's tokens with `hooks` at price 1 and adds `liquidity` over `tick_range`."""
    pool = Pool(stack.currency0, stack.currency1, fee, tick_spacing, to_checksum_address(hooks))
    sender.call_function(v4_contract(sender.w3, "PoolManager", stack.pool_manager), "initialize", pool.key, SQRT_PRICE_1_1)
    router = v4_contract(sender.w3, "PoolModifyLiquidityTest", stack.liquidity_router)
    sender.call_function(router, "modifyLiquidity", pool.key, (tick_range[0], tick_range[1], liquidity, b"\x00" * 32), b"")
    return pool


def swap(sender: TxSender, stack: V4Stack, pool: Pool, zero_for_one: bool, amount_in: int) -> Any:
    """An exact-input swap through PoolSwapTest; returns the receipt."""
    limit = MIN_SQRT_PRICE + 1 if zero_for_one else MAX_SQRT_PRICE - 1
    router = v4_contract(sender.w3, "PoolSwapTest", stack.swap_router)
    return sender.call_function(router, "swap", pool.key, (zero_for_one, -amount_in, limit), (False, False), b"")


@dataclass(frozen=True)
class SwapEvent:
    """The fields of PoolManager's Swap event that a fee observer needs."""

    pool_id: bytes
    amount0: int
    amount1: int
    tick: int
    fee: int


def swap_events(receipt: Any, pool_manager: str) -> list[SwapEvent]:
    """PoolManager Swap events in a receipt, in order."""
    events = []
    for log in receipt["logs"]:
        if to_checksum_address(log["address"]) != to_checksum_address(pool_manager) or bytes(log["topics"][0]) != SWAP_TOPIC:
            continue
        amount0, amount1, _, _, tick, fee = decode(["int128", "int128", "uint160", "uint128", "int24", "uint24"], bytes(log["data"]))
        events.append(SwapEvent(bytes(log["topics"][1]), amount0, amount1, tick, fee))
    return events


def swap_fee(receipt: Any, pool_manager: str) -> int:
    """The LP fee charged by the (single) swap in `receipt`, from PoolManager's Swap event."""
    events = swap_events(receipt, pool_manager)
    if len(events) != 1:
        raise ChainError(f"expected one Swap event, found {len(events)}")
    return events[0].fee


@dataclass(frozen=True)
class FeeHookDemo:
    """What `run_fee_hook_demo` observed."""

    fee_before: int
    swap_gas: int
    request_id: bytes
    volatility: int
    fee_set: int
    latency: float
    fee_after: int


def run_fee_hook_demo(sender: TxSender, coprocessor: str, template_id: bytes, w3: Web3, timeout: float = 60.0) -> FeeHookDemo:
    """Deploys a v4 stack and a `CoprocessorFeeHook`, swaps back and forth for six blocks, lets one swap
    request a fee, waits for a running node's callback, and swaps again (for `coprocessor dev --demo`)."""
    held_back, samples = 2**32 - 1, 6  # a minInterval no block reaches: the volatile swaps come first
    config = [template_id, 500, 50_000, samples, 1, held_back, 150_000, 600]
    stack = deploy_v4_stack(sender)
    hook_address = deploy_hook(
        sender,
        artifact("CoprocessorFeeHook"),
        AFTER_INITIALIZE_FLAG | AFTER_SWAP_FLAG,
        stack.pool_manager,
        coprocessor,
        tuple(config),
        sender.address,
    )
    sender.transact(hook_address, b"", value=10**17)  # the hook's budget for request fees
    pool = init_pool(sender, stack, hook_address)
    hook = w3.eth.contract(address=to_checksum_address(hook_address), abi=artifact("CoprocessorFeeHook")["abi"])
    for i in range(samples):
        swap(sender, stack, pool, i % 2 == 0, 10**18)
    config[5] = 1
    sender.call_function(hook, "setConfig", tuple(config))
    receipt = swap(sender, stack, pool, True, 10**18)
    started = time.monotonic()
    requested = hook.events.FeeRequested().process_receipt(receipt, errors=DISCARD)  # other contracts' logs too
    if not requested:
        raise ChainError("the swap did not request a fee")
    request_id = requested[0]["args"]["requestId"]
    while not (updates := hook.events.FeeUpdated().get_logs(from_block=receipt["blockNumber"])):
        if time.monotonic() - started > timeout:
            raise ChainError(f"no fee callback for 0x{request_id.hex()} within {timeout:g} s")
        time.sleep(0.05)
    latency = time.monotonic() - started
    after = swap(sender, stack, pool, False, 10**18)
    return FeeHookDemo(
        swap_fee(receipt, stack.pool_manager),
        receipt["gasUsed"],
        request_id,
        updates[0]["args"]["volatility"],
        updates[0]["args"]["fee"],
        latency,
        swap_fee(after, stack.pool_manager),
    )
