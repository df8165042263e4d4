"""Confinement of template workers, and hardening of the enclave process that holds the key (Linux).

Three entry points, in the order a job meets them:

- `protect_enclave()`: once, in the key holder. Not dumpable; refuses to start where workers
  could not be confined (no Landlock, no libseccomp).
- `prepare_server()`: once, in the fork server, before any job. Builds the seccomp filter; a
  network namespace with nothing in it; as root, a mount namespace in which the interpreter is
  reachable by the unprivileged worker uid; then a self-test of `confine` in a throw-away child.
- `fork_job()` and `confine()`: per job. The child is init of a fresh PID namespace (as root),
  then gets its own IPC namespace, rlimits, no_new_privs, a Landlock domain, the unprivileged
  uid, no capabilities and the seccomp filter before any template code runs. A spare worker
  (forked before its job, `forkserver.py`) takes all but the uid and capabilities, `confine_early()`,
  ahead of the job, and drops those, `confine_late()`, once the job is there; `confine()` is both.

docs/containment.md says what each layer stops and what it does not.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pwd
import resource
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import EnclaveError

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (CLONE_NEWTIME, CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET)
AF_UNIX = 1
PER_LINUX, PER_LINUX32 = 0, 0x0008
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_GET_SECCOMP, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 21, 22, 2
PR_SET_NO_NEW_PRIVS = 38
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
_SYS_SETNS = 308
_SYS_CAPSET = 126
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_READ_FILE, _FS_READ_DIR = 1 << 2, 1 << 3
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

NOBODY = 65534
OPEN_FILES = 64
# Counts every task (process or thread) of the worker uid, across all workers running at once.
PROCESSES = 32
# Without root the worker shares the enclave's uid: only Landlock's signal scope (ABI 6) keeps it
# from signalling the enclave, so we insist on it there. As root, uid and PID namespace do that.
_MIN_ABI_AS_ROOT = 1
_MIN_ABI_UNPRIVILEGED = 6


# Refused to templates with EPERM by the seccomp filter (besides namespaces, sockets, clone3 and
# personality, see `_syscall_filter`). None is needed by ordinary Python; each is kernel surface
# a template could use to escape, to reach beyond its job, or to change the host.
REFUSED_SYSCALLS = (
    "setns",  # joining another namespace
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",  # file and socket operations this filter never sees
    "add_key",
    "keyctl",
    "request_key",  # keyrings are per uid, so shared by every job: a channel, and kernel surface
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",  # other processes' memory
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
    "mount_setattr",  # the new mount API
    "bpf",
    "perf_event_open",
    "userfaultfd",  # frequent in kernel exploits
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
    "quotactl",  # host administration
    "name_to_handle_at",
    "open_by_handle_at",
    "lookup_dcookie",  # by handle: around path-based checks
    # Locks and change notification on files every job can read: covert channels between concurrent jobs.
    "flock",
    "inotify_init",
    "inotify_init1",
    "fanotify_init",
)
# fcntl commands refused for the same reason: record locks (classic and open-file-description),
# leases and directory notification. F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK,
# F_OFD_SETLKW, F_SETLEASE, F_GETLEASE, F_NOTIFY.
REFUSED_FCNTL = (5, 6, 7, 36, 37, 38, 1024, 1025, 1026)


class SandboxError(EnclaveError):
    """A confinement step is not possible here: templates must not run."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    """`struct sock_fprog`: a classic BPF program, as PR_SET_SECCOMP takes it."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel struct is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@dataclass
class _Server:
    """What `prepare_server` decided, used by every job."""

    worker_ids: tuple[int, int] | None  # (uid, gid) a worker drops to; None without root
    read_paths: list[str]
    pid_namespace: int | None  # fd of the fork server's own PID namespace, to return to after each fork
    syscall_filter: _SockFprog  # the seccomp BPF program, built once here, installed by every job
    landlock_ruleset: int  # fd of the Landlock ruleset, built once here, enforced by every job


