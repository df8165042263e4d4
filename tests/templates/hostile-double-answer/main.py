"""Answers twice: a forked child returns 666 at once, the job's own process returns 1 a little later.

Only the job's own process may answer: the result must be 1, and not a mix of two answers.
"""

import os
import time


def run(ctx):
    if os.fork() == 0:
        return 666
    time.sleep(0.1)
    return 1
