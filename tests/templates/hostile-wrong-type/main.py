"""Declares `uint8` output and returns something else."""


def run(ctx):
    return "definitely not a uint8"
