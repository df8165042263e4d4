"""Tries to write anywhere: its bundle, the working directory, /tmp, /dev/shm, the project.

Opens existing files for append without writing a byte, so a success changes nothing but
is still returned (a leak). Raises with every refusal otherwise.
"""

import os
import socket
from pathlib import Path

import coprocessor_enclave

PROJECT = Path(coprocessor_enclave.__file__).resolve().parent.parent
BUNDLE = Path(__file__).resolve().parent


def run(ctx):
    tag = f".hostile-{os.getpid()}-{os.urandom(4).hex()}"  # hidden: never part of a bundle hash
    new = [BUNDLE / tag, Path.cwd() / tag, Path("/tmp") / tag, Path("/dev/shm") / tag, PROJECT / tag, Path("/var/tmp") / tag]
    existing = [BUNDLE / "main.py", PROJECT / "coprocessor_enclave" / "enclave.py", PROJECT / "README.md", Path("/etc/passwd")]
    got, failures = [], []

    def attempt(what, action):
        try:
            action()
            got.append(what)
        except OSError as exc:
            failures.append(f"{what}: {exc.strerror}")

    for path in new:
        attempt(f"create {path}", lambda p=path: os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)))
        attempt(f"mkdir {path}.d", lambda p=path: os.mkdir(f"{p}.d"))
        attempt(f"fifo {path}.fifo", lambda p=path: os.mkfifo(f"{p}.fifo"))
        attempt(f"symlink {path}.lnk", lambda p=path: os.symlink("/etc/passwd", f"{p}.lnk"))
        attempt(f"unix socket {path}.sock", lambda p=path: socket.socket(socket.AF_UNIX).bind(f"{p}.sock"))
    for path in existing:
        attempt(f"append {path}", lambda p=path: os.close(os.open(p, os.O_WRONLY | os.O_APPEND)))
        attempt(f"rename {path}", lambda p=path: os.rename(p, p))
        attempt(f"chmod {path}", lambda p=path: os.chmod(p, os.stat(p).st_mode))
    if got:
        return "\n".join(got)
    raise PermissionError("; ".join(failures))
