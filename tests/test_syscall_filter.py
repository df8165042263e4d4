"""The seccomp filter and the per-job IPC namespace of template workers (docs/containment.md).

Templates run through the real enclave path (an in-process `Enclave`, its fork server and
confined workers). `hostile-syscalls` asks for each refused syscall with harmless arguments:
unfiltered, most fail with another errno (EINVAL, EFAULT, EBADF...) or succeed, so EPERM here is
the filter's answer. A second check runs the same attempts in a process that has every capability
(as root) and only the filter, so that a refusal cannot come from a missing capability instead.
"""

from __future__ import annotations

import ctypes
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from coprocessor_enclave import sandbox
from coprocessor_enclave.attestation import DevBackend
from coprocessor_enclave.enclave import Enclave, EnclaveConfig, SignedResult
from coprocessor_enclave.errors import EnclaveError
from coprocessor_enclave.protocol import Request, Status
from coprocessor_enclave.template import load_templates

from .conftest import TEST_TEMPLATES

TEMPLATE = "hostile-syscalls"
PROBE = TEST_TEMPLATES / TEMPLATE / "main.py"
PROBE_GLOBALS = runpy.run_path(str(PROBE))  # its syscall numbers, IPC key and queue name

NAMESPACE_FLAGS = [
    "CLONE_NEWNS",
    "CLONE_NEWCGROUP",
    "CLONE_NEWUTS",
    "CLONE_NEWIPC",
    "CLONE_NEWUSER",
    "CLONE_NEWPID",
    "CLONE_NEWNET",
    "CLONE_NEWTIME",
]
FAMILIES = ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_ALG", "AF_VSOCK"]
# What a template must be refused, as its attempt is named in hostile-syscalls, and the errno it must get.
REFUSED: dict[str, str] = {
    **{
        name: "EPERM"
        for name in [
            "setns",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "add_key",
            "keyctl",
            "request_key",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "sethostname",
            "setdomainname",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "reboot",
            "swapon",
            "swapoff",
            "acct",
            "quotactl",
            "name_to_handle_at",
            "open_by_handle_at",
            "lookup_dcookie",
            "personality(PER_LINUX32)",
            "flock",
            "inotify_init",
            "inotify_init1",
            "fanotify_init",
        ]
    },
    **{
        f"fcntl({command})": "EPERM"
        for command in [
            "F_GETLK",
            "F_SETLK",
            "F_SETLKW",
            "F_OFD_GETLK",
            "F_OFD_SETLK",
            "F_OFD_SETLKW",
            "F_SETLEASE",
            "F_GETLEASE",
            "F_NOTIFY",
        ]
    },
    **{f"{call}({flag})": "EPERM" for flag in NAMESPACE_FLAGS for call in ("unshare", "clone")},
    **{f"{call}({family})": "EPERM" for family in FAMILIES for call in ("socket", "socketpair")},
    "clone3": "ENOSYS",  # so that glibc falls back to clone, whose flags the filter can see
}


def run_template(enclave: Enclave, mode: str) -> SignedResult:
    """Runs hostile-syscalls in `mode` for a made-up request."""
    template = next(t for t in enclave.templates.values() if t.name == TEMPLATE)
    data = encode(["string"], [mode])
    request = Request(os.urandom(32), "0x" + "44" * 20, template.template_id, keccak(data), 200_000, 0, 2**40, 1, b"\0" * 32)
    return enclave.run(request, data)


def answer(result: SignedResult) -> str:
    assert result.status == Status.OK, (result.status.name, result.output)
    return str(decode(["string"], result.output)[0])


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    """An Enclave in this process, as `coprocessor-enclave serve` builds it, with hostile-syscalls only."""
    templates = {tid: t for tid, t in load_templates([TEST_TEMPLATES]).items() if t.name == TEMPLATE}
    zero = "0x" + "00" * 19
    service = Enclave(EnclaveConfig(31337, zero + "01", zero + "02", zero + "03"), templates, DevBackend(tmp_path_factory.mktemp("pki")))
    try:
        yield service
    finally:
        service.close()


@pytest.fixture(scope="module")
def attempts(enclave: Enclave) -> dict[str, str]:
    """What each attempt of a template got: "ok" or an errno's name."""
    return dict(json.loads(answer(run_template(enclave, "attempts"))))