_server: _Server | None = None


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def _syscall(number: int, *args: int | None, what: str) -> int:
    return _check(_libc.syscall(ctypes.c_long(number), *(ctypes.c_void_p(a) if a is None else ctypes.c_long(a) for a in args)), what)


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda s: None if s is None else s.encode()  # noqa: E731 - local helper
    result = _libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data))
    _check(result, f"mount {source} on {target}")


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers; 0 when Landlock is missing or disabled."""
    try:
        return _syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION, what="landlock")
    except OSError:
        return 0


def _syscall_filter() -> bytes:
    """The seccomp filter every worker installs last: allow by default, refuse what templates never need.

    Built with libseccomp through pyseccomp and exported as the BPF program libseccomp would load
    (`_install_filter` installs it: a quarter of the cost of libseccomp regenerating it per job).
    Raises `SandboxError` where either is missing or this libseccomp cannot express a rule:
    templates must not run unfiltered.
    """
    try:
        import pyseccomp as seccomp  # loads libseccomp.so.2 on import
    except (ImportError, OSError, RuntimeError, AttributeError) as exc:  # no binding; no library; one too old
        raise SandboxError(
            f"template workers need libseccomp (libseccomp.so.2 and the pyseccomp binding): {exc}; "
            "refusing to run templates without a syscall filter (docs/containment.md)"
        ) from exc
    refuse, nosys = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
    try:
        # Level 3: the kernel has seccomp filters and their kill-process action (Linux 4.14).
        if (api := seccomp.get_api()) < 3:
            raise OSError(errno.ENOTSUP, f"the kernel's seccomp support is missing or too old (libseccomp API level {api} < 3)")
        if seccomp.system_arch() in (seccomp.Arch.S390, seccomp.Arch.S390X):
            raise OSError(errno.ENOTSUP, "on s390 clone's flags are its second argument, not the first the rules below read")
        # Allow by default: templates are ordinary Python. Only the native architecture is in the
        # filter, so an i386 (int 0x80) or x32 syscall meets the bad-architecture action: kill.
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)

        def add(action: int, name: str, *args: object) -> None:
            number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
            if number < 0:  # an unknown name would otherwise become a rule for nothing
                raise OSError(errno.EINVAL, f"libseccomp does not know the syscall {name}")
            rules.add_rule(action, number, *args)

        for name in REFUSED_SYSCALLS:
            add(refuse, name)
        # Namespaces: the flags are the first argument of both (refused above where they are not).
        # libseccomp cannot test "any of these bits" at once, so one rule per flag. In clone()
        # CLONE_NEWTIME's bit lies in the exit-signal byte, where no valid signal sets it.
        for flag in NAMESPACE_FLAGS:
            for name in ("unshare", "clone"):
                add(refuse, name, seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        # clone3 passes its flags in memory, which seccomp cannot read. ENOSYS, not EPERM, makes
        # glibc fall back to clone (threads, fork, posix_spawn), which the rules above see.
        add(nosys, "clone3")
        # No network exists for a worker: only UNIX sockets (socketpair) are of any use.
        for name in ("socket", "socketpair"):
            add(refuse, name, seccomp.Arg(0, seccomp.NE, AF_UNIX))
        # Other personas change the address-space layout (ADDR_NO_RANDOMIZE) or emulate other
        # systems. The query form (0xffffffff) is refused too: libseccomp allows one comparison per
        # argument, and nothing a template runs needs it.
        add(refuse, "personality", seccomp.Arg(0, seccomp.NE, PER_LINUX))
        for command in REFUSED_FCNTL:
            add(refuse, "fcntl", seccomp.Arg(1, seccomp.EQ, command))
        with os.fdopen(os.memfd_create("seccomp-filter", os.MFD_CLOEXEC), "w+b") as exported:
            rules.export_bpf(exported)
            exported.seek(0)
            return exported.read()
    except (OSError, NotImplementedError) as exc:  # NotImplementedError: a libseccomp before 2.4
        raise SandboxError(f"cannot build the syscall filter for template workers: {exc} (docs/containment.md)") from exc


def _bpf_program(program: bytes) -> _SockFprog:
    """The exported filter as PR_SET_SECCOMP takes it; made once in the fork server, so a job only installs it."""
    return _SockFprog(len(program) // 8, program)  # 8 bytes per `struct sock_filter`; the struct keeps `program` alive


def _install_filter(program: _SockFprog) -> None:
    """Installs a seccomp BPF program on this thread (and what it forks or starts); needs no_new_privs."""
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "prctl(PR_SET_SECCOMP)")


def protect_enclave() -> None:
    """Makes the key holder non-dumpable and refuses to start where workers cannot be confined."""
    # Not dumpable: a process of the same uid can no longer ptrace us or read /proc/<pid>/{mem,environ,maps}.
    _prctl(PR_SET_DUMPABLE, 0)
    abi = landlock_abi()
    needed = _MIN_ABI_AS_ROOT if os.geteuid() == 0 else _MIN_ABI_UNPRIVILEGED
    if abi < needed:
        raise SandboxError(
            f"template workers need Landlock ABI >= {needed} (this kernel offers {abi or 'none'}); "
            "refusing to run templates unconfined (docs/containment.md)"
        )
    if os.geteuid() != 0 and Path("/proc/sys/user/max_user_namespaces").read_text().strip() == "0":
        raise SandboxError("template workers need user namespaces when the enclave does not run as root")
    _syscall_filter()  # libseccomp is here and can express every rule (the fork server's self-test loads it)


def _read_paths() -> list[str]:
    """What a worker may read: the interpreter, the virtualenv, this package and system libraries."""
    package = Path(__file__).resolve().parent  # the measured package; the node's is not readable
    candidates = [sys.base_prefix, sys.prefix, str(package), "/usr/lib", "/usr/lib64", "/lib", "/lib64"]
    # Installed packages wherever they are, but never a plain directory on sys.path (a .pth may add a
    # project root, with its state and logs); the package itself is granted above.
    candidates += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    paths: list[str] = []
    for real in sorted({os.path.realpath(p) for p in candidates if os.path.isdir(p)}):
        if not any(real == kept or real.startswith(kept + "/") for kept in paths):
            paths.append(real)
    return paths


def _first_unsearchable(path: str) -> str | None:
    """The outermost ancestor of `path` that others may not traverse (mode without o+x), if any."""
    parts = Path(path).parts
    for i in range(2, len(parts)):
        ancestor = str(Path(*parts[:i]))
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def _expose(paths: list[str]) -> None:
    """As root, in a mount namespace of our own: puts paths behind a private directory within reach.

    The interpreter may live under a home directory the worker uid cannot traverse (pyenv in
    /root). A read-only tmpfs over that directory, with only the needed paths bound back into
    it, fixes that and hides the rest of the directory from workers.
    """
    blocked: dict[str, list[str]] = {}
    for path in paths:
        ancestor = _first_unsearchable(path)
        if ancestor is not None:
            blocked.setdefault(ancestor, []).append(path)
    _unshare(CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount here leaks back to the host
    for ancestor, inside in blocked.items():
        sources = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in inside}  # before the tmpfs hides them
        try:
            _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k")
            for path, fd in sources.items():
                os.makedirs(path, mode=0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
                _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
            _mount(None, ancestor, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755")
        finally:
            for fd in sources.values():
                os.close(fd)


def worker_uid_shared() -> bool:
    """Whether workers keep the fork server's uid (no root): `prepare_server` decided it."""
    assert _server is not None, "prepare_server() first"
    return _server.worker_ids is None


