"""Opens pipes until refused; returns (a leak) if it holds 10,000 descriptors."""

import os


def run(ctx):
    held = []
    try:
        while len(held) < 5000:
            held.extend(os.pipe())
    except OSError as exc:
        raise OSError(exc.errno, f"refused at {len(held)} descriptors: {exc.strerror}") from None
    return f"held {len(held)} descriptors"
