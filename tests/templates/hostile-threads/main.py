"""Starts threads until refused; returns (a leak) if it gets 1000.

The threads sleep rather than spin: spinning ones fight the starter for the GIL, so on a loaded
machine the job could hit its CPU limit (TIMEOUT) before the task limit refused a thread, and
the test would measure the scheduler instead of the limit. hostile-infinite-loop covers CPU.
"""

import threading
import time


def hold():
    time.sleep(3600)


def run(ctx):
    started = 0
    try:
        while started < 1000:
            threading.Thread(target=hold, daemon=True).start()
            started += 1
    except RuntimeError as exc:
        raise RuntimeError(f"thread refused after {started}: {exc}") from None
    return f"started {started} threads"
