"""Runs template jobs in children of per-template zygotes, forked by a fork server that never held the enclave key.

docs/containment.md ("Warm runs") says what a zygote holds, what a spare child has done before
its job, and why neither ever runs template code before the job is there.
"""

from __future__ import annotations

import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import CapabilityError, EnclaveError, EnclaveUnreachable
from .frames import FrameError, FrameTooLarge, recv_frame, recv_frame_sized, send_frame
from .protocol import Status
from .text import MAX_LINE, inert, utf8_prefix

# The fork server gets nothing of the enclave's environment: no key, no operator settings.
_SERVER_ENV = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
# Grace on top of the template's timeout for fork and result encoding.
_WALL_GRACE_SECONDS = 0.5
_MAX_RESULT_BYTES = 1024 * 1024
# Everything a job may send the enclave (its calls and its result): parsing it costs the key
# holder's CPU, which the worker's limits do not cover.
_MAX_CHANNEL_BYTES = 16 * 1024 * 1024
_TOO_MUCH = b"worker sent more than its limits (1 MiB a frame, 16 MiB a run)"
_MAX_REASON_BYTES = 256
# Capability calls per job: each costs the enclave process CPU, which the worker's limits do not cover.
_MAX_CALLS = 2048
_SERVER_START_SECONDS = 60.0
# Templates kept warm (a zygote and a spare child each) at most; the least recently run goes first.
DEFAULT_WARM_TEMPLATES = 16
# A template run back to back (its spare was taken younger than _BACK_TO_BACK_SECONDS, so still
# preparing) keeps two spares, until a spare waits _IDLE_SECONDS for its job again.
_MAX_SPARES = 2
_BACK_TO_BACK_SECONDS = 0.02
_IDLE_SECONDS = 1.0


# Answers one capability call of a running template (`call`, `args`) with a JSON-able value.
# Raising `CapabilityError` refuses that call (the template sees the message); anything else
# aborts the whole job, so the enclave signs nothing for it.
CallHandler = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class WorkerResult:
    """What a worker produced: a status and either ABI output or a UTF-8 reason."""

    status: Status
    output: bytes


@dataclass(frozen=True)
class TemplateImage:
    """What a template's zygote loads once: the bundle its id was computed from, and what its children need before a job."""

    template_id: str  # 0x hex: the zygote checks the bundle against it
    bundle: Mapping[str, str]  # as `bundles.pack` makes it
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    memory_mb: int
    timeout_seconds: float
    preload: tuple[str, ...] = ()  # heavy modules its jobs use, imported once by the zygote (`bundles.preloads`)


@dataclass(frozen=True)
class Warmth:
    """A template's warm processes now, and how its jobs were served so far (`WorkerPool.warm`)."""

    zygote: int | None  # pid; None while none runs
    spares: tuple[int, ...]  # pids of the children forked ahead of the next jobs, oldest (next to serve) first
    from_spare: int  # jobs that found their process forked ahead of them
    on_demand: int  # jobs whose process was forked when they came (first job, concurrent jobs, a lost spare)


class _Retired(Exception):
    """The zygote was dropped from the pool (least recently used) while a job was about to use it."""


