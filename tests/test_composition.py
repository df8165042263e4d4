"""Templates that call templates (`ctx.call`), in a real enclave: declared callees only, each in a worker of its
own under its own limits and within its caller's time, at most 3 levels and 16 calls deep, no cycles; the
signed response commits to the templates the calls ran to Ok."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from coprocessor_enclave.attestation import DevBackend
from coprocessor_enclave.enclave import MAX_CALL_DEPTH, MAX_CALLS_PER_RUN, Enclave, EnclaveConfig, SignedResult
from coprocessor_enclave.errors import ManifestError
from coprocessor_enclave.protocol import Request, Status, recover_signer, response_digest
from coprocessor_enclave.template import Template, load_template, load_templates

DOUBLE = """
def run(ctx, x):
    return x * 2
"""
# Calls ctx.config["callee"] on its input (or, with "times", that many times) and adds one; a failed call fails it.
RELAY = """
from eth_abi import decode, encode

def run(ctx, x):
    total = 0
    for _ in range(ctx.config.get("times", 1)):
        result = ctx.call(ctx.config["callee"], encode(["uint256"], [x]))
        if not result.ok:
            raise RuntimeError(f"call failed ({result.status}): {result.output.decode(errors='replace')}")
        total += decode(["uint256"], result.output)[0]
    return total + 1
"""
SELF_CALL = """
from eth_abi import encode

def run(ctx, x):
    return ctx.call(ctx.template_id, encode(["uint256"], [x])).status
"""
READS_CHAIN = """
def run(ctx, x):
    return ctx.chain.balance("0x" + "11" * 20)
"""
# Calls a chain reader and falls back to 7 whatever went wrong: a lying host must still not make this Ok.
FALLBACK = """
from eth_abi import decode, encode

def run(ctx, x):
    result = ctx.call(ctx.config["callee"], encode(["uint256"], [x]))
    return decode(["uint256"], result.output)[0] if result.ok else 7
"""
SPIN = """
def run(ctx, x):
    while True:
        pass
