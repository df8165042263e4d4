"""Test template: returns twice its input (the callee of calls-double)."""


def run(ctx, x):
    return x * 2
