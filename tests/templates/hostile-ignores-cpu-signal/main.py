"""Ignores the CPU-time warning signal (SIGXCPU) and blocks what it can, then spins."""

import signal


def run(ctx):
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
    n = 0
    while True:
        n += 1