# ------------------------------------------------------------------------------- the filter


@pytest.mark.parametrize("attempt", REFUSED)
def test_template_isRefused(attempts: dict[str, str], attempt: str) -> None:
    assert attempts[attempt] == REFUSED[attempt]


def test_template_triesNothingElse(attempts: dict[str, str]) -> None:
    assert set(attempts) == set(REFUSED)  # a new attempt in the template needs its expectation here


def test_template_stillHasWhatOrdinaryCodeNeeds(enclave: Enclave) -> None:
    allowed = json.loads(answer(run_template(enclave, "allowed")))
    assert allowed == {
        name: "ok"
        for name in ("thread", "fork", "socket(AF_UNIX)", "socketpair(AF_UNIX)", "personality(PER_LINUX)", "unshare(CLONE_FILES)")
    }


@pytest.mark.parametrize("abi", ["i386", "x32"])
def test_template_syscallOfAnotherArchitecture_killsTheWorker(enclave: Enclave, abi: str) -> None:
    result = run_template(enclave, abi)
    assert result.status == Status.TEMPLATE_ERROR and result.output.startswith(b"worker died without a result"), result.output


def test_templateSyscallNumbers_areLibseccompsForThisMachine() -> None:
    import pyseccomp

    numbers = PROBE_GLOBALS["SYSCALLS"]
    assert {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in numbers} == numbers


# Installs only the filter (no Landlock, uid change or capability drop), holding every capability (as root,
# or else in a user namespace of its own), then runs a probe mode.
_FILTER_ONLY = """
import json, os, runpy, sys
from coprocessor_enclave import sandbox
probe = runpy.run_path(sys.argv[1])
program = sandbox._bpf_program(sandbox._syscall_filter())
if os.geteuid() != 0:
    sandbox._private_user_namespace()  # every capability, inside a namespace of our own
sandbox._prctl(sandbox.PR_SET_NO_NEW_PRIVS, 1)
sandbox._install_filter(program)
print(json.dumps(probe[sys.argv[2]]()), flush=True)
"""


def filter_only(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _FILTER_ONLY, str(PROBE), mode], capture_output=True, text=True, timeout=30)


def test_filter_refusesEvenAProcessWithEveryCapability() -> None:
    done = filter_only("attempts")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert {name: got[name] for name in REFUSED if got[name] != REFUSED[name]} == {}


@pytest.mark.parametrize("abi", ["i386", "x32"])
def test_filter_killsTheProcessOnASyscallOfAnotherArchitecture(abi: str) -> None:
    done = filter_only(abi)
    assert done.returncode == -signal.SIGSYS, (done.returncode, done.stdout, done.stderr)


# ------------------------------------------------------------------------ per-job IPC namespace

_IPC_RMID = 0


@pytest.fixture
def no_leftover_ipc() -> Iterator[None]:
    """Removes the template's segment and queue from this process's IPC namespace, before and after.

    Only a broken per-job namespace leaves them here (as root, the host's namespace).
    """

    def remove() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        shmid = libc.shmget(PROBE_GLOBALS["SHM_KEY"], 0, 0)
        if shmid >= 0:
            libc.shmctl(shmid, _IPC_RMID, None)
        libc.mq_unlink(PROBE_GLOBALS["MQ_NAME"])

    remove()
    yield
    remove()


@pytest.mark.usefixtures("no_leftover_ipc")
@pytest.mark.parametrize("kind", ["shm", "mq"])
def test_ipcObjectOfOneJob_isGoneForTheNext(enclave: Enclave, kind: str) -> None:
    assert answer(run_template(enclave, f"{kind}-create")) == "created"
    assert answer(run_template(enclave, f"{kind}-read")) == "ENOENT"


@pytest.mark.usefixtures("no_leftover_ipc")
def test_sharedMemorySegment_isInvisibleToAConcurrentJob(enclave: Enclave) -> None:
    with ThreadPoolExecutor(max_workers=1) as runner:
        holder = runner.submit(run_template, enclave, "shm-hold")  # creates its segment, then holds it 0.7 s
        time.sleep(0.3)
        seen = answer(run_template(enclave, "shm-read"))
        assert answer(holder.result()) == "created"
    assert seen == "ENOENT"


# --------------------------------------------------------------------------- refusing to start


