"""Reports the sandbox it runs in as JSON: ids, namespaces, limits, what it can reach."""

import ctypes
import fcntl
import json
import os
import resource
import socket
import struct

import coprocessor_enclave

SIOCGIFFLAGS, IFF_UP = 0x8913, 0x1
PR_GET_DUMPABLE, PR_GET_NO_NEW_PRIVS = 3, 39


def error(action):
    try:
        action()
        return None
    except OSError as exc:
        return exc.strerror or str(exc)


def outcome(action):
    """What `action` returns, or the error it raised (the syscall filter refuses every socket but AF_UNIX)."""
    try:
        return action()
    except OSError as exc:
        return exc.strerror or str(exc)


def loopback_flags():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0)))[1]


def open_source():
    """This module's source, as the worker's importer loaded it (from memory, not a file)."""
    return __loader__._files["main.py"]


def run(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    limits = {n: resource.getrlimit(getattr(resource, n)) for n in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE")}
    return json.dumps({
        "uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(),
        "pid": os.getpid(), "ppid": os.getppid(),
        "interfaces": outcome(lambda: [name for _, name in socket.if_nameindex()]),
        "loopback_up": outcome(lambda: bool(loopback_flags() & IFF_UP)),
        "limits": limits,
        "no_new_privs": libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
        "dumpable": libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0),
        "environ": dict(os.environ),
        "open_fds": [fd for fd in range(1024) if error(lambda fd=fd: os.fstat(fd)) is None],
        "write_package": error(lambda: open(os.path.join(os.path.dirname(coprocessor_enclave.__file__), ".probe-write"), "x").close()),
        "write_tmp": error(lambda: open(f"/tmp/probe-write-{os.urandom(4).hex()}", "x").close()),
        "read_etc_passwd": error(lambda: open("/etc/passwd").close()),
        "read_bundle_folder": error(lambda: open(__file__).close()),
        "own_files_in_memory": ctx.file("main.py") == open_source(),
        "list_proc": error(lambda: os.listdir("/proc")),
        "tcp_connect": error(lambda: socket.create_connection(("127.0.0.1", 9), timeout=0.2).close()),
        "udp_send": error(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("10.0.0.1", 9))),
        "stdlib_import": error(lambda: __import__("statistics")),
        "cwd": os.getcwd(),
    })
