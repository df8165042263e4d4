"""Tries to read another process's memory: the parent, the given pid (the enclave) and every pid /proc lists.

Returns what it read (a leak); raises with every refusal otherwise.
"""

import ctypes
import os

PTRACE_ATTACH = 16
failures = []  # every refusal, for the error message (each job is a fresh process)


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def targets(hint):
    pids = {os.getppid(), hint}
    try:
        pids |= {int(p) for p in os.listdir("/proc") if p.isdigit()}
    except OSError as exc:
        failures.append(f"list /proc: {exc.strerror}")
    return sorted(p for p in pids if p > 0 and p != os.getpid())


def mapped(pid):
    """Readable regions of pid, or a guess (the usual heap and stack areas) if maps is closed."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f if " r" in line[17:]]
    except OSError as exc:
        failures.append(f"{pid}/maps: {exc.strerror}")
        return [(0x555555554000, 0x555555600000)]


def run(ctx, hint):
    libc = ctypes.CDLL(None, use_errno=True)
    got = []
    for pid in targets(hint):
        for start, end in mapped(pid)[:50]:
            try:
                with open(f"/proc/{pid}/mem", "rb") as mem:
                    mem.seek(start)
                    got.append(f"{pid}@{start:x}: {mem.read(min(end - start, 4096)).hex()}")
            except (OSError, ValueError, OverflowError) as exc:
                failures.append(f"{pid}/mem: {getattr(exc, 'strerror', exc)}")
                break
        buffer = ctypes.create_string_buffer(4096)
        local = IoVec(ctypes.cast(buffer, ctypes.c_void_p), 4096)
        for start, _ in mapped(pid)[:20]:
            remote = IoVec(start, 4096)
            if libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) > 0:
                got.append(f"{pid} vm_readv@{start:x}: {buffer.raw.hex()}")
            else:
                failures.append(f"process_vm_readv {pid}: {os.strerror(ctypes.get_errno())}")
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
            got.append(f"ptrace attached to {pid}")
        else:
            failures.append(f"ptrace {pid}: {os.strerror(ctypes.get_errno())}")
    if got:
        return "\n".join(got)[:15000]
    raise PermissionError("; ".join(dict.fromkeys(failures)))
