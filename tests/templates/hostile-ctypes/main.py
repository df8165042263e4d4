"""Uses ctypes to ask the kernel directly: become root, join the enclave's namespaces, trace it.

Returns what worked (a leak); raises with every refusal otherwise.
"""

import ctypes
import os

PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
PR_SET_DUMPABLE, PR_CAP_AMBIENT = 4, 47


def run(ctx, hint):
    libc = ctypes.CDLL(None, use_errno=True)
    got, failures = [], []

    def call(what, result, ok=lambda r: r == 0):
        if ok(result):
            got.append(what)
        else:
            failures.append(f"{what}: {os.strerror(ctypes.get_errno())}")

    call("setuid(0)", libc.setuid(0))
    call("setgid(0)", libc.setgid(0))
    call("setresuid(0,0,0)", libc.setresuid(0, 0, 0))
    for pid in sorted({hint, os.getppid(), 1} - {0, os.getpid()}):
        call(f"ptrace attach {pid}", libc.ptrace(PTRACE_ATTACH, pid, None, None))
        call(f"ptrace seize {pid}", libc.ptrace(PTRACE_SEIZE, pid, None, None))
        for ns in ("mnt", "net", "pid", "user"):
            try:
                fd = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY)
            except OSError as exc:
                failures.append(f"open {pid}/ns/{ns}: {exc.strerror}")
                continue
            call(f"setns {pid}/{ns}", libc.setns(fd, 0))
    call("mount tmpfs", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
    call("chroot /", libc.chroot(b"/"))
    if got:
        return "\n".join(got)
    raise PermissionError("; ".join(failures))
