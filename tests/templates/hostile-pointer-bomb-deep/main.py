"""Writes its own Ok result straight to the job socket: `uint256` + `[]` * levels (from [config]) in 96 KB,
every array's offsets aliasing the one array below it.

eth_abi's decoder accepts these pointers (each lies past its head and inside the data) and would
visit n**levels elements, n = 3071 // levels - 1. The enclave must refuse the layout unread.
"""

import json
import os
import stat

SIZE = 96 * 1024


def bomb(levels, size=SIZE):
    n = (size // 32 - 1) // levels - 1
    layout = [32]  # the top-level head: one dynamic value, right after it
    for _ in range(levels - 1):
        layout += [n] + [32 * n] * n  # n offsets, all to the array that follows them
    layout += [n] + [7] * n
    return b"".join(word.to_bytes(32, "big") for word in layout)


def run(ctx):
    body = json.dumps({"result": {"status": 0, "output": bomb(ctx.config["levels"]).hex()}}).encode()
    frame = len(body).to_bytes(4, "big") + body
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                while frame:
                    frame = frame[os.write(fd, frame) :]
                os._exit(0)
        except OSError:
            continue
    raise RuntimeError("no job socket found")
