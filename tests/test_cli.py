"""The command line: it starts at once (loading it, as `--help` does, imports nothing that a command only
needs when it runs; benchmarks/cli.py times it), and it takes inputs too large for a command line."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_abi import encode
from eth_utils import keccak

from coprocessor.chain import Deployment, decode_revert
from coprocessor.cli import main
from coprocessor.dev import devnet

from .conftest import TEST_TEMPLATES, Devnet

# What made `coprocessor --help` take 1.3 s: web3 and eth-account (0.75 s), eth_abi, the node, the
# enclave client, the verified chain reads, dcap-qvl, the attestor's crypto.
HEAVY = (
    "web3",
    "eth_account",
    "eth_abi",
    "eth_keys",
    "coprocessor.node.pipeline",
    "coprocessor.node.enclave_client",
    "coprocessor.dev.devnet",
    "coprocessor_enclave.template",
    "coprocessor_enclave.chainread",
    "dcap_qvl",
    "cryptography.x509",
    "asyncio",
    "apscheduler",
)


def test_cliImport_withEveryCommandGroup_loadsNoneOfWhatCommandsRun() -> None:
    probe = (
        "import sys\n"
        "from coprocessor.cli import main\n"
        "import click\n"
        "context = click.Context(main)\n"
        "for name in main.list_commands(context):\n"  # what --help lists: every command and group loaded
        "    command = main.get_command(context, name)\n"
        "    for sub in getattr(command, 'commands', {}).values():\n"
        "        sub.get_short_help_str()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"the CLI's import loads {loaded}: import it inside the command that needs it"


def test_help_listsEveryCommand() -> None:
    shown = subprocess.run([sys.executable, "-m", "coprocessor", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("dev", "deploy", "node", "status", "request", "quote", "enclave", "attest", "template", "v4"):
        assert f"  {command} " in shown


def test_templateRun_inputFromAFileOrStdin_thousandsOfValues(tmp_path: Path) -> None:
    prices = [100_000 + (i % 7) for i in range(1024)]  # median-price's most; "Argument list too long" is the shell's limit, not ours
    path = tmp_path / "input.json"
    path.write_text(json.dumps([prices, 500]))
    from_file = CliRunner().invoke(main, ["template", "run", "median-price", "--input", f"@{path}", "--json"])
    assert from_file.exit_code == 0, from_file.output
    assert json.loads(from_file.stdout)["output"] == [100_003, 1024]
    from_stdin = CliRunner().invoke(main, ["template", "run", "median-price", "--input", "-", "--json"], input=path.read_text())
    assert from_stdin.exit_code == 0, from_stdin.output
    assert json.loads(from_stdin.stdout)["output"] == [100_003, 1024]


def test_templateRun_missingInputFile_oneLineError(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["template", "run", "median-price", "--input", f"@{tmp_path / 'nope.json'}"])
    assert result.exit_code == 2
    assert "cannot read" in result.output and "nope.json" in result.output
    assert "Traceback" not in result.output


def test_stateDir_optionOrEnvironment_everyCommandReadsItsFilesThere(tmp_path: Path) -> None:
    by_option = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "a"), "status"])
    assert by_option.exit_code == 1 and f"no journal at {tmp_path / 'a' / 'journal.sqlite'}" in by_option.output
    by_env = CliRunner().invoke(main, ["status"], env={"COPROCESSOR_STATE_DIR": str(tmp_path / "b")})
    assert by_env.exit_code == 1 and f"no journal at {tmp_path / 'b' / 'journal.sqlite'}" in by_env.output
    v4_help = " ".join(CliRunner().invoke(main, ["v4", "swap", "--help"]).output.split())
    assert "<state dir>/v4.json" in v4_help


def test_everyOption_isAnEnvironmentVariable() -> None:
    result = CliRunner().invoke(
        main, ["template", "run", "median-price", "--json"], env={"COPROCESSOR_TEMPLATE_RUN_INPUT_JSON": "[[1, 2, 3], 500]"}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"] == [2, 1]  # 1 and 3 lie 50 % from the median
    shown = "".join(CliRunner().invoke(main, ["template", "run", "--help"]).output.split())
    assert "COPROCESSOR_TEMPLATE_RUN_INPUT_JSON" in shown, "--help names each option's variable"


# ---------------------------------------------------------------------------- mistakes: one line each, never a traceback


def _record(path: Path, chain_id: int = 31337) -> Path:
    addresses = ["0x" + f"{i:040x}" for i in range(0xA1, 0xA8)]  # one per contract field of the record
    Deployment(chain_id, *addresses, 0).save(path)
    return path


def _one_line_error(result: Any, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_staleDeploymentRecord_publishRequestListAndNode_sayTheRecordIsNotOfThisChain(bare_anvil: str, tmp_path: Path) -> None:
    record = str(_record(tmp_path / "deployment.json"))
    common = ["--rpc", bare_anvil, "--deployment", record]
    _one_line_error(CliRunner().invoke(main, ["template", "publish", "median-price", *common]), "no TemplateRegistry at")
    _one_line_error(CliRunner().invoke(main, ["template", "list", *common]), "no TemplateRegistry at")  # not a quiet "local only"
    _one_line_error(CliRunner().invoke(main, ["request", "median-price", "[[1, 2], 500]", *common]), "no Coprocessor at")
    listed = CliRunner().invoke(main, ["template", "list", "--local-only", *common])
    assert listed.exit_code == 0 and "median-price" in listed.stdout


def test_deploymentRecordOfAnotherChain_request_saysWhichChains(tmp_path: Path) -> None:
    port = devnet.free_port()
    process = devnet.start_anvil(port, ["--chain-id", "999"])
    try:
        result = CliRunner().invoke(
            main,
            [
                "request",
                "median-price",
                "[[1, 2], 500]",
                "--rpc",
                f"http://127.0.0.1:{port}",
                "--deployment",
                str(_record(tmp_path / "d.json")),
            ],
        )
    finally:
        devnet.stop(process)
    _one_line_error(result, "the deployment record is for chain 31337, but the RPC serves chain 999")


def test_v4_wrongInputs_oneLineErrorsWithV4sOwnErrorsDecoded(bare_anvil: str, tmp_path: Path) -> None:
    state = ["--rpc", bare_anvil, "--state", str(tmp_path / "v4.json")]
    bad = CliRunner().invoke(main, ["v4", "swap", "0xdead", *state])
    assert bad.exit_code == 2 and "is not an address" in bad.output
    _one_line_error(CliRunner().invoke(main, ["v4", "swap", "0x" + "00" * 19 + "01", *state]), "no local v4 at")
    assert CliRunner().invoke(main, ["v4", "deploy", *state]).exit_code == 0
    unknown_pool = CliRunner().invoke(main, ["v4", "swap", "0x" + "00" * 18 + "dead", *state])
    _one_line_error(unknown_pool, "PoolNotInitialized(): no pool with hook")
    _one_line_error(CliRunner().invoke(main, ["v4", "pool", "0x" + "00" * 18 + "dead", *state]), "HookAddressNotValid(0x")
    missing = CliRunner().invoke(
        main,
        [
            "v4",
            "hook",
            "NoSuchHook",
            "--flags",
            "after-swap",
            "--template",
            "median-price",
            *state,
            "--deployment",
            str(_record(tmp_path / "d.json")),
        ],
    )
    _one_line_error(missing, "no Coprocessor at")


def test_decodeRevert_wrappedError_showsTheHookAndTheReasonItWraps() -> None:
    selector = keccak(b"WrappedError(address,bytes4,bytes,bytes)")[:4]
    inner = keccak(b"PoolNotInitialized()")[:4]
    hook = "0x" + "ab" * 20
    data = selector + encode(["address", "bytes4", "bytes", "bytes"], [hook, b"\x12\x34\x56\x78", inner, b""])
    assert decode_revert(data) == f"WrappedError: {hook} reverted in 0x12345678 with PoolNotInitialized()"


def test_request_unpublishedTemplate_saysToPublishIt(stack: Devnet, tmp_path: Path) -> None:
    stack.deployment.save(tmp_path / "deployment.json")
    result = CliRunner().invoke(
        main,
        [
            "request",
            "fee-echo",
            "[7]",
            "--rpc",
            stack.rpc_url,
            "--deployment",
            str(tmp_path / "deployment.json"),
            "--templates",
            str(TEST_TEMPLATES / "fee-echo"),
        ],
    )
    _one_line_error(result, "is not published on this chain: publish it first with `coprocessor template publish")


def test_templateNew_theScaffoldReadmesCommandsRunAsWritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    created = CliRunner().invoke(main, ["template", "new", "spread", "--dir", "my-templates"])
    assert created.exit_code == 0, created.output
    readme = (tmp_path / "my-templates" / "spread" / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("coprocessor template ")]
    assert len(commands) == 2
    run = CliRunner().invoke(main, shlex.split(commands[0])[1:])
    assert run.exit_code == 0 and "OK" in run.stdout, run.output
    tested = CliRunner().invoke(main, shlex.split(commands[1])[1:])  # pytest on the scaffold's own tests
    assert tested.exit_code == 0, tested.output
