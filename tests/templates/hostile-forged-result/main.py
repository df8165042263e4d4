"""Skips the worker's encoding: writes a well-framed forged result straight to the job socket and exits.

The forged output is 32 bytes that are not a canonical uint8 (high bytes set), so only the
enclave's canonical-ABI re-check stands between it and a signature.
"""

import json
import os
import stat


def run(ctx):
    body = json.dumps({"result": {"status": 0, "output": "ff" * 32}}).encode()
    forged = len(body).to_bytes(4, "big") + body
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, forged)
                os._exit(0)
        except OSError:
            continue
    raise RuntimeError("no job socket found")
