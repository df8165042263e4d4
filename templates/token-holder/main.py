"""Token gating from verified chain state: does `holder` hold at least `minimum` of `token`?

A contract that gates an action on a balance ("holders of 100 GOV may vote", "only accounts
with 1 ETH may enter") can read the balance itself, but only on its own chain and only now.
This template reads it as of the request's anchor block, from an untrusted RPC whose every
answer is proven against the anchor's block hash: `balanceOf(holder)` runs in an EVM over
Merkle-proven state (`ctx.chain.call`), and native ETH is the proven account balance.
"""

from __future__ import annotations

from coprocessor.chainread import CallReverted
from coprocessor.sdk import Context, InvalidInput

BALANCE_OF = bytes.fromhex("70a08231")  # bytes4(keccak256("balanceOf(address)"))


def balance_of_call(holder: str) -> bytes:
    """Calldata of `balanceOf(holder)`."""
    return BALANCE_OF + bytes.fromhex(holder[2:]).rjust(32, b"\0")


def token_balance(ctx: Context, token: str, holder: str) -> int:
    """`token.balanceOf(holder)` at the anchor block; InvalidInput if `token` is not an ERC-20."""
    if not ctx.chain.code(token):
        raise InvalidInput(f"no contract at token {token} at block {ctx.anchor_block}")
    try:
        answer = ctx.chain.call(token, balance_of_call(holder))
    except CallReverted as exc:
        raise InvalidInput(f"token {token}: balanceOf reverted ({exc})") from None
    if len(answer) < 32:
        raise InvalidInput(f"token {token}: balanceOf returned {len(answer)} bytes, not a uint256")
    return int.from_bytes(answer[:32], "big")


def run(ctx: Context, token: str, holder: str, minimum: int) -> tuple[bool, int]:
    """(balance >= minimum, balance) of `holder` in `token` (address(0): ETH) at the anchor block."""
    if int(token, 16) == 0:  # address(0): the native currency
        balance, unit = ctx.chain.balance(holder), "wei"
    else:
        balance, unit = token_balance(ctx, token, holder), f"of {token}"
    holds = balance >= minimum
    ctx.log(f"token-holder: {holder} has {balance} {unit} at block {ctx.anchor_block}; minimum {minimum}: {holds}")
    return holds, balance
