"""Test template: returns ctx.chain.balance(account); with `swallow`, hides a ChainDataError behind a 0."""

from coprocessor.sdk import ChainDataError


def run(ctx, account, swallow):
    if not swallow:
        return ctx.chain.balance(account)
    try:
        return ctx.chain.balance(account)
    except ChainDataError:
        return 0
