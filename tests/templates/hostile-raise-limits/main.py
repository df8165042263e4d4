"""Tries to lift its limits: every rlimit to infinity, hard limits by one, niceness down.

Returns what worked (a leak); raises with every refusal otherwise.
"""

import os
import resource


def run(ctx):
    got, failures = [], []
    names = ["RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE"]
    for name in names:
        limit = getattr(resource, name)
        soft, hard = resource.getrlimit(limit)
        for wanted in ((resource.RLIM_INFINITY, resource.RLIM_INFINITY), (hard + 1, hard + 1)):
            try:
                resource.setrlimit(limit, wanted)
                got.append(f"{name} {soft},{hard} -> {wanted}")
            except (ValueError, OSError) as exc:
                failures.append(f"{name}: {exc}")
        try:
            resource.prlimit(1, limit, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            got.append(f"prlimit pid 1 {name}")
        except (ValueError, OSError) as exc:
            failures.append(f"prlimit {name}: {exc}")
    try:
        os.nice(-5)
        got.append("nice -5")
    except OSError as exc:
        failures.append(f"nice: {exc.strerror}")
    if got:
        return "\n".join(got)
    raise PermissionError("; ".join(dict.fromkeys(failures)))
