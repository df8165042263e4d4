"""Hostile templates: each attack ends in a signed error (or a defined result), the key never leaks,
and every containment layer of a worker is in force (docs/containment.md)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from coprocessor.node.pipeline import Node
from coprocessor_enclave import sandbox
from coprocessor_enclave.attestation import DevBackend
from coprocessor_enclave.enclave import Enclave, EnclaveConfig, SignedResult
from coprocessor_enclave.protocol import Request, Status, recover_signer, response_digest
from coprocessor_enclave.template import Template, encode_args, load_templates

from .conftest import TEST_TEMPLATES, Devnet

# Every hostile template and the status it must settle with. TemplateError from an attack means
# every attempt was refused (the template raises with the refusals); a success would return Ok.
HOSTILE: list[tuple[str, Status]] = [
    ("hostile-infinite-loop", Status.TIMEOUT),
    ("hostile-ignores-cpu-signal", Status.TIMEOUT),
    ("hostile-sleeps", Status.TIMEOUT),
    ("hostile-endless-output", Status.TIMEOUT),
    ("hostile-fork-bomb", Status.TEMPLATE_ERROR),
    ("hostile-threads", Status.TEMPLATE_ERROR),
    ("hostile-fd-exhaustion", Status.TEMPLATE_ERROR),
    ("hostile-memory-bomb", Status.RESOURCE_LIMIT),
    ("hostile-deep-recursion", Status.RESOURCE_LIMIT),
    ("hostile-stack-overflow", Status.TEMPLATE_ERROR),
    ("hostile-segfault", Status.TEMPLATE_ERROR),
    ("hostile-enormous-output", Status.RESOURCE_LIMIT),
    ("hostile-output-over-limit", Status.RESOURCE_LIMIT),
    ("hostile-wrong-type", Status.TEMPLATE_ERROR),
    ("hostile-forged-result", Status.TEMPLATE_ERROR),
    ("hostile-read-memory", Status.TEMPLATE_ERROR),
    ("hostile-read-environ", Status.TEMPLATE_ERROR),
    ("hostile-read-files", Status.TEMPLATE_ERROR),
    ("hostile-write-files", Status.TEMPLATE_ERROR),
    ("hostile-network", Status.TEMPLATE_ERROR),
    ("hostile-ctypes", Status.TEMPLATE_ERROR),
    ("hostile-signals", Status.TEMPLATE_ERROR),
    ("hostile-raise-limits", Status.TEMPLATE_ERROR),
    ("hostile-escapes-group", Status.TEMPLATE_ERROR),
    ("hostile-fd-tampering", Status.TEMPLATE_ERROR),
    ("hostile-exits-early", Status.TEMPLATE_ERROR),
    ("hostile-huge-exception", Status.TEMPLATE_ERROR),
    ("hostile-evil-exception", Status.TEMPLATE_ERROR),
    ("hostile-trickle", Status.TIMEOUT),
    ("hostile-call-flood", Status.RESOURCE_LIMIT),
    ("hostile-frame-flood", Status.RESOURCE_LIMIT),
    ("hostile-nested-frame", Status.TEMPLATE_ERROR),
    ("hostile-double-answer", Status.OK),
    ("hostile-log-flood", Status.OK),
    ("hostile-probe", Status.OK),
]
WORKER_MODULE = b"coprocessor_enclave.forkserver"
CANARY_NAME = "COPROCESSOR_TEST_CANARY"


def hostile_input(template: Template, target_pid: int, port: int) -> bytes:
    """The input a hostile template takes: the pid to attack (uint256), the port to reach (uint16)."""
    values = {"uint256": target_pid, "uint16": port}
    return encode(list(template.inputs), [values[t] for t in template.inputs])


def check_outcome(name: str, status: Status, output: bytes) -> None:
    """What the refusals must say, beyond the status, where a count or a limit shows containment."""
    reason = output.decode(errors="replace")
    if name == "hostile-fork-bomb":
        children = int(re.search(r"after (\d+) children", reason).group(1))  # type: ignore[union-attr]
        assert children < sandbox.PROCESSES, reason
    elif name == "hostile-threads":
        threads = int(re.search(r"refused after (\d+):", reason).group(1))  # type: ignore[union-attr]
        assert threads < sandbox.PROCESSES, reason
    elif name == "hostile-fd-exhaustion":
        assert int(re.search(r"refused at (\d+)", reason).group(1)) <= sandbox.OPEN_FILES, reason  # type: ignore[union-attr]
    elif name == "hostile-huge-exception":
        assert len(output) <= 256
    elif name == "hostile-call-flood":
        assert "more than 2048 capability calls" in reason, reason
    elif name == "hostile-frame-flood":
        assert "16 MiB a run" in reason, reason
    elif name == "hostile-double-answer":
        assert decode(["uint256"], output) == (1,), "a forked child answered for the job"
    elif name in ("hostile-signals", "hostile-read-memory", "hostile-read-environ", "hostile-ctypes"):
        assert "Permission denied" in reason or "not permitted" in reason or "No such process" in reason, reason


def worker_processes() -> list[int]:
    """Pids of template workers (forks of the fork server) that run as the unprivileged uid."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == sandbox.NOBODY and WORKER_MODULE in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_no_workers(timeout: float = 3.0) -> list[int]:
    """Worker processes still there after `timeout` (killed ones take a moment to go)."""
    deadline = time.monotonic() + timeout
    while (left := worker_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# ---------------------------------------------------------------------------------------- on-chain


def _enclave_pid() -> int:
    """The enclave process the `stack` fixture started: our child running `enclave serve`."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                if b"enclave\0serve" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
        except (OSError, IndexError):
            continue
    raise AssertionError("enclave process not found")


def test_hostileTemplates_settleOnChainWithTheirStatusAndTheEnclaveKeepsServing(stack: Devnet, node: Node) -> None:
    client = stack.user()
    enclave_pid = _enclave_pid()
    port = urlparse(stack.enclave_url).port or 0
    from_block = stack.w3.eth.block_number
    asked = {}
    for name, _ in HOSTILE:
        template = stack.template(name)
        request_id, _ = client.ask(template.template_id, hostile_input(template, enclave_pid, port))
        asked[request_id] = name

    settled = stack.settled(set(asked), from_block, timeout=90)

    got = {asked[rid]: status for rid, status in settled.items()}
    wrong = {name: (got.get(name), expected) for name, expected in HOSTILE if got.get(name) != expected}
    assert not wrong, f"(got, expected) per template: {wrong}"
    for request_id, name in asked.items():  # where the consumer could store the answer, check what it says
        stored = client.answer(request_id)
        if stored is not None:
            check_outcome(name, stored[0], stored[1])
    os.kill(enclave_pid, 0)  # still alive
    assert not wait_no_workers(), "worker processes outlived their jobs"
    median = stack.template("median-price")
    request_id, sent_at = client.ask(median.template_id, encode_args(median, [[100, 101, 102], 500]))
    assert client.wait(request_id, sent_at).status == Status.OK


# ----------------------------------------------------------------------------- in-process enclave


@pytest.fixture(scope="module")
def canary() -> str:
    """A secret in the enclave process's environment, which no worker may ever see."""
    return "canary-" + os.urandom(16).hex()


@pytest.fixture(scope="module")
def enclave(canary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    """An Enclave in this process, as `coprocessor enclave serve` builds it, with the canary in its environment."""
    templates = {tid: t for tid, t in load_templates([TEST_TEMPLATES]).items() if t.name.startswith("hostile-")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CANARY_NAME, canary)
        zero = "0x" + "00" * 19
        config = EnclaveConfig(31337, zero + "01", zero + "02", zero + "03")
        service = Enclave(config, templates, DevBackend(tmp_path_factory.mktemp("pki")))
        try:
            yield service
        finally:
            service.close()


def run_template(enclave: Enclave, name: str, target_pid: int = 0, port: int = 0) -> tuple[Request, bytes, SignedResult]:
    """Runs `name` in `enclave` for a made-up request; returns the request, its input and the signed result."""
    template = next(t for t in enclave.templates.values() if t.name == name)
    data = hostile_input(template, target_pid, port)
    request = Request(os.urandom(32), "0x" + "44" * 20, template.template_id, keccak(data), 200_000, 0, 2**40, 1, b"\0" * 32)
    return request, data, enclave.run(request, data)


def probe(enclave: Enclave) -> dict[str, Any]:
    """What hostile-probe reports about its worker."""
    _, _, result = run_template(enclave, "hostile-probe")
    assert result.status == Status.OK, result.output
    return json.loads(decode(["string"], result.output)[0])


def test_hostileTemplates_inProcessEnclave_neverLeakKeyOrEnvironmentAndSignEveryOutcome(enclave: Enclave, canary: str) -> None:
    with ThreadPoolExecutor(max_workers=2) as runners:  # the enclave's own concurrency
        outcomes = dict(
            zip((n for n, _ in HOSTILE), runners.map(lambda case: run_template(enclave, case[0], os.getpid(), 0), HOSTILE), strict=True)
        )

    key = enclave._key
    secrets_as_bytes = [key, key.hex().encode(), key.hex().upper().encode(), canary.encode()]
    wrong = {}
    for name, expected in HOSTILE:
        request, _, result = outcomes[name]
        if result.status != expected:
            wrong[name] = (result.status.name, result.output[:200])
        check_outcome(name, result.status, result.output)
        for secret in secrets_as_bytes:
            assert secret not in result.output, f"{name} leaked a secret"
        digest = response_digest(enclave.domain(), request, result.status, result.output)
        assert recover_signer(digest, result.signature) == enclave.address, f"{name}: not signed by the enclave key"
    assert not wrong, f"(got, output) per template: {wrong}"
    assert not wait_no_workers(), "worker processes outlived their jobs"


# ----------------------------------------------------------------------- each layer of a worker


@pytest.fixture(scope="module")
def report(enclave: Enclave) -> dict[str, Any]:
    """One probe of a worker's sandbox, shared by the layer tests."""
    return probe(enclave)


def test_worker_hasNoNetwork_noSocketButUnixAndANamespaceOfItsOwn(report: dict[str, Any], enclave: Enclave) -> None:
    # The syscall filter refuses every socket but AF_UNIX (netlink too: interfaces cannot even be
    # listed), before Landlock (TCP) or the empty namespace (UDP) would refuse.
    for attempt in ("interfaces", "loopback_up", "tcp_connect", "udp_send"):
        assert report[attempt] == "Operation not permitted", attempt
    # Behind it, the fork server, and so every worker, is in a network namespace of its own.
    server = enclave._pool._server
    assert server is not None
    assert os.readlink(f"/proc/{server.pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_worker_runsAsNobodyWithoutGroups(report: dict[str, Any]) -> None:
    assert os.geteuid() != 0 or report["uid"] == [sandbox.NOBODY] * 3
    assert 0 not in report["uid"] and 0 not in report["gid"]
    assert report["groups"] == []
    assert report["no_new_privs"] == 1
    assert report["dumpable"] == 0


def test_worker_cannotWriteAnywhere(report: dict[str, Any]) -> None:
    # Landlock refuses; a package under an unreachable directory (e.g. a clone in /root) sits on the
    # read-only mount that makes it reachable, which refuses first.
    assert report["write_package"] in ("Permission denied", "Read-only file system")
    assert report["write_tmp"] == "Permission denied"


def test_worker_readsItsBundleFromMemoryAndTheStdlibButNothingElse(report: dict[str, Any]) -> None:
    assert report["own_files_in_memory"] is True
    assert report["read_bundle_folder"] == "No such file or directory"  # its code came from memory, not a folder
    assert report["stdlib_import"] is None  # a module the fork server had not imported
    assert report["read_etc_passwd"] == "Permission denied"
    assert report["list_proc"] == "Permission denied"


def test_worker_runsUnderItsLimits(report: dict[str, Any]) -> None:
    memory = 256 * 1024 * 1024  # hostile-probe's manifest
    assert report["limits"] == {
        "RLIMIT_AS": [memory, memory],
        "RLIMIT_CPU": [1, 2],
        "RLIMIT_FSIZE": [0, 0],
        "RLIMIT_NOFILE": [sandbox.OPEN_FILES] * 2,
        "RLIMIT_NPROC": [sandbox.PROCESSES] * 2,
        "RLIMIT_CORE": [0, 0],
    }


def test_worker_seesNoSecretsAndOnlyItsOwnDescriptors(report: dict[str, Any], canary: str) -> None:
    assert CANARY_NAME not in report["environ"]
    assert canary not in json.dumps(report)
    assert len(report["open_fds"]) == 4  # stdin, stdout, stderr (the log pipe) and the job socket
    assert report["open_fds"][:3] == [0, 1, 2]


def test_worker_isInitOfItsOwnPidNamespace(report: dict[str, Any]) -> None:
    assert os.geteuid() != 0 or (report["pid"], report["ppid"]) == (1, 0)


def test_pool_restartsAForkServerThatWasKilled(enclave: Enclave) -> None:
    server = enclave._pool._server
    assert server is not None
    server.send_signal(signal.SIGKILL)
    server.wait(5)
    assert probe(enclave)["uid"] != [0, 0, 0]
    assert enclave._pool._server is not server


def test_pool_killsDescendantsThatLeftTheProcessGroup(enclave: Enclave) -> None:
    started = time.monotonic()
    _, _, result = run_template(enclave, "hostile-escapes-group")
    assert result.status == Status.TEMPLATE_ERROR and result.output.startswith(b"RuntimeError: left child")
    assert time.monotonic() - started < 1.0, "the job waited on a descendant holding its socket"
    assert not wait_no_workers(), "a descendant outlived its job"


# Both sides give up every capability: ptrace checks (which /proc/<pid>/environ goes through) then
# come down to the same uid and the target being dumpable, as between two unprivileged processes.
_DROP_CAPABILITIES = """
import ctypes
header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()
assert ctypes.CDLL(None).syscall(126, header, data) == 0  # capset: same uid, no capabilities
"""
_DUMPABLE_TARGET = (
    _DROP_CAPABILITIES
    + """
import sys
from coprocessor_enclave import sandbox
if sys.argv[1] == "protect":
    sandbox.protect_enclave()
print("ready", flush=True)
sys.stdin.read()
"""
)
_READER_WITHOUT_CAPABILITIES = (
    _DROP_CAPABILITIES
    + """
import sys
try:
    sys.stdout.write(open(f"/proc/{sys.argv[1]}/environ", "rb").read().decode(errors="replace"))
except OSError as exc:
    sys.stdout.write(f"refused: {exc.strerror}")
"""
)


@pytest.mark.parametrize("mode", ["protect", "control"])
def test_protectEnclave_sameUidWithoutCapabilitiesCannotReadItsEnvironment(mode: str, canary: str) -> None:
    env = {**os.environ, CANARY_NAME: canary}
    target = subprocess.Popen([sys.executable, "-c", _DUMPABLE_TARGET, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert target.stdout is not None and target.stdout.readline() == b"ready\n"
        seen = subprocess.run(
            [sys.executable, "-c", _READER_WITHOUT_CAPABILITIES, str(target.pid)], capture_output=True, text=True, check=True
        ).stdout
    finally:
        target.kill()
        target.wait()
    if mode == "protect":
        assert seen.startswith("refused: ") and canary not in seen, seen
    else:  # the same reader does see a process that did not protect itself
        assert canary in seen


def test_protectEnclave_refusesToStartWithoutLandlock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "landlock_abi", lambda: 0)
    with pytest.raises(sandbox.SandboxError, match="Landlock"):
        sandbox.protect_enclave()
