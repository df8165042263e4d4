"""Runs template jobs in fresh worker processes that never hold the enclave key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass

from ..protocol import Status

# The worker gets nothing of the enclave's environment: no key, no operator settings.
_WORKER_ENV = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
_WORKER_COMMAND = [sys.executable, "-I", "-m", "coprocessor.enclave.worker"]
# Grace on top of the template's timeout for process start and result encoding.
_WALL_GRACE_SECONDS = 1.0
_MAX_RESULT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class WorkerResult:
    """What a worker produced: a status and either ABI output or a UTF-8 reason."""

    status: Status
    output: bytes


class WorkerPool:
    """Starts one worker per job and keeps spares warm, so a job skips interpreter start-up."""

    def __init__(self, spares: int = 1) -> None:
        self._spares: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._target = spares
        self._workdir = tempfile.mkdtemp(prefix="coprocessor-worker-")
        self._refill()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            _WORKER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_WORKER_ENV,
            cwd=self._workdir,
            start_new_session=True,  # its own process group, so a runaway job is killed whole
        )

    def _refill(self) -> None:
        with self._lock:
            while len(self._spares) < self._target:
                self._spares.append(self._spawn())

    def _take(self) -> subprocess.Popen[bytes]:
        with self._lock:
            worker = self._spares.pop() if self._spares else None
        threading.Thread(target=self._refill, daemon=True).start()
        return worker or self._spawn()

    def run(self, job: dict, timeout: float) -> WorkerResult:
        """Runs `job` in a fresh worker; a worker that overruns or crashes is killed and reported."""
        worker = self._take()
        try:
            stdout, stderr = worker.communicate(json.dumps(job).encode(), timeout=timeout + _WALL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(worker)
            return WorkerResult(Status.TIMEOUT, f"template ran longer than {timeout:g} s".encode())
        finally:
            _kill_group(worker)
        if worker.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and not stdout:
            return WorkerResult(Status.TIMEOUT, b"template exceeded its CPU time")
        if not stdout or len(stdout) > _MAX_RESULT_BYTES:
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {worker.returncode}"]
            return WorkerResult(Status.TEMPLATE_ERROR, f"worker crashed: {tail[0]}"[:256].encode())
        try:
            result = json.loads(stdout)
            status = Status(result["status"])
            if status == Status.OK:
                return WorkerResult(status, bytes.fromhex(result["output"]))
            return WorkerResult(status, str(result["reason"]).encode()[:256])
        except (ValueError, KeyError, TypeError):
            # Template code wrote to the result descriptor itself: never trust such a result.
            return WorkerResult(Status.TEMPLATE_ERROR, b"worker returned a malformed result")

    def close(self) -> None:
        """Stops the spare workers."""
        with self._lock:
            spares, self._spares, self._target = self._spares, [], 0
        for worker in spares:
            _kill_group(worker)


def _kill_group(worker: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    worker.wait()
