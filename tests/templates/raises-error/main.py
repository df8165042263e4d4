"""Raises with the given message."""


def run(ctx, message):
    raise RuntimeError(message)
