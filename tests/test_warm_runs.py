"""Warm runs: a zygote per template forks each job's process, usually before the job arrives, and still
no state crosses jobs, no job reaches a zygote or another worker, and the pool stays bounded
(docs/containment.md, "Warm runs")."""

from __future__ import annotations

import importlib
import json
import marshal
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from coprocessor.dev.toolchain import TEMPLATES_DIR
from coprocessor_enclave import bundles
from coprocessor_enclave.attestation import DevBackend
from coprocessor_enclave.enclave import Enclave, EnclaveConfig, SignedResult
from coprocessor_enclave.errors import EnclaveError
from coprocessor_enclave.pool import TemplateImage, Warmth, WorkerPool
from coprocessor_enclave.protocol import Request, Status
from coprocessor_enclave.template import Template, encode_args, load_templates

from .conftest import TEST_TEMPLATES

NAMES = ("warm-marks", "warm-signals", "hostile-segfault", "hostile-sleeps", "hostile-signals")
FRESH = {
    "runs": 1,
    "imports": 1,
    "imported_in_this_process": True,
    "sdk_mark": None,
    "json_mark": None,
    "compiled_ahead": True,
    "costly_modules": [],
}


def _enclave(folders: list[Path], tmp: Path, **kwargs: Any) -> Enclave:
    zero = "0x" + "00" * 19
    return Enclave(EnclaveConfig(31337, zero + "01", zero + "02", zero + "03"), load_templates(folders), DevBackend(tmp / "pki"), **kwargs)


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    """An in-process Enclave, as `coprocessor-enclave serve` builds it, with median-price and the templates above."""
    service = _enclave([TEMPLATES_DIR / "median-price", *(TEST_TEMPLATES / name for name in NAMES)], tmp_path_factory.mktemp("warm"))
    try:
        yield service
    finally:
        service.close()


def template(enclave: Enclave, name: str) -> Template:
    return next(t for t in enclave.templates.values() if t.name == name)


def run(enclave: Enclave, name: str, args: list[Any] | None = None) -> SignedResult:
    """Runs `name` on JSON-style `args` for a made-up request."""
    chosen = template(enclave, name)
    data = encode_args(chosen, args or [])
    request = Request(os.urandom(32), "0x" + "44" * 20, chosen.template_id, keccak(data), 200_000, 0, 2**40, 1, b"\0" * 32)
    return enclave.run(request, data)


def text(result: SignedResult) -> str:
    assert result.status == Status.OK, (result.status.name, result.output)
    return str(decode(["string"], result.output)[0])


def alive(pid: int | None) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie)."""
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def warmth(enclave: Enclave, name: str) -> Warmth:
    """What is warm of template `name`."""
    return enclave._pool.warm().get(template(enclave, name).id_hex, Warmth(None, (), 0, 0))


def warm(enclave: Enclave, name: str) -> tuple[int | None, int | None]:
    """(zygote pid, pid of the spare next to serve) of template `name`."""
    state = warmth(enclave, name)
    return state.zygote, state.spares[0] if state.spares else None


def wait_warm(enclave: Enclave, name: str, other_than: int | None = None, timeout: float = 10.0) -> tuple[int, int]:
    """(zygote pid, pid of the spare next to serve) once both are alive, and that spare is not `other_than`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        zygote, spare = warm(enclave, name)
        if zygote is not None and spare is not None and spare != other_than and alive(zygote) and alive(spare):
            return zygote, spare
        time.sleep(0.02)
    raise AssertionError(f"no live zygote and spare for {name}: {warmth(enclave, name)}")


def settled_spares(enclave: Enclave, name: str) -> tuple[int, ...]:
    """The spares of `name` once the pool has stopped forking them (unchanged for 0.2 s)."""
    seen, since = warmth(enclave, name).spares, time.monotonic()
    while time.monotonic() - since < 0.2:
        time.sleep(0.02)
        now = warmth(enclave, name).spares
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


# ------------------------------------------------------------------------------------- isolation


