"""Closes and redirects inherited descriptors: the job socket becomes stderr, so the result goes to the log."""

import os
import stat


def run(ctx):
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.dup2(2, fd)  # the worker now "answers" into the log pipe
        except OSError:
            continue
    os.close(0)
    os.close(1)
    return 42
