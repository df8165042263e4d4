"""Reads the chain once, then overruns: by sleeping, or (with `keep_reading`) by fast chain reads
until its time is gone. Either way the time is the template's own: the outcome is a signed Timeout."""

import time


def run(ctx, keep_reading):
    ctx.caller("chain", {"method": "eth_chainId", "params": []})
    started = time.monotonic()
    while time.monotonic() - started < 3:
        if keep_reading:
            ctx.caller("chain", {"method": "eth_chainId", "params": []})
        time.sleep(0.01)
    return 0
