"""Asks the kernel, through ctypes, for what a template never needs, and reports what it got.

`run(ctx, mode)`:

- "attempts": every syscall the filter refuses, with arguments that are invalid or harmless,
  so that nothing changes even unfiltered and as root. Most then fail with an errno other than
  EPERM (EINVAL, EFAULT, EBADF...) or succeed: EPERM and ENOSYS (clone3) are the filter's.
  Returns JSON {attempt: "ok" or the errno's name}.
- "allowed": what templates do need still works (threads, fork, UNIX sockets); same JSON.
- "shm-create", "shm-hold", "shm-read": a SysV segment under a fixed key, left for a later
  (or concurrent) job to find; "shm-read" returns "ENOENT" or what it found. "mq-create",
  "mq-read": the same with a POSIX message queue (Landlock lets it be made, not opened, so
  "EACCES" from "mq-read" means one exists).
- "i386", "x32": a syscall of another ABI; returns what it got, if the worker survives.

Syscall numbers are x86-64's.
"""

import ctypes
import errno
import json
import mmap
import os
import socket
import threading
import time

SYSCALLS = {
    "setns": 308, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "add_key": 248, "keyctl": 250, "request_key": 249,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "sethostname": 170, "setdomainname": 171, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176,
    "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "lookup_dcookie": 212,
    "personality": 135, "unshare": 272, "clone": 56, "clone3": 435, "socket": 41, "socketpair": 53,
    "flock": 73, "inotify_init": 253, "inotify_init1": 294, "fanotify_init": 300, "fcntl": 72,
}
# fcntl's lock, lease and notification commands: channels between jobs through files both can read.
FCNTL_COMMANDS = {
    "F_GETLK": 5, "F_SETLK": 6, "F_SETLKW": 7, "F_OFD_GETLK": 36, "F_OFD_SETLK": 37, "F_OFD_SETLKW": 38,
    "F_SETLEASE": 1024, "F_GETLEASE": 1025, "F_NOTIFY": 1026,
}
NAMESPACES = {
    "CLONE_NEWTIME": 0x80, "CLONE_NEWNS": 0x20000, "CLONE_NEWCGROUP": 0x2000000, "CLONE_NEWUTS": 0x4000000,
    "CLONE_NEWIPC": 0x8000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000,
}
CLONE_VFORK, CLONE_THREAD, CLONE_FILES = 0x4000, 0x10000, 0x400
# (family, type) of sockets a worker has no use for; each would open kernel code to it.
FAMILIES = {
    "AF_INET": (socket.AF_INET, socket.SOCK_DGRAM), "AF_INET6": (socket.AF_INET6, socket.SOCK_DGRAM),
    "AF_NETLINK": (16, socket.SOCK_RAW), "AF_PACKET": (17, socket.SOCK_RAW),
    "AF_ALG": (38, socket.SOCK_SEQPACKET), "AF_VSOCK": (40, socket.SOCK_STREAM),
}
PER_LINUX, PER_LINUX32 = 0, 0x0008
PTRACE_PEEKDATA, UFFD_USER_MODE_ONLY = 2, 1
SHM_KEY = 0x0C0FFEE
MQ_NAME = b"/coprocessor-syscall-filter-test"
IPC_CREAT, SHM_RDONLY = 0o1000, 0o10000
MESSAGE = b"left by an earlier job"

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.shmat.restype = ctypes.c_void_p


def syscall(name, *args):
    """The raw syscall; ints go as longs, None as NULL, bytes and ctypes objects as pointers."""
    return libc.syscall(ctypes.c_long(SYSCALLS[name]), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))


def outcome(result, close=False):
    if result < 0:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    if close:
        os.close(result)
    return "ok"


