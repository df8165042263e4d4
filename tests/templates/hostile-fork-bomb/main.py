"""Classic fork bomb: every process forks in a loop; children keep their slot by sleeping.

Returns (a leak) if it ever gets 1000 processes; otherwise the first refusal ends it with
an error that says how many children the original process got.
"""

import os
import time


def run(ctx):
    me = os.getpid()
    children = 0
    while children < 1000:
        try:
            pid = os.fork()
        except OSError as exc:
            if os.getpid() != me:
                time.sleep(3600)  # a child: hold the process slot
            raise RuntimeError(f"fork refused after {children} children: {exc}") from None
        if pid == 0:
            children = 0  # the child bombs too
            continue
        children += 1
    return f"forked {children} children"
