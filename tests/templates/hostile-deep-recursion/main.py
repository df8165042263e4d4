"""Unbounded recursion."""


def down(n):
    return down(n + 1) + 1


def run(ctx):
    return down(0)
