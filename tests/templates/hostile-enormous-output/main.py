"""Returns an 8 MB string."""


def run(ctx):
    return "x" * 8_000_000
