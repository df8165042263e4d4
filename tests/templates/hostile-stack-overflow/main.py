"""Lifts the recursion limit and recurses through C code (a builtin calling back) until the C stack overflows: a crash."""

import sys


def down(n):
    return max([n], key=down)  # every level passes through C, so it uses the machine stack


def run(ctx):
    sys.setrecursionlimit(1 << 30)
    return down(0)
