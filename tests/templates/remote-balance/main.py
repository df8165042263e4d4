"""Test template: ctx.chain(chain_id, block).balance(account); with `swallow`, hides a ChainDataError behind a 0."""

from coprocessor.sdk import ChainDataError


def run(ctx, chain_id, block, account, swallow):
    if not swallow:
        return ctx.chain(chain_id, block).balance(account)
    try:
        return ctx.chain(chain_id, block).balance(account)
    except ChainDataError:
        return 0
