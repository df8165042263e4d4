"""Sleeps `sleep_ms`, then echoes `value`."""

import time


def run(ctx, value, sleep_ms):
    time.sleep(sleep_ms / 1000)
    return value