def _no_binding(patch: pytest.MonkeyPatch) -> None:
    patch.setitem(sys.modules, "pyseccomp", None)  # import fails


def _no_library(patch: pytest.MonkeyPatch) -> None:
    import ctypes.util

    find_library = ctypes.util.find_library
    patch.delitem(sys.modules, "pyseccomp")  # imported afresh, it looks for libseccomp.so again
    patch.setattr(ctypes.util, "find_library", lambda name: None if name == "seccomp" else find_library(name))


def _old_library(patch: pytest.MonkeyPatch) -> None:
    import pyseccomp

    resolve = pyseccomp.resolve_syscall
    patch.setattr(pyseccomp, "resolve_syscall", lambda arch, name: -1 if name == "mount_setattr" else resolve(arch, name))


def _old_kernel(patch: pytest.MonkeyPatch) -> None:
    patch.setattr("pyseccomp.get_api", lambda: 2)  # no kill-process action: before Linux 4.14


_BLOCKERS = {
    "no binding": _no_binding,
    "no libseccomp.so": _no_library,
    "a syscall it does not know": _old_library,
    "an old kernel": _old_kernel,
}


@pytest.mark.parametrize("missing", _BLOCKERS)
def test_protectEnclave_refusesToStartWithoutLibseccomp(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    _BLOCKERS[missing](monkeypatch)
    with pytest.raises(sandbox.SandboxError, match="libseccomp") as raised:
        sandbox.protect_enclave()
    assert isinstance(raised.value, EnclaveError) and isinstance(raised.value, RuntimeError)
    assert "docs/containment.md" in str(raised.value) and "\n" not in str(raised.value)


# prepare_server unshares namespaces: it runs in a process of its own.
_PREPARE = """
import sys
{before_import}
from coprocessor_enclave import sandbox
{after_import}
try:
    sandbox.prepare_server()
except sandbox.SandboxError as exc:
    print(f"refused: {{exc}}")
else:
    print("prepared")
"""


def prepare_server(before_import: str = "", after_import: str = "") -> subprocess.CompletedProcess[str]:
    script = _PREPARE.format(before_import=before_import, after_import=after_import)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)


def test_prepareServer_refusesWithoutLibseccomp() -> None:
    done = prepare_server(before_import='sys.modules["pyseccomp"] = None')
    assert done.stdout.startswith("refused: template workers need libseccomp"), (done.stdout, done.stderr)


# Sabotage in the fork server, and what its self-test must then report.
_SABOTAGE = {
    "a filter that refuses too little": ("sandbox.PER_LINUX = sandbox.PER_LINUX32", "the syscall filter is not in force"),
    "a filter the kernel refuses": ("sandbox.SECCOMP_MODE_FILTER = 99", "cannot confine a worker: OSError(22, 'prctl(PR_SET_SECCOMP)"),
}


@pytest.mark.parametrize("sabotage", _SABOTAGE)
def test_prepareServer_selfTestRefusesWhereTheFilterIsNotInForce(sabotage: str) -> None:
    line, reported = _SABOTAGE[sabotage]
    done = prepare_server(after_import=line)
    assert done.stdout.startswith("refused: a confined test child failed"), (done.stdout, done.stderr)
    assert reported in done.stderr


def test_prepareServer_preparesWhereEverythingIsThere() -> None:
    assert prepare_server().stdout == "prepared\n"


def test_inChild_answersWhatTheWorkReturned_raisesWhatItRaisedOrThatItDied() -> None:
    """The helper that keeps pyseccomp's and pycryptodome's imports out of the fork server and zygotes."""
    assert sandbox.in_child(lambda: b"filter" * 50_000) == b"filter" * 50_000  # beyond a pipe's buffer
    assert "colorsys" not in sys.modules
    assert sandbox.in_child(lambda: __import__("colorsys").__name__.encode()) == b"colorsys"
    assert "colorsys" not in sys.modules, "what the work imported stayed in its child"

    def refuse() -> bytes:
        raise ValueError("the bundle does not hash to its id")

    with pytest.raises(sandbox.SandboxError, match="ValueError: the bundle does not hash to its id"):
        sandbox.in_child(refuse)
    with pytest.raises(sandbox.SandboxError, match="died without a whole answer"):
        sandbox.in_child(lambda: os.kill(os.getpid(), signal.SIGKILL) or b"never")
