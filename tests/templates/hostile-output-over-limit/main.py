"""Returns 20 KB of output: fits through the worker channel, but exceeds the output limit."""


def run(ctx):
    return b"\xff" * 20_000