def private_user_namespace() -> None:
    """A user namespace of our own that maps only our own ids (see `_private_user_namespace`)."""
    _private_user_namespace()


def _private_user_namespace() -> None:
    """Without root: a user namespace that maps only our own ids, so the namespaces below are allowed."""
    uid, gid = os.geteuid(), os.getegid()
    _unshare(CLONE_NEWUSER)
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


def prepare_server() -> None:
    """Once in the fork server, before any job: namespaces every worker shares, then a self-test."""
    global _server
    # First: without libseccomp nothing else is worth setting up. Built in a child: pyseccomp's imports
    # (threading, random) would otherwise be in every zygote and cost each job's fork page faults.
    syscall_filter = _bpf_program(in_child(_syscall_filter))
    root = os.geteuid() == 0
    if not root:
        _private_user_namespace()
    # One empty network namespace for the fork server and all its children: no interface but a
    # loopback that stays down. Made once, as creating one per job costs more than the job start.
    _unshare(CLONE_NEWNET)
    paths = _read_paths()
    if root:
        _expose(paths)  # template bundles need no exposure: jobs run them from memory (bundles.py)
    # Setting the PID namespace per job needs setns back to ours, which only root may do.
    pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC) if root else None
    _server = _Server(_nobody() if root else None, paths, pid_namespace, syscall_filter, _landlock_ruleset(paths))
    _self_test()


