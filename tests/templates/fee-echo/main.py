"""Echoes `value`; zero is refused as InvalidInput, to settle with an error status."""

from coprocessor.sdk import InvalidInput


def run(ctx, value):
    if value == 0:
        raise InvalidInput("zero is not echoed")
    return value