class _Zygote:
    """One template's zygote, as the enclave sees it: its control channel and its spare children.

    A spare is a child forked (and confined as far as possible) before its job; it has run no
    template code and serves exactly one job. One is kept, two while the template runs back to
    back. The zygote is started on first use and again after it died; `lock` serialises its
    control channel and guards every field.
    """

    def __init__(self, image: TemplateImage) -> None:
        self.image = image
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.control: socket.socket | None = None
        self.spares: list[tuple[socket.socket, int, float]] = []  # (our end, pid, forked at), oldest first
        self.depth = 1
        self.retired = False
        self.from_spare = self.on_demand = 0

    def take(self, pool: WorkerPool) -> tuple[socket.socket, int]:
        """The oldest live spare, else a child forked now: (our end of its job socket, its pid)."""
        with self.lock:
            if self.retired:
                raise _Retired()
            while self.spares:
                conn, pid, forked = self.spares.pop(0)
                if not _idle(conn):
                    _discard(conn, pid)  # died before its job (killed from outside, or could not confine itself)
                    continue
                age = time.monotonic() - forked
                if age < _BACK_TO_BACK_SECONDS:
                    self.depth = _MAX_SPARES  # still preparing: the next job should find one ready
                elif age > _IDLE_SECONDS:
                    self.depth = 1
                _hurry(pid)
                self.from_spare += 1
                return conn, pid
            self.depth = _MAX_SPARES if self.from_spare + self.on_demand else 1  # not the first job: they come fast
            child = self._spawn(pool, b"J")
            self.on_demand += 1
            return child

    def refill(self, pool: WorkerPool) -> None:
        """Forks the next jobs' children ahead of time (in the pool's refill thread)."""
        with self.lock:
            while not self.retired and len(self.spares) < self.depth:
                try:
                    # Back to back, its job comes within milliseconds: a rehearsal would only add its CPU to the load.
                    kind = b"S" if self.depth == 1 else b"B"
                    self.spares.append((*self._spawn(pool, kind), time.monotonic()))
                except Exception as exc:  # the next job forks on demand and meets the error itself
                    print(f"worker: cannot fork a spare for template {self.image.template_id[:10]}: {exc!r}", file=sys.stderr, flush=True)
                    return

    def retire(self) -> None:
        """Stops the zygote and its spares; a job already running is not affected."""
        with self.lock:
            self.retired = True
            for conn, pid, _ in self.spares:
                _discard(conn, pid)
            self.spares = []
            self._stop()

    def _spawn(self, pool: WorkerPool, kind: bytes) -> tuple[socket.socket, int]:
        """Has the zygote fork a child: `S` a spare (it rehearses a job while it waits), `B` a spare while the
        template runs back to back (no rehearsal), `J` one whose job is next."""
        for attempt in range(2):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                if self.control is None:  # first use, or the zygote died: start one
                    self.pid, self.control = pool._new_zygote(self.image)
                socket.send_fds(self.control, [kind], [theirs.fileno()])
                return ours, _read_pid(self.control)
            except OSError:
                ours.close()
                self._stop()
                if attempt:
                    raise
            finally:
                theirs.close()
        raise AssertionError("unreachable")

    def _stop(self) -> None:
        if self.control is not None:
            self.control.close()  # the zygote reads the end of its channel and exits
            self.control = None
            self.pid = None


