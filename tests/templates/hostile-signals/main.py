"""Signals everything it can: the parent, the given pid (the enclave), kill(-1), every visible pid.

Returns whom it reached (a leak); raises with every refusal otherwise.
"""

import os
import signal


def run(ctx, hint):
    me = os.getpid()
    got, failures = [], []
    visible = []
    for pid in range(1, 1 << 15):  # every pid this process can address (signal 0: no effect)
        if pid == me:
            continue
        try:
            os.kill(pid, 0)
            visible.append(pid)
        except PermissionError:
            visible.append(pid)  # it exists, we may not signal it: try anyway below
        except OSError:
            pass
    for pid in sorted({hint, os.getppid(), *visible} - {0, me}):
        for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
            try:
                os.kill(pid, sig)
                got.append(f"{sig.name} to {pid}")
            except OSError as exc:
                failures.append(f"{sig.name} to {pid}: {exc.strerror}")
    try:
        os.kill(-1, signal.SIGKILL)  # everything we may signal, except ourselves
        failures.append("kill(-1) returned without error")  # only says nobody else was reached or allowed
    except OSError as exc:
        failures.append(f"kill(-1): {exc.strerror}")
    if got:
        return "\n".join(got)
    raise PermissionError(f"visible pids {visible}; " + "; ".join(dict.fromkeys(failures)))
