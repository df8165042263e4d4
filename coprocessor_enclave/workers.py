"""Runs template jobs in forked children of a fork server that never held the enclave key."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import CapabilityError, EnclaveUnreachable
from .protocol import Status
from .frames import FrameError, FrameTooLarge, recv_frame_sized, send_frame
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


# Answers one capability call of a running template (`call`, `args`) with a JSON-able value.
# Raising `CapabilityError` refuses that call (the template sees the message); anything else
# aborts the whole job, so the enclave signs nothing for it.
CallHandler = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class WorkerResult:
    """What a worker produced: a status and either ABI output or a UTF-8 reason."""

    status: Status
    output: bytes


class WorkerPool:
    """Starts one child per job from a warm fork server, so a job skips interpreter start-up (~0.2 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workdir = tempfile.mkdtemp(prefix="coprocessor-worker-")
        self._server: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._start_server()

    def _start_server(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server = subprocess.Popen(
            [sys.executable, "-I", "-m", "coprocessor_enclave.worker", str(theirs.fileno())],
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

    def _fork(self, conn: socket.socket) -> int:
        """Hands `conn` to the fork server and returns the pid of the child that got it."""
        with self._lock:
            for attempt in range(2):
                try:
                    if self._control is None:  # an earlier restart failed: try again now
                        self._start_server()
                    assert self._control is not None
                    socket.send_fds(self._control, [b"J"], [conn.fileno()])
                    reply = b""
                    while len(reply) < 8:
                        chunk = self._control.recv(8 - len(reply))
                        if not chunk:
                            raise ConnectionError("fork server closed the control channel")
                        reply += chunk
                    return int.from_bytes(reply, "big")
                except OSError:
                    if attempt:
                        raise
                    self._restart_server()  # it died (killed, crashed): start a fresh one once
        raise AssertionError("unreachable")

    def _restart_server(self) -> None:
        self._stop_server()
        self._start_server()

    def run(self, job: dict, timeout: float, handler: CallHandler | None = None) -> WorkerResult:
        """Runs `job` in a fresh child, answering its capability calls with `handler`.

        A child that overruns, crashes or breaks the frame protocol is killed and reported.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = self._fork(theirs)
            theirs.close()
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
            theirs.close()
        return WorkerResult(Status.TEMPLATE_ERROR, b"worker returned a malformed result")

    def _stop_server(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._server is not None and self._server.poll() is None:
            self._server.kill()
            self._server.wait()

    def close(self) -> None:
        """Stops the fork server."""
        with self._lock:
            self._stop_server()
            shutil.rmtree(self._workdir, ignore_errors=True)


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
