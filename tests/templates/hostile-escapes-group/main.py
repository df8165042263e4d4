"""Leaves a child behind in a session of its own, holding the job socket, then fails.

If the child outlived the job, the enclave would wait on the socket until the deadline
(Timeout) and the child would linger; contained, the job ends at once as TemplateError.
"""

import os
import time


def run(ctx):
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                time.sleep(3600)
        finally:
            os._exit(0)
    time.sleep(0.05)
    raise RuntimeError(f"left child {pid} behind")
