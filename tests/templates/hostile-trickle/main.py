"""Writes a call frame's bytes one every 0.3 s on the job socket: each byte alone would reset a per-recv timeout."""

import os
import stat
import time


def run(ctx):
    body = b'{"call":"log","args":{"message":"' + b"x" * 200 + b'"}}'
    frame = len(body).to_bytes(4, "big") + body
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                for byte in frame:
                    os.write(fd, bytes([byte]))
                    time.sleep(0.3)
        except OSError:
            continue
    return 1
