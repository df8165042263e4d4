"""Template workers: a fork server that never sees the enclave key, and the job each child runs.

The enclave starts this module as a fresh interpreter with an empty environment
(`python -I -m coprocessor_enclave.worker FD`). It imports what templates need once, sets up
the namespaces workers share (`sandbox.prepare_server`), then for every job receives a
socket over the control channel (SCM_RIGHTS), forks a child and reports the child's pid.
The child reads one job frame from its socket (with its template's bundle, which it checks
against the template id: no process holds another template's code), confines itself (`sandbox.confine`: an IPC
namespace, rlimits, Landlock, an unprivileged uid, a seccomp filter), imports the template from
its bundle's bytes in memory, runs it (its capabilities are call frames on the same socket,
`frames`; its prints become log calls, `JobLog`) and writes one result frame back.
"""

from __future__ import annotations

import importlib
import io
import os
import signal
import socket
import sys
import time
import types
from collections.abc import Mapping
from typing import Any

from eth_abi import decode, encode

from coprocessor_enclave import bundles, chainread, errors, protocol, sandbox, sdk, template, values  # py-evm (chainread): ~0.6 s, once here
from coprocessor_enclave.frames import recv_frame, send_frame
from coprocessor_enclave.errors import CapabilityError, ChainDataError
from coprocessor_enclave.protocol import Status
from coprocessor_enclave.sdk import Caller, Context, InvalidInput

_REASON_LIMIT = 256


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_REASON_LIMIT]


def _failure(exc: Exception, context: Context) -> dict[str, Any]:
    """The status and reason for a run that raised `exc`.

    Once the host's chain data failed verification, that is the outcome, whatever the template
    raised after catching it: a lie must not turn into another status (or an answer).
    """
    if context.chain_error is not None or isinstance(exc, ChainDataError):
        return {"status": Status.CHAIN_DATA_INVALID, "reason": f"ChainDataError: {context.chain_error or exc}"[:_REASON_LIMIT]}
    if isinstance(exc, InvalidInput):
        return {"status": Status.INVALID_INPUT, "reason": str(exc)[:_REASON_LIMIT]}
    if isinstance(exc, (MemoryError, RecursionError)):
        return {"status": Status.RESOURCE_LIMIT, "reason": _reason(exc)}
    return {"status": Status.TEMPLATE_ERROR, "reason": _reason(exc)}


def run_job(job: dict[str, Any], caller: Caller, files: Mapping[str, bytes]) -> dict[str, Any]:
    """Runs one job on the bundle `files` and returns {"status", "output" | "reason"} (output as hex ABI)."""
    try:
        inputs = decode(job["inputs"], bytes.fromhex(job["input"]))
    except Exception as exc:  # any decode failure is the requester's fault
        return {"status": Status.INVALID_INPUT, "reason": f"input does not decode as ({','.join(job['inputs'])}): {exc}"}

    bundles.install(files)
    module_name, function_name = job["entry"].split(":")
    context = Context(**job["context"], caller=caller, files=files)
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(context, *inputs)
    except Exception as exc:
        return _failure(exc, context)
    if context.chain_error:  # the template caught it; a lie must still not become an answer
        return _failure(ChainDataError(context.chain_error), context)

    values = result if len(job["outputs"]) > 1 else (result,)
    try:
        output = encode(job["outputs"], list(values))
    except Exception as exc:
        reason = f"output does not encode as ({','.join(job['outputs'])}): {_reason(exc)}"
        return {"status": Status.TEMPLATE_ERROR, "reason": reason[:_REASON_LIMIT]}
    limit = job["limits"]["output_bytes"]
    if len(output) > limit:
        return {"status": Status.RESOURCE_LIMIT, "reason": f"output of {len(output)} bytes exceeds the limit of {limit}"}
    return {"status": Status.OK, "output": output.hex()}


