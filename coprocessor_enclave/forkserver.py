"""Template workers: a fork server that never sees the enclave key, a zygote per template, and the job each child runs.

The enclave starts this module as a fresh interpreter with an empty environment
(`python -I -m coprocessor_enclave.forkserver FD`). It imports what templates need once, sets up
the namespaces workers share (`sandbox.prepare_server`), then for every template the enclave
runs it forks a *zygote*, which receives that template's bundle once over its own control
channel, checks it against the template id (no process holds another template's code) and
warms the ABI codecs of the template's types. A zygote never runs template code. For every
job the enclave sends it a socket (SCM_RIGHTS); it forks a child and reports the child's pid.
The child confines itself in two steps (`sandbox.confine_early`, then, once its job frame is
there, `sandbox.confine_late`: an IPC namespace, rlimits, Landlock, an unprivileged uid, a
seccomp filter), imports the template from its bundle's bytes in memory, runs it (its
capabilities are call frames on the same socket, `frames`; its prints become log calls,
`JobLog`) and writes one result frame back. The enclave forks each template's next child
ahead of its job (a spare), so a job meets a process that is already forked and half confined.
"""

from __future__ import annotations

import gc
import importlib
import importlib.machinery
import io
import json
import os
import select
import signal
import socket
import sys
import time
import types
from collections.abc import Mapping
from typing import Any, cast

# Only what every job needs: each job is a fork of its zygote, and a fork's cost (page tables,
# copy-on-write faults, teardown) grows with the zygote's memory. eth_abi with eth_utils and
# pydantic, or py-evm for chain reads, tripled it; a zygote imports them only for a template that
# needs them (`bundles.preloads`, chosen by the enclave from the template's types and sources).
from coprocessor_enclave import abicodec, bundles, errors, sandbox, sdk, values
from coprocessor_enclave.errors import CapabilityError, ChainDataError
from coprocessor_enclave.frames import loads_bounded, recv_frame, send_frame
from coprocessor_enclave.sdk import Caller, Context, InvalidInput
from coprocessor_enclave.status import Status

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


def _codec(types: list[str]) -> Any:
    """Our codec (`abicodec`) where it covers the types; eth_abi, preloaded by such a template's zygote, for the rest."""
    return abicodec if abicodec.covers(types) else importlib.import_module("eth_abi")


def run_job(job: dict[str, Any], caller: Caller, files: Mapping[str, bytes], compiled: bytes = b"") -> dict[str, Any]:
    """Runs one job on the bundle `files` (`compiled`: its sources, from `bundles.compile_bundle`) and returns
    {"status", "output" | "reason"} (output as hex ABI)."""
    codec = _codec([*job["inputs"], *job["outputs"]])
    try:
        inputs = codec.decode(job["inputs"], bytes.fromhex(job["input"]))
    except Exception as exc:  # any decode failure is the requester's fault
        return {"status": Status.INVALID_INPUT, "reason": f"input does not decode as ({','.join(job['inputs'])}): {exc}"}

    bundles.install(files, compiled)
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
        output = codec.encode(job["outputs"], list(values))
    except Exception as exc:
        reason = f"output does not encode as ({','.join(job['outputs'])}): {_reason(exc)}"
        return {"status": Status.TEMPLATE_ERROR, "reason": reason[:_REASON_LIMIT]}
    limit = job["limits"]["output_bytes"]
    if len(output) > limit:
        return {"status": Status.RESOURCE_LIMIT, "reason": f"output of {len(output)} bytes exceeds the limit of {limit}"}
    return {"status": Status.OK, "output": output.hex()}


