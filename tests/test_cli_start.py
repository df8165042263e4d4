"""The command line starts at once: loading it (as `--help` does, every command group included) imports
nothing that a command only needs when it runs. benchmarks/cli.py times it."""

from __future__ import annotations

import subprocess
import sys

# What made `coprocessor --help` take 1.3 s: web3 and eth-account (0.75 s), eth_abi, the node, the
# enclave client, the verified chain reads, dcap-qvl, the attestor's crypto.
HEAVY = ("web3", "eth_account", "eth_abi", "eth_keys", "coprocessor.node", "coprocessor.enclave_client", "coprocessor.devnet",
         "coprocessor_enclave.template", "coprocessor_enclave.chainread", "dcap_qvl", "cryptography.x509", "asyncio", "apscheduler")


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
