"""Reads the environment of the parent, the given pid (the enclave) and every pid /proc lists.

Returns what it read (a leak); raises with every refusal otherwise.
"""

import os


def run(ctx, hint):
    failures = []
    pids = {os.getppid(), hint, 1}
    try:
        pids |= {int(p) for p in os.listdir("/proc") if p.isdigit()}
    except OSError as exc:
        failures.append(f"list /proc: {exc.strerror}")
    got = []
    for pid in sorted(p for p in pids if p > 0 and p != os.getpid()):
        for name in ("environ", "cmdline", "status"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    got.append(f"{pid}/{name}: {f.read(8192)!r}")
            except OSError as exc:
                failures.append(f"{pid}/{name}: {exc.strerror}")
    if got:
        return "\n".join(got)[:15000]
    raise PermissionError("; ".join(dict.fromkeys(failures)))