def in_child(work: Callable[[], bytes]) -> bytes:
    """What `work()` returns, computed in a forked child that exits after it: for work whose imports
    must not stay in this process, where every job's fork would copy what they left. Raises
    `SandboxError` with its message if it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:  # whatever happens, this child never returns into the caller's code
            os.close(read)
            try:
                answer = b"\0" + work()
            except BaseException as exc:  # the message, for the parent to raise
                answer = b"\1" + (str(exc) if isinstance(exc, SandboxError) else f"{type(exc).__name__}: {exc}").encode(errors="replace")
            with os.fdopen(write, "wb") as pipe:
                pipe.write(len(answer).to_bytes(8, "big") + answer)  # framed: a child killed mid-write is told apart
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        framed = pipe.read()
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by the kernel already (SIGCHLD ignored)
        pass
    answer = framed[8:]
    if len(framed) < 9 or int.from_bytes(framed[:8], "big") != len(answer):
        raise SandboxError("a helper child died without a whole answer")
    if answer[:1] != b"\0":
        raise SandboxError(answer[1:].decode(errors="replace"))
    return answer[1:]


def _self_test() -> None:
    """Confines a throw-away child; a failure stops the fork server instead of failing every job."""
    pid = fork_job()
    if pid == 0:
        code = 1
        try:
            confine(64 * 1024 * 1024, 1, keep=(0, 1, 2))
            if _filter_in_force():
                code = 0
            else:
                print("sandbox: the syscall filter is not in force after installing it", file=sys.stderr, flush=True)
        except Exception as exc:  # the reason, for the enclave log: os._exit below would drop the traceback
            print(f"sandbox: cannot confine a worker: {exc!r}", file=sys.stderr, flush=True)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SandboxError("a confined test child failed; see the error above")


def _filter_in_force() -> bool:
    """In a confined child: whether our seccomp filter refuses what it should.

    Another persona is refused by nothing else (Docker's default profile allows PER_LINUX32).
    """
    in_filter_mode = _libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2
    return in_filter_mode and _libc.personality(PER_LINUX32) == -1 and ctypes.get_errno() == errno.EPERM


def fork_job() -> int:
    """`os.fork()`; as root the child is init of a fresh PID namespace, so its whole tree dies with it."""
    assert _server is not None, "prepare_server() first"
    if _server.pid_namespace is None:
        return os.fork()
    _unshare(CLONE_NEWPID)  # applies to our next child only ...
    pid = -1
    try:
        pid = os.fork()
    finally:
        if pid != 0:  # ... so the fork server goes back to its own namespace for the next job
            _syscall(_SYS_SETNS, _server.pid_namespace, CLONE_NEWPID, what="setns(pid)")
    return pid


def _set_limits(memory_bytes: int, cpu_seconds: int) -> None:
    for limit, value in (
        (resource.RLIMIT_AS, memory_bytes),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, OPEN_FILES),
        (resource.RLIMIT_NPROC, PROCESSES),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))  # hard = soft: without privileges they only go down
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # soft: SIGXCPU, hard: SIGKILL


def _landlock_ruleset(read_paths: list[str]) -> int:
    """A Landlock ruleset: read-only `read_paths`, no other file access, no TCP, no signals or abstract sockets outside.

    Built once in the fork server; each job enforces it with `landlock_restrict_self`, which makes a
    domain of its own from it (a ruleset can be enforced any number of times).
    """
    abi = landlock_abi()
    fs = (1 << 13) - 1  # ABI 1: execute, write, read, readdir, remove and make-anything
    fs |= (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)  # refer, truncate, ioctl_dev
    attr = _RulesetAttr(
        handled_access_fs=fs,
        handled_access_net=_NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0,
        scoped=_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0,
    )
    ruleset = _check(
        _libc.syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0),
        "landlock_create_ruleset",
    )
    try:
        for path in read_paths:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                # Read only: no execute (no new programs), no write, no make or remove anything.
                rule = _PathBeneathAttr(allowed_access=_FS_READ_FILE | _FS_READ_DIR, parent_fd=fd)
                result = _libc.syscall(ctypes.c_long(_SYS_LANDLOCK_ADD_RULE), ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0)
                _check(result, f"landlock_add_rule {path}")
            finally:
                os.close(fd)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset


# capset's arguments, made once: a ctypes array type costs about 0.15 ms to create in a fresh child.
_CAP_HEADER = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
_CAP_DATA = (ctypes.c_uint32 * 6)()  # every set empty


def _drop_capabilities() -> None:
    """Empties every capability set (in a user namespace we would otherwise hold them all)."""
    _check(_libc.syscall(ctypes.c_long(_SYS_CAPSET), _CAP_HEADER, _CAP_DATA), "capset")


def confine(memory_bytes: int, cpu_seconds: int, keep: tuple[int, ...]) -> None:
    """In the forked child, before template code: every per-job layer, or an exception."""
    confine_early(memory_bytes, cpu_seconds, keep)
    confine_late()


def confine_early(memory_bytes: int, cpu_seconds: int, keep: tuple[int, ...]) -> None:
    """The per-job layers a spare worker takes before its job arrives: descriptors, IPC namespace,
    rlimits, no_new_privs, not dumpable, Landlock, the seccomp filter.

    The process keeps its uid and capabilities until `confine_late`: as root, an idle spare does not
    count against the worker uid's `RLIMIT_NPROC`. No template code may run before `confine_late`.
    """
    assert _server is not None, "prepare_server() first"
    keep = tuple(sorted({*keep, _server.landlock_ruleset}))
    previous = -1
    for fd in (*keep, 1 << 20):  # closes every inherited descriptor but `keep` (the namespace fd among them)
        if fd > previous + 1:  # never an empty range: in CPython 3.11 closerange(0, 0) closes every descriptor
            os.closerange(previous + 1, fd)
        previous = fd
    # Its own IPC namespace: SysV objects (which Landlock does not cover) and POSIX message queues
    # (made before Landlock refuses to open them) die with the job and are invisible to concurrent
    # ones. Needs the privileges dropped by `confine_late`.
    _unshare(CLONE_NEWIPC)
    _set_limits(memory_bytes, cpu_seconds)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)  # needed for Landlock without privileges; no setuid binary can give any back
    _prctl(PR_SET_DUMPABLE, 0)  # other processes of the same uid cannot read this job's memory (root: implied by setuid)
    # No template folder: a job's code and data come from memory. The ruleset was built once.
    _check(_libc.syscall(ctypes.c_long(_SYS_LANDLOCK_RESTRICT_SELF), _server.landlock_ruleset, 0), "landlock_restrict_self")
    os.close(_server.landlock_ruleset)
    os.chdir("/")  # nothing there is readable: relative paths lead nowhere
    # After the IPC namespace, which the filter refuses (unshare). Nothing below needs a refused call:
    # setgroups, setresgid, setresuid and capset are allowed.
    _install_filter(_server.syscall_filter)


def confine_late() -> None:
    """The rest of a job's confinement, after `confine_early`: the unprivileged uid, no capabilities."""
    assert _server is not None, "prepare_server() first"
    if _server.worker_ids is not None:
        uid, gid = _server.worker_ids
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # also clears every capability
    _drop_capabilities()


def die_with_parent(parent: int) -> None:
    """Makes the kernel SIGKILL this process when its parent (pid `parent`) exits; exits now if it already has."""
    _prctl(PR_SET_PDEATHSIG, 9)
    if os.getppid() != parent:  # the parent died before the call above took effect
        os._exit(1)


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return NOBODY, NOBODY