def attempts():
    """{attempt: outcome} for everything the filter refuses; harmless arguments throughout."""
    got = {}
    plain = {
        "setns": (-1, 0),
        "io_uring_setup": (0, None),
        "io_uring_enter": (-1, 0, 0, 0, None, 0),
        "io_uring_register": (-1, 0, None, 0),
        "add_key": (None, None, None, 0, 0),
        "keyctl": (0xFFFF, 0, 0, 0, 0),  # no such operation
        "request_key": (None, None, None, 0),
        "ptrace": (PTRACE_PEEKDATA, 0x7FFFFFFF, None, None),  # no such pid
        "process_vm_readv": (os.getpid(), None, 0, None, 0, 0),  # nothing, from itself
        "process_vm_writev": (os.getpid(), None, 0, None, 0, 0),
        "mount": (None, None, None, 0, None),
        "umount2": (None, 0xFFFF),  # invalid flags
        "pivot_root": (None, None),
        "chroot": (None,),
        "fsopen": (None, 0),
        "fsconfig": (-1, 0, None, None, 0),
        "fsmount": (-1, 0, 0),
        "fspick": (-1, None, 0),
        "move_mount": (-1, None, -1, None, 0),
        "open_tree": (-1, None, 0),
        "mount_setattr": (-1, None, 0, None, 0),
        "bpf": (0xFFFF, None, 0),  # no such command
        "perf_event_open": (None, 0, -1, -1, 0),
        "userfaultfd": (UFFD_USER_MODE_ONLY | 0x4,),  # invalid flags
        "sethostname": (None, 1000),  # too long
        "setdomainname": (None, 1000),
        "kexec_load": (0, 0xFFFFFFFF, None, 0x1000),  # too many segments, invalid flags
        "kexec_file_load": (-1, -1, 0, None, 0xFFFF),  # invalid flags
        "init_module": (None, 0, None),  # empty image
        "finit_module": (-1, None, 0),
        "delete_module": (None, 0),
        "reboot": (0, 0, 0, None),  # without the magic numbers
        "swapon": (None, 0x7FFFFFFF),  # invalid flags
        "swapoff": (None,),
        "acct": (b"",),  # a path that does not exist (NULL would switch accounting off)
        "quotactl": (0, None, 0, None),
        "name_to_handle_at": (-1, None, None, None, 0xFFFF),  # invalid flags
        "open_by_handle_at": (-1, None, 0),
        "lookup_dcookie": (0, None, 0),
        "clone3": (None, 0),
        "flock": (-1, 2),  # LOCK_EX on no file
        "inotify_init1": (0x7FFF0000,),  # invalid flags
        "fanotify_init": (0xFFFFFFFF, 0),  # invalid flags
    }
    for name, args in plain.items():
        got[name] = outcome(syscall(name, *args))
    got["inotify_init"] = outcome(syscall("inotify_init"), close=True)
    for command, number in FCNTL_COMMANDS.items():
        got[f"fcntl({command})"] = outcome(syscall("fcntl", -1, number, None))  # on no file
    got["personality(PER_LINUX32)"] = outcome(syscall("personality", PER_LINUX32))
    syscall("personality", PER_LINUX)  # back, in case it worked
    for flag, value in NAMESPACES.items():
        # Invalid combinations (CLONE_VFORK in unshare, CLONE_THREAD without CLONE_SIGHAND): EINVAL unfiltered, nothing made.
        got[f"unshare({flag})"] = outcome(syscall("unshare", value | CLONE_VFORK))
        got[f"clone({flag})"] = outcome(syscall("clone", value | CLONE_THREAD, None, None, None, 0))
    for family, (number, kind) in FAMILIES.items():
        got[f"socket({family})"] = outcome(syscall("socket", number, kind, 0), close=True)
        pair = (ctypes.c_int * 2)()
        got[f"socketpair({family})"] = outcome(syscall("socketpair", number, socket.SOCK_STREAM, 0, pair))
    return got