class WorkerPool:
    """Runs each job in a fresh child of its template's zygote, usually forked before the job arrived.

    A fork server (a fresh interpreter that never saw the key) forks one zygote per template, on
    first use, for at most `max_templates` templates (the least recently run is stopped first).
    """

    def __init__(self, max_templates: int = DEFAULT_WARM_TEMPLATES) -> None:
        if max_templates < 1:
            raise ValueError("max_templates must be at least 1")
        self._lock = threading.Lock()  # the fork server's channel and the zygote table; taken after a zygote's lock, never before
        self._workdir = tempfile.mkdtemp(prefix="coprocessor-worker-")
        self._server: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._zygotes: OrderedDict[str, _Zygote] = OrderedDict()
        self._max_templates = max_templates
        self._closed = False
        self._refills: queue.SimpleQueue[_Zygote | None] = queue.SimpleQueue()
        self._start_server()
        threading.Thread(target=self._refill_loop, name="worker-refill", daemon=True).start()

    def _start_server(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server = subprocess.Popen(
            [sys.executable, "-I", "-m", "coprocessor_enclave.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,  # a pipe, not a file: children may not write files (RLIMIT_FSIZE = 0)
            env=_SERVER_ENV,
            cwd=self._workdir,
        )
        theirs.close()
        self._control = ours
        threading.Thread(target=_forward_logs, args=(self._server.stderr,), daemon=True).start()
        # Wait until it is ready, so the first job's time is the job's, and a server that cannot
        # confine workers fails here rather than on the first request.
        ours.settimeout(_SERVER_START_SECONDS)
        try:
            ready = ours.recv(1)
        except OSError:  # timed out
            ready = b""
        ours.settimeout(None)
        if ready != b"R":
            self._stop_server()
            # Retryable: the next job tries to start it again, and the node retries this request.
            raise EnclaveUnreachable("the template fork server did not start (see the enclave log)")

    def _new_zygote(self, image: TemplateImage) -> tuple[int, socket.socket]:
        """Has the fork server fork a zygote and loads `image` into it: (its pid, its control channel)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                for attempt in range(2):
                    try:
                        if self._closed:
                            raise EnclaveUnreachable("the worker pool is closed")
                        if self._control is None:  # an earlier restart failed: try again now
                            self._start_server()
                        assert self._control is not None
                        socket.send_fds(self._control, [b"Z"], [theirs.fileno()])
                        pid = _read_pid(self._control)
                        break
                    except OSError:
                        if attempt:
                            raise
                        self._restart_server()  # it died (killed, crashed): start a fresh one once
            theirs.close()
            ours.settimeout(_SERVER_START_SECONDS + image.timeout_seconds)  # it compiles the sources under that timeout
            send_frame(
                ours,
                {
                    "template_id": image.template_id,
                    "bundle": dict(image.bundle),
                    "inputs": list(image.inputs),
                    "outputs": list(image.outputs),
                    "limits": {"memory_mb": image.memory_mb, "timeout_seconds": image.timeout_seconds},
                    "preload": list(image.preload),
                },
            )
            reply = recv_frame(ours, bounded=False)  # the timeout stays: a zygote that stops answering is replaced
        except (OSError, FrameError) as exc:
            ours.close()
            raise ConnectionError(f"a zygote did not start: {exc}") from exc
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        if not isinstance(reply, dict) or "error" in reply:
            ours.close()
            # Never runs: the enclave computed the id from these very bytes. Nothing is signed.
            raise EnclaveError(
                f"the zygote of template {image.template_id} refused its bundle: {reply.get('error') if isinstance(reply, dict) else reply!r}"
            )
        return pid, ours

    def _restart_server(self) -> None:
        self._stop_server()
        self._start_server()

    def _zygote(self, image: TemplateImage) -> _Zygote:
        """The zygote of `image`'s template, most recently used from now on; stops the least recently used beyond the bound."""
        evicted = []
        with self._lock:
            if self._closed:
                raise EnclaveUnreachable("the worker pool is closed")
            if self._server is not None and self._server.poll() is not None:
                self._restart_server()  # it died: its zygotes died with it, and find out on their next fork
            zygote = self._zygotes.get(image.template_id)
            if zygote is None:
                zygote = self._zygotes[image.template_id] = _Zygote(image)
                while len(self._zygotes) > self._max_templates:
                    evicted.append(self._zygotes.popitem(last=False)[1])
            else:
                self._zygotes.move_to_end(image.template_id)
        for old in evicted:
            old.retire()
        return zygote

    def _take(self, image: TemplateImage) -> tuple[socket.socket, int, _Zygote]:
        for _ in range(3):
            zygote = self._zygote(image)
            try:
                return (*zygote.take(self), zygote)
            except _Retired:  # evicted between the lookup and the take: look it up again
                continue
            except OSError as exc:  # the zygote failed twice, or the fork server: nothing is signed, the node retries
                raise EnclaveUnreachable(f"cannot start a worker for template {image.template_id[:10]}: {exc}") from exc
        raise EnclaveUnreachable("template zygotes are being replaced faster than jobs can use them")

    def _refill_loop(self) -> None:
        while (zygote := self._refills.get()) is not None:
            zygote.refill(self)

    def run(self, image: TemplateImage, job: dict[str, Any], timeout: float, handler: CallHandler | None = None) -> WorkerResult:
        """Runs `job` (a job frame for `image`'s template, without the bundle) in a fresh child, answering
        its capability calls with `handler`.

        A child that overruns, crashes or breaks the frame protocol is killed and reported. Then the
        template's next child is forked in the background (not during the job: on two cores that
        slowed the job down more than it saved the next one), while this result is checked and signed.
        """
        ours, pid, zygote = self._take(image)
        try:
            deadline = time.monotonic() + timeout + _WALL_GRACE_SECONDS
            calls, unread = 0, _MAX_CHANNEL_BYTES
            try:
                ours.settimeout(max(deadline - time.monotonic(), 0.001))
                send_frame(ours, job)
                while True:
                    message, size = recv_frame_sized(ours, min(_MAX_RESULT_BYTES, unread), deadline)
                    unread -= size
                    if not isinstance(message, dict):
                        break
                    if "result" in message:
                        return _parse(message["result"])
                    if "call" not in message:
                        break
                    calls += 1
                    if calls > _MAX_CALLS:
                        return WorkerResult(Status.RESOURCE_LIMIT, f"more than {_MAX_CALLS} capability calls".encode())
                    host_before = getattr(handler, "host_seconds", 0.0)
                    reply = _answer(handler, message)
                    # Time the handler spent on the host's services is not the template's: the wall clock
                    # stops too (the handler tells how much, e.g. `JobCapabilities.host_seconds`).
                    deadline += getattr(handler, "host_seconds", 0.0) - host_before
                    ours.settimeout(max(deadline - time.monotonic(), 0.001))
                    send_frame(ours, reply)
            except TimeoutError:
                return WorkerResult(Status.TIMEOUT, f"template ran longer than {timeout:g} s".encode())
            except FrameTooLarge:
                return WorkerResult(Status.RESOURCE_LIMIT, _TOO_MUCH)
            except (FrameError, OSError):
                return WorkerResult(Status.TEMPLATE_ERROR, b"worker died without a result (killed by a limit, or crashed)")
            finally:
                _kill_group(pid)
        finally:
            ours.close()
            self._refills.put(zygote)  # the next job's child
        return WorkerResult(Status.TEMPLATE_ERROR, b"worker returned a malformed result")

    def warm(self) -> dict[str, Warmth]:
        """What is warm now, by template id, least recently run first."""
        with self._lock:
            zygotes = list(self._zygotes.items())
        return {tid: Warmth(z.pid, tuple(pid for _, pid, _ in z.spares), z.from_spare, z.on_demand) for tid, z in zygotes}

    def _stop_server(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._server is not None and self._server.poll() is None:
            self._server.kill()
            self._server.wait()

    def close(self) -> None:
        """Stops the zygotes, their spare children and the fork server."""
        with self._lock:
            self._closed = True
            zygotes = list(self._zygotes.values())
            self._zygotes.clear()
        self._refills.put(None)
        for zygote in zygotes:
            zygote.retire()
        with self._lock:
            self._stop_server()
        shutil.rmtree(self._workdir, ignore_errors=True)


def _read_pid(control: socket.socket) -> int:
    """The 8-byte pid a fork server or zygote answers a fork request with."""
    reply = b""
    while len(reply) < 8:
        chunk = control.recv(8 - len(reply))
        if not chunk:
            raise ConnectionError("the forking process closed its control channel")
        reply += chunk
    return int.from_bytes(reply, "big")


def _idle(conn: socket.socket) -> bool:
    """Whether a spare child is still waiting for its job: it writes nothing before it, so anything readable means it is gone."""
    readable, _, _ = select.select([conn], [], [], 0)
    return not readable


def _hurry(pid: int) -> None:
    """Gives a spare, which prepares at the lowest priority, the normal one now that its job is here.

    Only root may; without root spares are not lowered (`forkserver._child`)."""
    if os.geteuid() == 0:
        try:
            os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0))  # the enclave's, as the zygote's
        except OSError:
            pass


def _discard(conn: socket.socket, pid: int) -> None:
    conn.close()  # a spare still waiting reads the end of its channel and exits
    _kill_group(pid)


def _answer(handler: CallHandler | None, message: dict[str, Any]) -> dict[str, Any]:
    """The reply to one capability call.

    Whatever the template sent, a failure is its answer, except `EnclaveUnreachable` (a service
    the enclave depends on is down), which aborts the job so nothing is signed and the node retries.
    """
    call, args = message["call"], message.get("args")
    if handler is None or not isinstance(call, str) or not isinstance(args, dict):
        return {"error": f"capability {call!r} is not available here"}
    try:
        return {"ok": handler(call, args)}
    except EnclaveUnreachable:
        raise
    except CapabilityError as exc:
        return {"error": str(exc)[:MAX_LINE]}
    except Exception as exc:  # malformed arguments of every kind: the template's problem, never the enclave's
        return {"error": f"{type(exc).__name__}: {exc}"[:MAX_LINE]}


def _parse(parsed: Any) -> WorkerResult:
    try:
        status = Status(parsed["status"])
        if status == Status.OK:
            return WorkerResult(status, bytes.fromhex(parsed["output"]))
        # Signed and shown as "a short UTF-8 reason": valid UTF-8, cut between characters, nothing a terminal acts on.
        return WorkerResult(status, utf8_prefix(inert(str(parsed["reason"])), _MAX_REASON_BYTES))
    except (ValueError, KeyError, TypeError):
        return WorkerResult(Status.TEMPLATE_ERROR, b"worker returned a malformed result")


def _forward_logs(stream: Any) -> None:
    """Copies what the fork server and workers write to stderr before a job's template runs (a template's
    prints go through `JobLog` instead) to the enclave's stderr, each line escaped and capped; the rest of a long line is dropped unread
    into memory (a template writing without newlines must not fill the enclave's memory)."""
    continuing = False
    while chunk := stream.readline(MAX_LINE):
        if not continuing:
            sys.stderr.write("worker: " + inert(chunk.decode(errors="replace").rstrip("\n")) + "\n")
        continuing = not chunk.endswith(b"\n")


def _kill_group(pid: int) -> None:
    """Kills the child's process group: the child and anything it forked."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
