"""Raises with a 50 MB message."""


def run(ctx):
    raise RuntimeError("A" * 50_000_000)
