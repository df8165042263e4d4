"""Floods the log: a 1 MB line on stdout, 10,000 lines on stderr, 100 oversized ctx.log lines, then returns."""

import sys


def run(ctx):
    print("y" * 1_000_000)
    for i in range(10_000):
        print(f"line {i} " + "z" * 100, file=sys.stderr)
    for i in range(100):
        ctx.log("w" * 100_000)
    return 10_000
