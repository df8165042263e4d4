"""Output bombs through the real enclave path: a template forges an Ok result whose ABI offsets alias one
inner array (96 KB that would decode to billions of elements). The key holder must refuse it from the
layout alone, in time linear in its size, and keep answering honest requests meanwhile."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from eth_utils import keccak

from coprocessor.dev.toolchain import TEMPLATES_DIR
from coprocessor_enclave.attestation import DevBackend
from coprocessor_enclave.enclave import Enclave, EnclaveConfig, SignedResult
from coprocessor_enclave.errors import ManifestError
from coprocessor_enclave.protocol import Request, Status, recover_signer, response_digest
from coprocessor_enclave.template import encode_args, find_template, load_templates

from .conftest import TEST_TEMPLATES

BOMBS = ["hostile-pointer-bomb-2", "hostile-pointer-bomb-3", "hostile-pointer-bomb-deep"]
BOMB_BYTES = 96 * 1024
HONEST = "median-price"
HONEST_ARGS = [[100, 101, 102, 250], 500]
NOT_CANONICAL = b"output is not canonical ABI of the declared types: "
T = TypeVar("T")


def start_enclave(pki: Path, max_output_bytes: int) -> Enclave:
    """An Enclave in this process with the bombs and an honest template."""
    templates = load_templates([TEMPLATES_DIR / HONEST] + [TEST_TEMPLATES / name for name in BOMBS])
    zero = "0x" + "00" * 19
    config = EnclaveConfig(31337, zero + "01", zero + "02", zero + "03", max_output_bytes=max_output_bytes)
    return Enclave(config, templates, DevBackend(pki))


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    """The enclave of these tests: outputs up to 128 KiB pass its size check, so the bombs reach the layout walk."""
    service = start_enclave(tmp_path_factory.mktemp("pki"), 128 * 1024)
    try:
        yield service
    finally:
        service.close()


def within(seconds: float, call: Callable[[], T]) -> T:
    """`call()` in a daemon thread; fails, rather than hangs, if it has not returned after `seconds`."""
    outcome: list[T] = []
    worker = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still running after {seconds} s"
    return outcome[0]


def ask(enclave: Enclave, name: str, args: list[object] | None = None) -> tuple[Request, SignedResult, float]:
    """Runs `name` in `enclave` for a made-up request; the request, the signed result and the seconds it took."""
    template = find_template(enclave.templates, name)
    data = encode_args(template, args or [])
    request = Request(os.urandom(32), "0x" + "44" * 20, template.template_id, keccak(data), 200_000, 0, 2**40, 1, b"\0" * 32)
    started = time.monotonic()
    result = enclave.run(request, data)
    return request, result, time.monotonic() - started


def honest_seconds(enclave: Enclave) -> float:
    """Seconds one honest median-price request takes, checking its answer."""
    _, result, seconds = ask(enclave, HONEST, HONEST_ARGS)
    assert result.status == Status.OK, result.output
    return seconds


def assert_refused_in_time(enclave: Enclave, name: str, request: Request, result: SignedResult, seconds: float) -> None:
    """A signed TemplateError naming a non-canonical offset, within the template's own timeout."""
    template = find_template(enclave.templates, name)
    assert result.status == Status.TEMPLATE_ERROR, result.output[:200]
    assert result.output.startswith(NOT_CANONICAL + b"offset at byte "), result.output[:200]
    assert seconds < template.limits.timeout_seconds, f"{name} took {seconds:.2f} s"
    digest = response_digest(enclave.domain(), request, result.status, result.output)
    assert recover_signer(digest, result.signature) == enclave.address


@pytest.mark.parametrize("name", BOMBS)
def test_pointerBomb_endsInASignedTemplateErrorWithinItsTimeout(enclave: Enclave, name: str) -> None:
    template = find_template(enclave.templates, name)
    # The bomb fits every size limit: the layout walk, not the size check, is what refuses it.
    assert min(template.limits.output_bytes, enclave.config.max_output_bytes) > BOMB_BYTES
    request, result, seconds = within(template.limits.timeout_seconds + 1, lambda: ask(enclave, name))
    assert_refused_in_time(enclave, name, request, result, seconds)