def allowed():
    """What ordinary template code needs: {what: outcome}."""
    got = {}

    def check(what, action):
        try:
            action()
            got[what] = "ok"
        except OSError as exc:
            got[what] = errno.errorcode.get(exc.errno, str(exc))

    def thread():  # glibc tries clone3 first, then clone
        done = []
        worker = threading.Thread(target=lambda: done.append(1))
        worker.start()
        worker.join()
        assert done

    def fork():
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 7:
            raise OSError(errno.ECHILD, "child did not exit with 7")

    check("thread", thread)
    check("fork", fork)
    check("socket(AF_UNIX)", lambda: socket.socket(socket.AF_UNIX).close())
    check("socketpair(AF_UNIX)", lambda: [s.close() for s in socket.socketpair()])
    got["personality(PER_LINUX)"] = outcome(syscall("personality", PER_LINUX))
    got["unshare(CLONE_FILES)"] = outcome(syscall("unshare", CLONE_FILES))  # no namespace flag
    return got


def failed(what):
    error = ctypes.get_errno()
    raise OSError(error, f"{what}: {os.strerror(error)}")


def shm_create(hold):
    shmid = libc.shmget(SHM_KEY, 4096, IPC_CREAT | 0o600)
    if shmid < 0:
        failed("shmget")
    address = libc.shmat(shmid, None, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        failed("shmat")
    ctypes.memmove(address, MESSAGE, len(MESSAGE))
    libc.shmdt(ctypes.c_void_p(address))
    if hold:  # for a concurrent job to look meanwhile
        time.sleep(0.7)
    return "created"


def shm_read():
    shmid = libc.shmget(SHM_KEY, 0, 0)
    if shmid < 0:
        return errno.errorcode[ctypes.get_errno()]
    address = libc.shmat(shmid, None, SHM_RDONLY)
    if address in (None, ctypes.c_void_p(-1).value):
        failed("shmat")
    return "found: " + ctypes.string_at(address, len(MESSAGE)).decode(errors="replace")


class MqAttr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long), ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]


def mq_create():
    queue = libc.mq_open(MQ_NAME, os.O_CREAT | os.O_RDWR, 0o600, None)
    if queue < 0:
        # Landlock refuses to open it (the mqueue file system is outside its read paths), but only
        # after the kernel made it: a name that exists is a message too.
        if ctypes.get_errno() == errno.EACCES and libc.mq_open(MQ_NAME, os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o600, None) < 0:
            if ctypes.get_errno() == errno.EEXIST:
                return "created"
        failed("mq_open")
    if libc.mq_send(queue, MESSAGE, len(MESSAGE), 0) < 0:
        failed("mq_send")
    libc.mq_close(queue)
    return "created"


def mq_read():
    queue = libc.mq_open(MQ_NAME, os.O_RDONLY | os.O_NONBLOCK)
    if queue < 0:
        return errno.errorcode[ctypes.get_errno()]  # ENOENT: no such queue; EACCES: one exists
    attr = MqAttr()
    libc.mq_getattr(queue, ctypes.byref(attr))
    buffer = ctypes.create_string_buffer(attr.msgsize)
    size = libc.mq_receive(queue, buffer, attr.msgsize, None)
    return "found: " + (buffer.raw[:size].decode(errors="replace") if size >= 0 else "(empty)")


def i386():
    """getpid through int 0x80, the i386 entry, from machine code in an executable page."""
    code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20 (i386 getpid); int 0x80; ret
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    function = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    return f"i386 getpid returned {function()}"


def x32():
    """getpid with the x32 bit set in the syscall number."""
    result = libc.syscall(ctypes.c_long(0x40000000 | 39))
    return f"x32 getpid returned {result}" + ("" if result >= 0 else f" ({errno.errorcode[ctypes.get_errno()]})")


MODES = {
    "attempts": lambda: json.dumps(attempts()),
    "allowed": lambda: json.dumps(allowed()),
    "shm-create": lambda: shm_create(hold=False),
    "shm-hold": lambda: shm_create(hold=True),
    "shm-read": shm_read,
    "mq-create": mq_create,
    "mq-read": mq_read,
    "i386": i386,
    "x32": x32,
}


def run(ctx, mode):
    return MODES[mode]()
