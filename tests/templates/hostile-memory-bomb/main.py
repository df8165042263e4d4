"""Allocates memory until refused, in shrinking pieces, then tries a raw mmap.

Returns (a leak) if it ever holds 4 GiB; otherwise ends with the MemoryError.
"""

import mmap


def run(ctx):
    hoard = []
    piece = 64 * 1024 * 1024
    total = 0
    while piece >= 4096:
        try:
            hoard.append(bytearray(piece))
            total += piece
            if total >= 4 << 30:
                return f"held {total >> 20} MiB"
        except MemoryError:
            piece //= 2
    try:
        hoard.append(mmap.mmap(-1, 1 << 30))
        return f"mapped 1 GiB on top of {total >> 20} MiB"
    except OSError:
        pass
    raise MemoryError(f"refused after {total >> 20} MiB")
