"""SignedFeeHook on Uniswap v4's real PoolManager (the shipped bytecode) on Anvil: sync-mode fees.

The swapper asks the node's quote endpoint for `v4-volatility` on the hook's `quoteInput(poolId)`
(the enclave reads the pool's Slot0 over recent blocks through proofs, anchored to the parent of the
latest block), passes the signed quote as `hookData`, and the hook's `beforeSwap` verifies it and
overrides the LP fee for that swap: the Swap event carries the quoted fee. No request, no callback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from eth_abi import decode
from eth_utils import keccak
from web3.logs import DISCARD

from coprocessor.chain import ANVIL_KEYS, TxSender, contract, decode_revert
from coprocessor.dev import devnet, v4
from coprocessor.dev.toolchain import artifact
from coprocessor.node.quotes import QuoteService, fetch_quote, make_quote_server, web3_anchor
from coprocessor_enclave.protocol import SignedQuote
from coprocessor_enclave.template import encode_args

from .conftest import Devnet

MIN_FEE, MAX_FEE = 500, 50_000
DEFAULT_FEE = MAX_FEE
SAMPLES, BLOCKS_BETWEEN = 4, 1
MAX_ANCHOR_AGE = 8
SWAP = 10**18
WRAPPED_ERROR = keccak(b"WrappedError(address,bytes4,bytes,bytes)")[:4]


@dataclass
class HookStack:
    """The protocol stack, a v4 stack, a SignedFeeHook at a mined address, its pool, and a quote endpoint."""

    devnet: Devnet
    v4: v4.V4Stack
    hook: str
    pool: v4.Pool
    url: str
    swapper: TxSender

    def quote(self) -> SignedQuote:
        """A v4-volatility quote for this hook and pool from the node's endpoint."""
        template = self.devnet.template("v4-volatility")
        data = contract(self.devnet.w3, "SignedFeeHook", self.hook).functions.quoteInput(self.pool.pool_id).call()
        body = {"templateId": template.name, "input": "0x" + bytes(data).hex(), "consumer": self.hook}
        return fetch_quote(self.url, body)

    def _swap_calldata(self, zero_for_one: bool, hook_data: bytes) -> bytes:
        limit = v4.MIN_SQRT_PRICE + 1 if zero_for_one else v4.MAX_SQRT_PRICE - 1
        router = v4.v4_contract(self.devnet.w3, "PoolSwapTest", self.v4.swap_router)
        params = (zero_for_one, -SWAP, limit)
        encoded = router.encode_abi("swap", args=[self.pool.key, params, (False, False), hook_data])
        return bytes.fromhex(encoded.removeprefix("0x"))

    def swap(self, zero_for_one: bool, hook_data: bytes = b"") -> object:
        """An exact-input swap through PoolSwapTest with `hook_data`; returns the receipt."""
        return self.swapper.transact(self.v4.swap_router, self._swap_calldata(zero_for_one, hook_data))

    def revert_of(self, hook_data: bytes) -> str:
        """The hook's error for a swap with `hook_data`, unwrapped from the PoolManager's WrappedError (eth_call)."""
        call = {"from": self.swapper.address, "to": self.v4.swap_router, "data": self._swap_calldata(True, hook_data)}
        try:
            self.devnet.w3.eth.call(call)  # type: ignore[arg-type]
        except Exception as exc:
            data = getattr(exc, "data", None)
            raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data or b"")
            assert raw[:4] == WRAPPED_ERROR, f"not a wrapped hook error: {decode_revert(raw)}"
            target, _, reason, _ = decode(["address", "bytes4", "bytes", "bytes"], raw[4:])
            assert target.lower() == self.hook.lower()
            return decode_revert(reason)
        raise AssertionError("swap did not revert")


