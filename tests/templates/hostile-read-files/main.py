"""Reads files outside its own bundle.

Returns what it read (a leak); raises with every refusal otherwise. The project's package
(what `coprocessor` imports from) is readable on purpose and not tried.
"""

import os
from pathlib import Path

import coprocessor_enclave

PROJECT = Path(coprocessor_enclave.__file__).resolve().parent.parent


def run(ctx):
    candidates = [
        "/etc/shadow", "/etc/passwd", "/etc/hostname", "/etc/ssh/ssh_host_ed25519_key",
        "/root/.bash_history", "/root/.ssh/id_ed25519", os.path.expanduser("~/.profile"),
        PROJECT / "README.md", PROJECT / "pyproject.toml", PROJECT / ".coprocessor" / "deployment.json",
        PROJECT / ".coprocessor" / "enclave.log", PROJECT / ".coprocessor" / "enclave.token", PROJECT / "tests" / "conftest.py",
        PROJECT / ".git" / "config", PROJECT / "coprocessor" / "node.py",
        PROJECT / "tests" / "templates" / "spins" / "main.py", PROJECT / "templates" / "median-price" / "main.py",
        PROJECT / "tests" / "templates" / "hostile-read-files" / "main.py",  # its own folder: code runs from memory
        "/proc/1/cmdline", "/proc/self/environ", "/sys/class/net/lo/address", "/dev/mem", "/dev/urandom",
    ]
    got, failures = [], []
    for path in candidates:
        try:
            with open(path, "rb") as f:
                got.append(f"{path}: {f.read(2048)!r}")
        except OSError as exc:
            failures.append(f"{path}: {exc.strerror}")
    for folder in ("/", "/tmp", "/root", str(PROJECT), str(PROJECT / "templates"), str(PROJECT / "coprocessor")):
        try:
            got.append(f"{folder}: {sorted(os.listdir(folder))[:50]}")
        except OSError as exc:
            failures.append(f"list {folder}: {exc.strerror}")
    if got:
        return "\n".join(got)[:15000]
    raise PermissionError("; ".join(failures))
