"""A well-framed but absurdly nested JSON call: parsing it must fail cleanly in the enclave, not crash it."""

import os
import stat


def run(ctx):
    body = b'{"call":"log","args":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    frame = len(body).to_bytes(4, "big") + body
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, frame)
                os.read(fd, 1)
        except OSError:
            continue
    return 1
