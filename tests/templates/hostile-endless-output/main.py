"""Returns a list-like output whose iteration never ends, with a length that lies."""

import itertools


class Endless(list):
    def __iter__(self):
        return itertools.count()

    def __len__(self):
        return 2**62


def run(ctx):
    return Endless([1])