def _child(conn: socket.socket, image: dict[str, Any], files: Mapping[str, bytes], compiled: bytes, spare: bool, rehearse: bool) -> None:
    """In a child of a zygote: confined as far as it can be without its job, it waits for the job frame
    (a `spare` is forked ahead of its job, and may `rehearse` one first); then one job in, capability
    calls out and back, one result out, then exit."""
    os.setsid()  # own process group: the enclave kills the whole group, forks included
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    owner = os.getpid()
    lowered, priority = spare and not sandbox.worker_uid_shared(), os.getpriority(os.PRIO_PROCESS, 0)  # only root may raise it back
    if lowered:  # made with CPU no job and no enclave thread wants; the enclave raises it when it hands the job
        os.setpriority(os.PRIO_PROCESS, 0, _SPARE_NICE)

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

    limits = image["limits"]
    memory = int(limits["memory_mb"]) * 1024 * 1024
    cpu = max(1, int(limits["timeout_seconds"] + 0.999))
    signal.signal(signal.SIGXCPU, cpu_exhausted)
    devnull = os.open(os.devnull, os.O_WRONLY)  # before confinement, which refuses opening it
    try:
        sandbox.confine_early(memory, cpu, keep=(0, 1, 2, conn.fileno(), devnull))
    except Exception as exc:
        print(f"sandbox: cannot confine the worker, not running the template: {exc!r}", file=sys.stderr, flush=True)
        raise
    if rehearse and not select.select([conn], [], [], 0)[0]:  # not when its job is already there
        _rehearse(image)
    job = recv_frame(conn, bounded=False)  # from the enclave, which bounded whatever it relays; a spare waits here
    if (
        job["template_id"] != image["template_id"]
        or job["limits"]["memory_mb"] != limits["memory_mb"]
        or job["limits"]["timeout_seconds"] != limits["timeout_seconds"]
    ):
        print("worker: a job for another template or other limits reached this zygote's child; not running it", file=sys.stderr, flush=True)
        raise ValueError("job does not match the zygote's template")
    if lowered:
        os.setpriority(os.PRIO_PROCESS, 0, priority)  # the job runs at the zygote's priority, as jobs always did
    try:
        sandbox.confine_late()
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
    result = run_job(job, call, files, compiled)
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
# themselves: the node's package (`coprocessor`) is neither measured nor readable here. The light
# ones are there from the start; the others are imported when a template first imports them (in
# its zygote if the enclave saw it would, see `PRELOADS`).
_PUBLIC_PATHS = {"sdk": sdk, "values": values, "errors": errors}
_LAZY_PUBLIC_PATHS = {f"coprocessor.{name}": f"coprocessor_enclave.{name}" for name in ("chainread", "protocol", "template")}


class _PublicAliases:
    """Serves `coprocessor.chainread` (and the other heavy public paths) as the enclave's own module objects.

    A finder and loader by protocol, as `bundles.BundleFinder` is."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, cast(Any, self)) if fullname in _LAZY_PUBLIC_PATHS else None

    def __init__(self) -> None:
        self._own_specs: dict[str, Any] = {}  # by alias: the module's own spec, which the import system overwrites

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(_LAZY_PUBLIC_PATHS[spec.name])
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._own_specs[module.__spec__.name]  # type: ignore[union-attr]


def _alias_public_paths() -> None:
    package = types.ModuleType("coprocessor", "The SDK's public import paths, served by the measured enclave package.")
    package.__path__ = []  # nothing on disk: only the aliases below import
    sys.modules["coprocessor"] = package
    for name, module in _PUBLIC_PATHS.items():
        sys.modules[f"coprocessor.{name}"] = module
        setattr(package, name, module)
    sys.meta_path.insert(0, _PublicAliases())


_SPARE_NICE = 19

# A job's steps on made-up data, run by a spare before its job: trusted code only (this module, not the
# template's), so that the memory a job touches is this process's own copy before the job arrives
# instead of being copied from the zygote page by page on the job's clock (about 400 page faults).
_REHEARSAL_MODULE = "_coprocessor_rehearsal"
_REHEARSAL_BUNDLE = {f"{_REHEARSAL_MODULE}.py": b"def run(ctx, *inputs):\n    ctx.log('rehearsal')\n    return ctx.config['outputs']\n"}
_REHEARSAL_MAX_VALUES = 1024  # zero values of the declared types; beyond that the rehearsal is skipped


def _rehearse(image: dict[str, Any]) -> None:
    """Runs `run_job` once on zero values of the template's types with a module of ours, then undoes what it left."""
    inputs, outputs = image["inputs"], image["outputs"]
    if not abicodec.covers([*inputs, *outputs]):
        return  # types left to eth_abi: rare enough to go without
    meta_path = list(sys.meta_path)
    try:
        budget = [_REHEARSAL_MAX_VALUES]
        zero_inputs = [_zero(abicodec.parse(t), budget) for t in inputs]
        zero_outputs = [_zero(abicodec.parse(t), budget) for t in outputs]
        job = {
            "inputs": inputs,
            "outputs": outputs,
            "input": abicodec.encode(inputs, zero_inputs).hex(),
            "entry": f"{_REHEARSAL_MODULE}:run",
            "limits": {"output_bytes": 1 << 30},
            "context": {
                "request_id": "00" * 32,
                "consumer": "0x" + "00" * 20,
                "template_id": "00" * 32,
                "anchor_block": 0,
                "anchor_hash": "00" * 32,
                "chain_id": 0,
                "deadline": 0,
                "config": {},
            },
        }
        job = loads_bounded(json.dumps(job).encode())
        context = job["context"]
        for key in ("request_id", "template_id", "anchor_hash"):
            context[key] = bytes.fromhex(context[key])
        context["config"] = {"outputs": zero_outputs[0] if len(outputs) == 1 else tuple(zero_outputs)}
        reply = lambda name, args: loads_bounded(json.dumps({"ok": 1}).encode())["ok"]  # noqa: E731
        result = run_job(job, reply, _REHEARSAL_BUNDLE, bundles.compile_bundle(_REHEARSAL_BUNDLE))
        json.dumps({"result": {**result, "status": int(result["status"])}})
    except Exception:  # nothing of it matters to the job (_TooLarge included): it only warms memory
        pass
    finally:
        # Not a walk over sys.modules: touching every module would copy hundreds of the zygote's pages.
        sys.meta_path[:] = meta_path
        sys.modules.pop(_REHEARSAL_MODULE, None)