def _child(conn: socket.socket) -> None:
    """In the forked child: one job in, capability calls out and back, one result out, then exit."""
    os.setsid()  # own process group: the enclave kills the whole group, forks included
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    job = recv_frame(conn, bounded=False)  # from the enclave, which bounded whatever it relays
    owner = os.getpid()

    def call(name: str, args: dict[str, Any]) -> Any:
        if os.getpid() != owner:
            raise CapabilityError("capabilities are only available to the job's own process")
        try:
            send_frame(conn, {"call": name, "args": args})
            reply = recv_frame(conn, bounded=False)
        except (OSError, ValueError) as exc:  # includes FrameError: to the template, a refused call like any other
            raise CapabilityError(f"job channel: {type(exc).__name__}: {exc}") from None
        if "error" in reply:
            raise CapabilityError(reply["error"])
        return reply["ok"]

    def send(result: dict[str, Any]) -> None:
        if os.getpid() != owner:
            os._exit(0)  # a process the template forked: only the job's own process answers
        send_frame(conn, {"result": {**result, "status": int(result["status"])}})
        conn.close()
        os._exit(0)

    def cpu_exhausted(signum: int, frame: object) -> None:
        send({"status": Status.TIMEOUT, "reason": "template exceeded its CPU time"})

    limits = job["limits"]
    memory = int(limits["memory_mb"]) * 1024 * 1024
    cpu = max(1, int(limits["timeout_seconds"] + 0.999))
    signal.signal(signal.SIGXCPU, cpu_exhausted)
    devnull = os.open(os.devnull, os.O_WRONLY)  # before confinement, which refuses opening it
    try:
        sandbox.confine(memory, cpu, keep=(0, 1, 2, conn.fileno(), devnull))
    except Exception as exc:
        print(f"sandbox: cannot confine the worker, not running the template: {exc!r}", file=sys.stderr, flush=True)
        raise
    # Prints go to the enclave as log calls, capped and attributed per job; bytes written to the
    # descriptors directly go nowhere (the fork server's stderr is shared by every job).
    log = JobLog(call)
    sys.stdout = sys.stderr = log
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    context = job["context"]
    for key in ("request_id", "template_id", "anchor_hash"):
        context[key] = bytes.fromhex(context[key])
    files = bundles.unpack(job.pop("bundle"), job["template_id"])
    result = run_job(job, call, files)
    log.flush()
    send(result)


class JobLog(io.TextIOBase):
    """A job's `sys.stdout` and `sys.stderr`: text goes to the enclave's log in batches of lines, as
    `ctx.log` does, until the enclave says the run's log budget is spent."""

    _BATCH_BYTES = 1024
    _BATCH_SECONDS = 0.1  # a line is sent at most this late, so a run that then hangs still shows it

    def __init__(self, call: Caller) -> None:
        self._call = call
        self._pending: list[str] = []
        self._size = 0
        self._sent = time.monotonic()
        self._spent = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._spent:
            return len(text)
        self._pending.append(text)
        self._size += len(text)
        if self._size >= self._BATCH_BYTES or ("\n" in text and time.monotonic() - self._sent >= self._BATCH_SECONDS):
            self.flush()
        return len(text)

    def flush(self) -> None:
        if not self._pending or self._spent:
            return
        message = "".join(self._pending).removesuffix("\n")
        self._pending, self._size, self._sent = [], 0, time.monotonic()
        try:
            self._spent = self._call("log", {"message": message}) == 0
        except CapabilityError:
            self._spent = True


# Templates import the SDK by its public paths. In a worker those names are the measured modules
# themselves: the node's package (`coprocessor`) is neither measured nor readable here.
_PUBLIC_PATHS = {"sdk": sdk, "values": values, "chainread": chainread, "errors": errors, "protocol": protocol, "template": template}


def _alias_public_paths() -> None:
    package = types.ModuleType("coprocessor", "The SDK's public import paths, served by the measured enclave package.")
    package.__path__ = []  # nothing on disk: only the aliases below import
    sys.modules["coprocessor"] = package
    for name, module in _PUBLIC_PATHS.items():
        sys.modules[f"coprocessor.{name}"] = module
        setattr(package, name, module)


def serve(control: socket.socket) -> None:
    """The fork server loop: one job socket in, one child pid out, until the enclave goes away."""
    sandbox.prepare_server()  # raises (and so stops this server) where workers cannot be confined
    _alias_public_paths()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sys.stdout = sys.stderr
    control.sendall(b"R")  # ready: imports done, namespaces prepared
    while True:
        _, fds, _, _ = socket.recv_fds(control, 1, 1)
        if not fds:
            return  # control channel closed: the enclave stopped
        conn = socket.socket(fileno=fds[0])
        pid = sandbox.fork_job()
        if pid == 0:
            control.close()
            try:
                _child(conn)
            finally:
                os._exit(1)
        conn.close()
        control.sendall(pid.to_bytes(8, "big"))


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
