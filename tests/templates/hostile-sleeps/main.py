"""Blocks signals and sleeps for an hour: uses no CPU, so only the wall clock can stop it."""

import signal
import time


def run(ctx):
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
    time.sleep(3600)
    return 1