class _TooLarge(Exception):
    """The declared types' zero values are too many to make for a rehearsal."""


def _zero(abi_type: Any, budget: list[int]) -> Any:
    """The zero value of a parsed ABI type (`abicodec.parse`; empty for dynamic arrays, bytes and strings), counted against `budget`."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge()
    kind = abi_type.kind
    if kind == "array":
        if abi_type.length is None:
            return []
        if abi_type.length > budget[0]:
            raise _TooLarge()
        return [_zero(abi_type.item, budget) for _ in range(abi_type.length)]
    if kind == "tuple":
        return tuple(_zero(component, budget) for component in abi_type.components)
    if kind in ("uint", "int"):
        return 0
    return {"bool": False, "address": "0x" + "00" * 20, "string": "", "bytes": b"", "bytesN": b"\0" * abi_type.bits}[kind]


def _warm_codecs(inputs: list[str], outputs: list[str]) -> None:
    """Parses the template's types once (or builds eth_abi's codecs for types ours leaves to it), so every
    child of the zygote finds them made. The types are the enclave's, checked at load."""
    if abicodec.covers([*inputs, *outputs]):
        for t in (*inputs, *outputs):
            abicodec.parse(t)
        return
    from eth_abi.registry import registry

    registry.get_tuple_decoder(*inputs, strict=True)
    registry.get_tuple_encoder(*outputs)


def _preload(names: list[str]) -> None:
    """Imports, in the zygote, the heavy modules the enclave expects this template's jobs to use."""
    for name in names:
        if name in bundles.PRELOADS:
            importlib.import_module(name)


def _start_compiler(image: dict[str, Any], files: Mapping[str, bytes]) -> tuple[int, socket.socket, float]:
    """Forks a child, confined as a job is, that compiles the bundle's sources (`bundles.compile_bundle`)
    and sends the blob back: (its pid, our end, the time by which it must have finished).

    Compiling runs none of the template's code. The zygote keeps the blob unread; only its children
    read it, once confined (a parse of untrusted source, or of what that child sent, never happens
    in a process with privileges). Each job then skips compiling (about 0.5 ms for median-price).
    """
    limits = image["limits"]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = sandbox.fork_job()
    if pid == 0:
        try:
            ours.close()
            os.setsid()
            sandbox.confine(
                int(limits["memory_mb"]) * 1024 * 1024, max(1, int(limits["timeout_seconds"] + 0.999)), keep=(0, 1, 2, theirs.fileno())
            )
            theirs.sendall(bundles.compile_bundle(files))
        finally:
            os._exit(0)
    theirs.close()
    return pid, ours, time.monotonic() + float(limits["timeout_seconds"]) + _COMPILE_GRACE_SECONDS


