"""An account's balance on another chain at a named block (ctx.chain(chain_id, block), docs/chains.md)."""


def run(ctx, chain_id, block, account):
    return ctx.chain(chain_id, block).balance(account)
