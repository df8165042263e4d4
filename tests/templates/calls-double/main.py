"""Test template: call-double(x) + 1, through ctx.call."""

from eth_abi import decode, encode


def run(ctx, x):
    result = ctx.call(ctx.config["callee"], encode(["uint256"], [x]))
    if not result.ok:
        raise RuntimeError(f"call-double failed ({result.status}): {result.output.decode(errors='replace')}")
    return decode(["uint256"], result.output)[0] + 1