def _collect_compiled(compiler: tuple[int, socket.socket, float]) -> bytes:
    """The compiler child's blob, or b"" if it failed, ran out of time or sent too much (then jobs compile themselves)."""
    pid, conn, deadline = compiler
    blob = bytearray()
    try:
        while chunk := _recv_by(conn, deadline):
            blob += chunk
            if len(blob) > _MAX_COMPILED_BYTES:
                raise OSError("compiled bundle too large")
    except OSError:
        try:
            os.killpg(pid, signal.SIGKILL)  # still running: it has not closed its end
        except OSError:
            pass
        return b""
    finally:
        conn.close()
    return bytes(blob)


_COMPILE_GRACE_SECONDS = 0.5
_MAX_COMPILED_BYTES = 4 * bundles.MAX_BUNDLE_BYTES


def _recv_by(conn: socket.socket, deadline: float) -> bytes:
    conn.settimeout(max(deadline - time.monotonic(), 0.001))
    return conn.recv(1 << 20)


def _zygote(control: socket.socket, server: int) -> None:
    """A zygote's loop: its template's bundle once, then one job socket in, one child pid out, until the enclave goes away.

    It never imports or runs the template: each child does, confined, so no job sees what another
    one's template code did. Its children inherit the checked bundle and warm codecs instead.
    """
    image = recv_frame(control, bounded=False)  # from the enclave: {template_id, bundle, limits, inputs, outputs}
    if sandbox.worker_uid_shared():
        # Without root, workers keep the zygote's uid, and RLIMIT_NPROC counts tasks per uid and user
        # namespace: in one of our own, an idle zygote or spare of another template costs a job nothing.
        sandbox.private_user_namespace()
        sandbox.die_with_parent(server)  # again, in case the new credentials cleared it
    try:
        packed = image.pop("bundle")

        def check_bundle() -> bytes:
            bundles.unpack(packed, image["template_id"])  # raises if it does not hash to the id
            return b""

        # In a child: keccak's imports (pycryptodome, cffi, threading) stay out of every job's fork.
        sandbox.in_child(check_bundle)
        files = bundles.decode(packed)
        _preload(list(image.get("preload", [])))
        _warm_codecs(image["inputs"], image["outputs"])
    except Exception as exc:  # a bundle that does not hash to its id: nothing of it may run
        send_frame(control, {"error": f"{type(exc).__name__}: {exc}"})
        return
    # Compiled while the first job runs (its child compiles for itself), collected before the first spare.
    compiler: tuple[int, socket.socket, float] | None = None
    compiled, first = b"", True
    send_frame(control, {"ready": True})
    gc.freeze()  # what exists now is never collected: children's collections do not write to (copy) these pages
    while True:
        kind, fds, _, _ = socket.recv_fds(control, 1, 1)
        if not fds:
            return  # control channel closed: the enclave dropped this zygote or stopped
        conn = socket.socket(fileno=fds[0])
        if compiler is not None and kind in b"SB":
            compiled, compiler = _collect_compiled(compiler), None
        pid = sandbox.fork_job()
        if pid == 0:
            control.close()
            try:
                if compiler is not None:
                    compiler[1].close()
                _child(conn, image, files, compiled, spare=kind in b"SB", rehearse=kind == b"S")
            finally:
                os._exit(1)
        conn.close()
        control.sendall(pid.to_bytes(8, "big"))
        if first:
            first, compiler = False, _start_compiler(image, files)


def serve(control: socket.socket) -> None:
    """The fork server loop: one zygote's control socket in, one zygote pid out, until the enclave goes away."""
    sandbox.prepare_server()  # raises (and so stops this server) where workers cannot be confined
    _alias_public_paths()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children (zygotes, and theirs) are reaped by the kernel
    sys.stdout = sys.stderr
    control.sendall(b"R")  # ready: imports done, namespaces prepared
    server = os.getpid()
    while True:
        _, fds, _, _ = socket.recv_fds(control, 1, 1)
        if not fds:
            return  # control channel closed: the enclave stopped
        conn = socket.socket(fileno=fds[0])
        pid = os.fork()  # in our PID namespace: the zygote forks its children into namespaces of their own
        if pid == 0:
            control.close()
            try:
                sandbox.die_with_parent(server)  # a zygote never outlives the fork server
                _zygote(conn, server)
            finally:
                os._exit(1)
        conn.close()
        control.sendall(pid.to_bytes(8, "big"))


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
