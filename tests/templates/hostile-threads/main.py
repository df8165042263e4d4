"""Starts spinning threads until refused; returns (a leak) if it gets 1000."""

import threading


def spin():
    while True:
        pass


def run(ctx):
    started = 0
    try:
        while started < 1000:
            threading.Thread(target=spin, daemon=True).start()
            started += 1
    except RuntimeError as exc:
        raise RuntimeError(f"thread refused after {started}: {exc}") from None
    return f"started {started} threads"