@pytest.fixture(scope="module")
def hooked(stack: Devnet) -> Iterator[HookStack]:
    deployer = TxSender(stack.w3, ANVIL_KEYS[devnet.DEPLOYER])
    v4_stack = v4.deploy_v4_stack(deployer)
    config = (
        stack.template("v4-volatility").template_id,
        MIN_FEE,
        MAX_FEE,
        DEFAULT_FEE,
        SAMPLES,
        BLOCKS_BETWEEN,
        MAX_ANCHOR_AGE,
    )
    hook = v4.deploy_hook(
        deployer,
        artifact("SignedFeeHook"),
        v4.BEFORE_SWAP_FLAG,
        v4_stack.pool_manager,
        stack.deployment.registry,
        stack.deployment.coprocessor,
        config,
        deployer.address,
    )
    pool = v4.init_pool(deployer, v4_stack, hook)
    server = make_quote_server(QuoteService(stack.enclave(), web3_anchor(stack.w3)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hooked = HookStack(stack, v4_stack, hook, pool, f"http://127.0.0.1:{server.server_address[1]}", deployer)
    # Volatile swaps without quotes, one block each: they pay the default fee and give the template a history.
    for i in range(SAMPLES + 1):
        assert v4.swap_fee(hooked.swap(i % 2 == 0), v4_stack.pool_manager) == DEFAULT_FEE
    yield hooked
    server.shutdown()


def test_signedFeeHook_minedAddressAndQuoteInput(hooked: HookStack) -> None:
    assert int(hooked.hook, 16) & v4.ALL_HOOK_MASK == v4.BEFORE_SWAP_FLAG
    handle = contract(hooked.devnet.w3, "SignedFeeHook", hooked.hook)
    expected = encode_args(
        hooked.devnet.template("v4-volatility"),
        [hooked.v4.pool_manager, hooked.pool.pool_id, SAMPLES, BLOCKS_BETWEEN, MIN_FEE, MAX_FEE],
    )
    assert bytes(handle.functions.quoteInput(hooked.pool.pool_id).call()) == expected


def test_signedFeeHook_quoteFromNode_setsTheSwapsFee(hooked: HookStack) -> None:
    signed = hooked.quote()
    volatility, quoted = decode(["uint256", "uint24"], signed.output)
    assert volatility > 100 * 100  # the alternating swaps move the tick by more than 100 ticks a block
    fee = min(MAX_FEE, max(MIN_FEE, quoted))
    assert MIN_FEE < fee < DEFAULT_FEE  # a quote is worth fetching: cheaper than the default

    receipt = hooked.swap(False, signed.encode())
    assert v4.swap_fee(receipt, hooked.v4.pool_manager) == fee
    handle = contract(hooked.devnet.w3, "SignedFeeHook", hooked.hook)
    (event,) = handle.events.FeeQuoted().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["nonce"] == signed.quote.nonce and event["args"]["fee"] == fee
    assert event["args"]["volatility"] == volatility and event["args"]["signer"] == signed.signer
    assert handle.functions.quoteUsed(signed.quote.nonce).call()
    assert receipt["gasUsed"] < 300_000

    # The override was for that swap only: the next swap without a quote pays the default again.
    assert v4.swap_fee(hooked.swap(True), hooked.v4.pool_manager) == DEFAULT_FEE


def test_signedFeeHook_tamperedQuote_reverts(hooked: HookStack) -> None:
    signed = hooked.quote()
    output = bytearray(signed.output)
    output[-1] ^= 0x01  # one byte of the quoted fee
    assert hooked.revert_of(replace(signed, output=bytes(output)).encode()) == "OutputMismatch()"
    signature = bytearray(signed.signature)
    signature[5] ^= 0x01  # one byte of r
    assert hooked.revert_of(replace(signed, signature=bytes(signature)).encode()) == "InvalidQuoteSignature()"
    receipt = hooked.swap(True, signed.encode())  # the untampered quote still works
    assert v4.swap_fee(receipt, hooked.v4.pool_manager) == decode(["uint256", "uint24"], signed.output)[1]


def test_signedFeeHook_replayedQuote_reverts(hooked: HookStack) -> None:
    signed = hooked.quote()
    hooked.swap(False, signed.encode())
    assert hooked.revert_of(signed.encode()) == f"QuoteReplayed(0x{signed.quote.nonce.hex()})"


def test_signedFeeHook_quoteForAnotherPool_reverts(hooked: HookStack) -> None:
    signed = hooked.quote()
    other = HookStack(**{**hooked.__dict__, "pool": v4.init_pool(hooked.swapper, hooked.v4, hooked.hook, tick_spacing=10)})
    assert other.revert_of(signed.encode()) == f"WrongInput(0x{signed.quote.input_hash.hex()})"


def test_signedFeeHook_staleQuote_reverts(hooked: HookStack) -> None:
    signed = hooked.quote()
    for _ in range(MAX_ANCHOR_AGE):
        hooked.devnet.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert hooked.revert_of(signed.encode()) == f"StaleQuote({signed.quote.anchor_block})"