def test_jobs_neverSeeAnEarlierJobsMarks_thoughOneZygoteServesThemAll(enclave: Enclave) -> None:
    zygotes = set()
    for i in range(4):
        found = json.loads(text(run(enclave, "warm-marks")))
        # The first job's process compiles for itself while the zygote's compiler child works.
        assert found == {**FRESH, "compiled_ahead": found["compiled_ahead"] if i == 0 else True}
        zygotes.add(wait_warm(enclave, "warm-marks")[0])
    assert len(zygotes) == 1, "the runs did not share a zygote: nothing was warm"


def test_job_cannotKillItsZygoteOtherZygotesSparesOrTheForkServer(enclave: Enclave) -> None:
    run(enclave, "warm-marks")
    run(enclave, "warm-signals", [[]])
    marks_zygote, marks_spare = wait_warm(enclave, "warm-marks")
    own_zygote, _ = wait_warm(enclave, "warm-signals")
    server = enclave._pool._server
    assert server is not None
    targets = [own_zygote, marks_zygote, marks_spare, server.pid]

    outcomes = json.loads(text(run(enclave, "warm-signals", [targets])))

    assert set(outcomes.values()) <= {"No such process", "Operation not permitted"}, outcomes
    assert all(alive(pid) for pid in targets)
    # What a job can see at all (hostile-signals tries every pid it can address, and its parent)
    assert run(enclave, "hostile-signals", [own_zygote]).status == Status.TEMPLATE_ERROR
    assert all(alive(pid) for pid in targets)
    assert warm(enclave, "warm-marks") == (marks_zygote, marks_spare)
    assert json.loads(text(run(enclave, "warm-marks"))) == FRESH


def test_crashingOrHangingJob_leavesItsZygoteServing(enclave: Enclave) -> None:
    run(enclave, "hostile-segfault")
    zygote, _ = wait_warm(enclave, "hostile-segfault")
    for _ in range(2):
        result = run(enclave, "hostile-segfault")
        assert result.status == Status.TEMPLATE_ERROR and result.output.startswith(b"worker died without a result")
        assert wait_warm(enclave, "hostile-segfault")[0] == zygote
    run(enclave, "hostile-sleeps")
    zygote, _ = wait_warm(enclave, "hostile-sleeps")
    assert run(enclave, "hostile-sleeps").status == Status.TIMEOUT
    assert wait_warm(enclave, "hostile-sleeps")[0] == zygote


# ------------------------------------------------------------------------------------- warm path


def test_bundleFinder_runsTheCompiledSources_orCompilesThemWhenTheBlobIsUnusable() -> None:
    files = {"pkg/__init__.py": b"", "pkg/mod.py": b"VALUE = 7\n", "broken.py": b"def (:\n"}
    compiled = bundles.compile_bundle(files)
    assert set(marshal.loads(compiled)) == {"pkg/__init__.py", "pkg/mod.py"}  # a syntax error is left to the job
    foreign = marshal.dumps({"pkg/mod.py": marshal.dumps(compile("VALUE = 666", "/elsewhere.py", "exec"))})
    for blob, expected in ((compiled, 7), (b"not marshal", 7), (foreign, 7)):
        finder = bundles.BundleFinder(files, blob)
        sys.meta_path.insert(0, finder)
        try:
            assert importlib.import_module("pkg.mod").VALUE == expected
            with pytest.raises(SyntaxError):
                importlib.import_module("broken")
        finally:
            sys.meta_path.remove(finder)
            for name in ("pkg", "pkg.mod", "broken"):
                sys.modules.pop(name, None)


def test_secondRun_isServedByTheSpareItsZygoteForkedBeforeIt(enclave: Enclave) -> None:
    args = [[101, 99, 100, 102, 98], 500]
    assert run(enclave, "median-price", args).status == Status.OK
    zygote, spare = wait_warm(enclave, "median-price")
    # Waiting for its job, the spare has not dropped root: it is not a task of the worker uid (RLIMIT_NPROC).
    assert os.geteuid() != 0 or uid_of(spare) == 0
    before = warmth(enclave, "median-price")

    result = run(enclave, "median-price", args)

    assert result.status == Status.OK and decode(["uint256", "uint16"], result.output) == (100, 5)
    after = warmth(enclave, "median-price")
    assert (after.from_spare, after.on_demand) == (before.from_spare + 1, before.on_demand), "the spare did not serve the job"
    assert wait_gone(spare), "the spare outlived its job"
    assert wait_warm(enclave, "median-price", other_than=spare)[0] == zygote  # the same zygote forked the next one


