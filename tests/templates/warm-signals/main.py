"""Sends SIGKILL to each pid it is given (the test passes the host pids of its own zygote, another template's
zygote and spare worker, and the fork server) and reports what each attempt did."""

import json
import os
import signal


def run(ctx, pids):
    outcomes = {}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            outcomes[str(pid)] = "killed"
        except OSError as exc:
            outcomes[str(pid)] = exc.strerror
    return json.dumps(outcomes)