def test_pointerBomb_overTheEnclavesSizeLimit_isRefusedForItsSizeFirst(tmp_path: Path) -> None:
    service = start_enclave(tmp_path, EnclaveConfig.max_output_bytes)  # the default, 16 KiB
    try:
        for name in BOMBS:
            _, result, seconds = within(3, lambda name=name: ask(service, name))
            assert result.status == Status.RESOURCE_LIMIT, result.output[:200]
            assert re.fullmatch(rb"output of 98\d{3} bytes exceeds the limit of 16384", result.output), result.output[:200]
            assert seconds < 1
    finally:
        service.close()


class Attack:
    """Sends the bombs one after another from a thread, from entering the `with` block until leaving it."""

    def __init__(self, enclave: Enclave) -> None:
        self.refusals: list[tuple[str, Request, SignedResult, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(enclave,), daemon=True)

    def __enter__(self) -> Attack:
        self._thread.start()
        started = time.monotonic()
        while not self.refusals and time.monotonic() - started < 0.5:  # one bomb through, or one stuck in its check
            time.sleep(0.002)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def stopped(self) -> bool:
        """False while a bomb is still being checked."""
        return not self._thread.is_alive()

    def _run(self, enclave: Enclave) -> None:
        while not self._stop.is_set():
            for name in BOMBS:
                self.refusals.append((name, *ask(enclave, name)))


# Sharing two cores with a stream of bombs, each a process forked and confined for its job, costs an
# honest request a few milliseconds whatever the key holder does. With warm runs an idle request takes
# 5-7 ms back to back here (10-12 ms before), so a bare ratio measured that sharing, not the key holder;
# the 10 ms allowance keeps the test on what it guards against: bombs decoded in the key holder (153 ms).
_SHARING_SECONDS = 0.010


def test_honestRequest_underABombAttack_answersWithinTwiceItsIdleTimeAndTenMilliseconds(enclave: Enclave) -> None:
    honest_seconds(enclave)  # warm up
    idle: list[float] = []
    attacked: list[float] = []
    attacks: list[Attack] = []
    for _ in range(3):  # idle and attacked in turns, so a change in the machine's load hits both alike
        idle += [honest_seconds(enclave) for _ in range(5)]
        with Attack(enclave) as attack:
            attacked += [honest_seconds(enclave) for _ in range(5)]
        attacks.append(attack)
        if not attack.stopped:
            break  # it holds an enclave slot: another attack would leave honest requests none

    idle_median, attacked_median = statistics.median(idle), statistics.median(attacked)
    assert attacked_median <= 2 * idle_median + _SHARING_SECONDS, (
        f"honest median {attacked_median * 1000:.1f} ms under attack, {idle_median * 1000:.1f} ms idle"
    )
    assert all(attack.stopped for attack in attacks), "a bomb was still being checked 10 s after its attack stopped"
    refusals = [refusal for attack in attacks for refusal in attack.refusals]
    assert len(refusals) >= 3 * len(BOMBS), f"only {len(refusals)} bombs ran during the honest requests"
    for name, request, result, seconds in refusals:
        assert_refused_in_time(enclave, name, request, result, seconds)


def test_manifest_declaringATypeTooDeep_isRefusedAtLoad(tmp_path: Path) -> None:
    folder = tmp_path / "hostile-pointer-bomb-deeper"
    shutil.copytree(TEST_TEMPLATES / "hostile-pointer-bomb-deep", folder)
    manifest = folder / "template.toml"
    too_deep = "uint256" + "[]" * 9
    manifest.write_text(manifest.read_text().replace('outputs = ["uint256[][][][][][][][]"]', f'outputs = ["{too_deep}"]'))
    with pytest.raises(ManifestError) as refusal:
        load_templates([tmp_path])
    assert str(refusal.value) == (f"{manifest}: outputs[0]: ABI type '{too_deep}' nests 9 levels of arrays and tuples, over the limit of 8")
