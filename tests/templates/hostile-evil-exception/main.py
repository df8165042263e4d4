"""Raises an exception that cannot be printed: its str() raises KeyboardInterrupt."""


class Evil(Exception):
    def __str__(self):
        raise KeyboardInterrupt("you cannot describe me")


def run(ctx):
    raise Evil()