def test_killedZygoteOrSpare_isReplacedAndJobsStillRun(enclave: Enclave) -> None:
    args = [[101, 99, 100, 102, 98], 500]
    run(enclave, "median-price", args)
    zygote, spare = wait_warm(enclave, "median-price")
    os.kill(zygote, signal.SIGKILL)
    assert wait_gone(zygote)

    assert run(enclave, "median-price", args).status == Status.OK  # its spare, forked before the zygote died
    assert run(enclave, "median-price", args).status == Status.OK
    new_zygote, new_spare = wait_warm(enclave, "median-price")
    assert new_zygote != zygote

    spares = settled_spares(enclave, "median-price")  # one, or two after the back-to-back runs above
    for spare in spares:
        os.kill(spare, signal.SIGKILL)
    assert all(wait_gone(spare) for spare in spares) and new_spare in spares
    on_demand = warmth(enclave, "median-price").on_demand
    assert run(enclave, "median-price", args).status == Status.OK
    assert warmth(enclave, "median-price").on_demand == on_demand + 1  # the lost spare was noticed, not handed the job
    assert wait_warm(enclave, "median-price")[0] == new_zygote


def test_pool_keepsAtMostItsBoundOfTemplatesWarm(tmp_path: Path) -> None:
    names = ["warm-marks", "hostile-segfault", "median-price"]
    folders = [TEST_TEMPLATES / "warm-marks", TEST_TEMPLATES / "hostile-segfault", TEMPLATES_DIR / "median-price"]
    service = _enclave(folders, tmp_path, warm_templates=2)
    try:
        ids = {name: template(service, name).id_hex for name in names}
        run(service, "warm-marks")
        first = wait_warm(service, "warm-marks")
        warmth_before = warmth(service, "warm-marks").spares
        run(service, "hostile-segfault")
        run(service, "median-price", [[1], 0])
        assert list(service._pool.warm()) == [ids["hostile-segfault"], ids["median-price"]]
        assert wait_gone(first[0]) and all(wait_gone(pid) for pid in warmth_before), (
            "the least recently run template's processes outlived it"
        )
        found = json.loads(text(run(service, "warm-marks")))  # a new zygote: this job compiles for itself
        assert found == {**FRESH, "compiled_ahead": found["compiled_ahead"]}
        assert list(service._pool.warm()) == [ids["median-price"], ids["warm-marks"]]
    finally:
        service.close()


def test_zygote_refusesABundleThatDoesNotHashToItsId() -> None:
    folder = TEMPLATES_DIR / "median-price"
    genuine = load_templates([folder])
    chosen = next(iter(genuine.values()))
    files = dict(chosen.files)
    files["main.py"] = files["main.py"].replace(b"return median(accepted)", b"return 666 + median(accepted)")
    image = TemplateImage(chosen.id_hex, bundles.pack(files), chosen.inputs, chosen.outputs, 256, 2.0)
    job = {
        "template_id": chosen.id_hex,
        "entry": chosen.entry,
        "inputs": list(chosen.inputs),
        "outputs": list(chosen.outputs),
        "input": encode(list(chosen.inputs), [[1], 0]).hex(),
        "limits": {"memory_mb": 256, "timeout_seconds": 2.0, "output_bytes": 1024},
        "context": {
            "request_id": "00" * 32,
            "consumer": "0x" + "44" * 20,
            "template_id": chosen.id_hex[2:],
            "anchor_block": 0,
            "anchor_hash": "00" * 32,
            "chain_id": 1,
            "deadline": 2**40,
            "config": {},
        },
    }
    pool = WorkerPool()
    try:
        with pytest.raises(EnclaveError, match="refused its bundle.*does not hash to its template id"):
            pool.run(image, job, timeout=2.0)
    finally:
        pool.close()
