"""Allocates 1 GiB in 64 MiB pieces."""


def run(ctx):
    hoard = [bytearray(64 * 1024 * 1024) for _ in range(16)]
    return len(hoard)
