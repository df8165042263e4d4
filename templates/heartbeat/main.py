"""A scheduled job's run: its index and the verified time of its anchor block."""


def run(ctx, run_index, _input):
    header = ctx.chain.header()
    return run_index, header.block_number, header.timestamp
