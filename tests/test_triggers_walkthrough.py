"""docs/triggers.md's walkthrough, as a new user runs it: `coprocessor dev` in one shell, then a scheduled job
(`subscription create`, `show`) and an HTTP job (`sponsor deposit`, `sponsor add-key`, `job submit`) from
another, through the public CLI. The schedule is `--every 4s` rather than a cron minute, to keep it short."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from coprocessor.chain import connect, contract
from coprocessor.cli import main
from coprocessor.dev import devnet
from coprocessor.dev.toolchain import PROJECT_ROOT

RUNS = 2


@pytest.fixture(scope="module")
def dev(contracts_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`coprocessor dev --templates tests/templates` on free ports; the environment the second shell needs."""
    state = tmp_path_factory.mktemp("walkthrough")
    port, jobs_port = devnet.free_port(), devnet.free_port()
    log = state / "dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPROCESSOR_")}
    command = [sys.executable, "-m", "coprocessor", "--state-dir", str(state), "dev", "--templates", "tests/templates"]
    command += ["--port", str(port), "--quote-port", "0", "--jobs-port", str(jobs_port)]
    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=stderr, env=env, preexec_fn=devnet.die_with_parent
        )
    try:
        deadline = time.monotonic() + 120
        while "serving requests" not in log.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield {
            "COPROCESSOR_STATE_DIR": str(state),
            "COPROCESSOR_RPC": f"http://127.0.0.1:{port}",
            "COPROCESSOR_JOBS_URL": f"http://127.0.0.1:{jobs_port}",
        }
    finally:
        devnet.stop(process)


def _run(env: dict[str, str], *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def test_walkthrough_scheduledJob_runsOnItsSchedule(dev: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    _run(dev, "template", "publish", "tests/templates/run-echo")
    created = _run(
        dev,
        "subscription",
        "create",
        "run-echo",
        "--every",
        "4s",
        "--runs",
        str(RUNS),
        "--input",
        "0x68656c6c6f",
        "--templates",
        "tests/templates",
    )
    sub_id = re.search(r"subscription (\d+):", created)
    assert sub_id is not None, created
    deadline, shown = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        shown = json.loads(_run(dev, "subscription", "show", sub_id.group(1), "--json"))
        if shown["runsStarted"] == RUNS and shown["nextRun"] is None:
            break
        time.sleep(1)
    assert shown["runsStarted"] == RUNS and shown["nextRun"] is None, shown
    w3 = connect(dev["COPROCESSOR_RPC"])
    record = json.loads((Path(dev["COPROCESSOR_STATE_DIR"]) / "deployment.json").read_text())
    subscriptions = contract(w3, "Subscriptions", record["subscriptions"])
    deadline = time.monotonic() + 30
    while len(settled := subscriptions.events.RunSettled().get_logs(from_block=0)) < RUNS and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sorted(int(e.args.runIndex) for e in settled) == list(range(RUNS))
    assert all(e.args.status == 0 and e.args.consumerSucceeded for e in settled)


def test_walkthrough_httpJob_landsWithAnApiKeyAndNotWithout(dev: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    _run(dev, "sponsor", "deposit", str(10**18))
    added = _run(dev, "sponsor", "add-key", "partner", "--allowance", str(10**17))
    api_key = added.strip().splitlines()[-1]
    assert api_key.startswith("cpk_"), added
    submitted = _run({**dev, "COPROCESSOR_API_KEY": api_key}, "job", "submit", "median-price", "[[100, 101, 250], 500]")
    assert "settled: OK (100, 2)" in submitted, submitted  # 250 is more than 5% off: dropped
    refused = _run({**dev, "COPROCESSOR_API_KEY": "cpk_wrong"}, "job", "submit", "median-price", "[[1], 0]", ok=False)
    assert "HTTP 401" in refused and "unknown API key" in refused
