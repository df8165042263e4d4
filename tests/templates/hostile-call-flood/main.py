"""Asks for randomness 100,000 times: the enclave stops answering after its per-job call cap."""


def run(ctx):
    for _ in range(100_000):
        ctx.random(1)
    return 1