"""


def _write(
    root: Path, name: str, code: str, calls: Sequence[bytes] = (), config: str = "", timeout: float = 5, callable_: bool = True
) -> Template:
    folder = root / name
    folder.mkdir()
    (folder / "main.py").write_text(code)
    listed = ", ".join(f'"0x{c.hex()}"' for c in calls)
    (folder / "template.toml").write_text(
        f'name = "{name}"\nversion = "1"\ndescription = "composition test"\nentry = "main:run"\n'
        f'inputs = ["uint256"]\noutputs = ["uint256"]\ncalls = [{listed}]\ncallable = {str(callable_).lower()}\n'
        f"[limits]\ntimeout_seconds = {timeout}\nmemory_mb = 256\n[config]\n{config}\n"
    )
    return load_template(folder)


def _relay(root: Path, name: str, callee: Template, extra: str = "", timeout: float = 5) -> Template:
    return _write(root, name, RELAY, [callee.template_id], f'callee = "{callee.id_hex}"\n{extra}', timeout)


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Enclave, dict[str, Template]]]:
    root = tmp_path_factory.mktemp("composed")
    named: dict[str, Template] = {}
    named["double"] = _write(root, "double", DOUBLE)
    named["spin"] = _write(root, "spin", SPIN, timeout=30)
    named["plus-one"] = _relay(root, "plus-one", named["double"])
    # A chain of relays: depth-k calls k-1 levels of relays and then double.
    below = named["double"]
    for depth in range(1, MAX_CALL_DEPTH + 2):
        below = named[f"depth-{depth}"] = _relay(root, f"depth-{depth}", below)
    named["many"] = _relay(root, "many", named["double"], f"times = {MAX_CALLS_PER_RUN + 1}")
    named["some"] = _relay(root, "some", named["double"], f"times = {MAX_CALLS_PER_RUN}")
    named["undeclared"] = _write(root, "undeclared", RELAY, [], f'callee = "{named["double"].id_hex}"')
    named["self"] = _write(root, "self", SELF_CALL)
    named["impatient"] = _relay(root, "impatient", named["spin"], timeout=2)
    named["private"] = _write(root, "private", DOUBLE, callable_=False)
    named["uses-private"] = _relay(root, "uses-private", named["private"])
    named["reads-chain"] = _write(root, "reads-chain", READS_CHAIN)
    reader = named["reads-chain"]
    named["fallback"] = _write(root, "fallback", FALLBACK, [reader.template_id], f'callee = "{reader.id_hex}"')
    zero = "0x" + "00" * 19
    config = EnclaveConfig(31337, zero + "01", zero + "02", zero + "03")
    enclave = Enclave(config, load_templates([root]), DevBackend(tmp_path_factory.mktemp("pki")))
    try:
        yield enclave, named
    finally:
        enclave.close()


def _run(enclave: Enclave, template: Template, x: int) -> tuple[Request, SignedResult]:
    data = encode(["uint256"], [x])
    request = Request(os.urandom(32), "0x" + "44" * 20, template.template_id, keccak(data), 200_000, 0, 2**40, 1, b"\0" * 32)
    return request, enclave.run(request, data)


def test_call_declaredCallee_okAndTheResponseCommitsToIt(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    request, result = _run(enclave, named["plus-one"], 20)
    assert result.status == Status.OK, result.output
    assert decode(["uint256"], result.output)[0] == 41
    assert result.calls == (named["double"].template_id,)
    digest = response_digest(enclave.domain(), request, result.status, result.output, result.calls)
    assert recover_signer(digest, result.signature) == enclave.address
    # The plain Response digest is not what was signed: a node cannot drop the call tree.
    assert recover_signer(response_digest(enclave.domain(), request, result.status, result.output), result.signature) != enclave.address


def test_call_threeLevelsDeep_okAndEveryLevelInTheTree(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    _, result = _run(enclave, named[f"depth-{MAX_CALL_DEPTH}"], 1)
    assert result.status == Status.OK, result.output
    assert decode(["uint256"], result.output)[0] == 2 + MAX_CALL_DEPTH
    expected = [named["double"]] + [named[f"depth-{d}"] for d in range(1, MAX_CALL_DEPTH)]
    assert result.calls == tuple(t.template_id for t in expected)  # in the order the calls ended: innermost first


def test_call_oneLevelTooDeep_refusedAndNothingCommitted(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    _, result = _run(enclave, named[f"depth-{MAX_CALL_DEPTH + 1}"], 1)
    assert result.status == Status.TEMPLATE_ERROR
    assert f"calls nest at most {MAX_CALL_DEPTH} deep".encode() in result.output
    assert result.calls == ()


def test_call_moreThanTheCallsPerRun_refused(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    _, result = _run(enclave, named["some"], 1)
    assert result.status == Status.OK and len(result.calls) == MAX_CALLS_PER_RUN
    _, result = _run(enclave, named["many"], 1)
    assert result.status == Status.TEMPLATE_ERROR
    assert f"at most {MAX_CALLS_PER_RUN} calls".encode() in result.output


def test_call_undeclaredOrItself_refused(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    _, result = _run(enclave, named["undeclared"], 1)
    assert result.status == Status.TEMPLATE_ERROR and b"does not declare" in result.output
    _, result = _run(enclave, named["self"], 1)
    assert result.status == Status.TEMPLATE_ERROR and b"call cycle" in result.output


def test_call_calleeNotCallable_refused(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    _, result = _run(enclave, named["uses-private"], 1)
    assert result.status == Status.TEMPLATE_ERROR and b"is not callable" in result.output


def test_call_callerEndsInError_theCalleesThatRanOkStillCommitted(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    _, result = _run(enclave, named["many"], 1)  # 16 Ok calls, then a refused one: the caller fails
    assert result.status == Status.TEMPLATE_ERROR
    assert result.calls == (named["double"].template_id,) * MAX_CALLS_PER_RUN


def test_call_spinningCallee_boundedByTheCallersTime(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    started = time.monotonic()
    _, result = _run(enclave, named["impatient"], 1)
    assert result.status in (Status.TIMEOUT, Status.TEMPLATE_ERROR), result
    assert time.monotonic() - started < 8  # the caller's 2 s (and grace), not the callee's 30 s


def test_call_calleesChainDataFailed_rootIsChainDataInvalidWhateverTheCallerDid(composed: tuple[Enclave, dict[str, Template]]) -> None:
    enclave, named = composed
    _, alone = _run(enclave, named["reads-chain"], 1)  # no chain RPC here: its chain data cannot be verified
    assert alone.status == Status.CHAIN_DATA_INVALID
    _, result = _run(enclave, named["fallback"], 1)
    assert result.status == Status.CHAIN_DATA_INVALID, result  # not Ok(7)
    assert b"a called template's chain data" in result.output and result.calls == ()


def test_manifest_badCalls_refused(tmp_path: Path) -> None:
    for calls in ('["0x1234"]', '"0x' + "ab" * 32 + '"', "[" + ", ".join(['"0x' + "ab" * 32 + '"'] * 9) + "]"):
        folder = tmp_path / f"bad{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "main.py").write_text(DOUBLE)
        (folder / "template.toml").write_text(
            f'name = "bad"\nversion = "1"\ndescription = "x"\nentry = "main:run"\ninputs = ["uint256"]\noutputs = ["uint256"]\ncalls = {calls}\n'
        )
        with pytest.raises(ManifestError, match="`calls` must list"):
            load_template(folder)
