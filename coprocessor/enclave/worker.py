"""A template worker: one fresh process per run, started without the enclave key.

Reads one job (JSON) on stdin, runs the template and writes one JSON result on the
original stdout. The template's own prints go to stderr so they cannot forge a result.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
from typing import Any

from eth_abi import decode, encode

from coprocessor.protocol import Status
from coprocessor.sdk import Context, InvalidInput

_REASON_LIMIT = 256


def _apply_limits(limits: dict[str, Any]) -> None:
    """Lowers this process's limits before any template code runs."""
    memory = int(limits["memory_mb"]) * 1024 * 1024
    cpu = int(limits["timeout_seconds"]) + 1
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_REASON_LIMIT]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Runs one job and returns {"status", "output"} (output is hex ABI or a UTF-8 reason)."""
    try:
        inputs = decode(job["inputs"], bytes.fromhex(job["input"]))
    except Exception as exc:  # any decode failure is the requester's fault
        return {"status": Status.INVALID_INPUT, "reason": f"input does not decode as ({','.join(job['inputs'])}): {exc}"}

    sys.path.insert(0, job["path"])
    module_name, function_name = job["entry"].split(":")
    context = Context(**job["context"])
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(context, *inputs)
    except InvalidInput as exc:
        return {"status": Status.INVALID_INPUT, "reason": str(exc)[:_REASON_LIMIT]}
    except (MemoryError, RecursionError) as exc:
        return {"status": Status.RESOURCE_LIMIT, "reason": _reason(exc)}
    except Exception as exc:
        return {"status": Status.TEMPLATE_ERROR, "reason": _reason(exc)}

    values = result if len(job["outputs"]) > 1 else (result,)
    try:
        output = encode(job["outputs"], list(values))
    except Exception as exc:
        reason = f"output does not encode as ({','.join(job['outputs'])}): {_reason(exc)}"
        return {"status": Status.TEMPLATE_ERROR, "reason": reason[:_REASON_LIMIT]}
    return {"status": Status.OK, "output": output.hex()}


def main() -> None:
    """Entry point: `python -I -m coprocessor.enclave.worker`."""
    result_stream = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr
    job = json.loads(sys.stdin.read())
    context = job["context"]
    for key in ("request_id", "template_id"):
        context[key] = bytes.fromhex(context[key])
    _apply_limits(job["limits"])
    result = run_job(job)
    result_stream.write(json.dumps({**result, "status": int(result["status"])}))
    result_stream.flush()


if __name__ == "__main__":
    main()
