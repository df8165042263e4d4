"""The `coprocessor` command line: one module per command group, options shared (`options.py`).

Every command module imports only click and light modules at import time; what a command runs
(web3, the node, the enclave client, eth_abi) is imported inside it, so `--help` and a mistyped
command answer at once (`tests/test_cli.py`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import config
from ..errors import CoprocessorError
from .attest import attest_group
from .dev import deploy, dev
from .enclave import enclave
from .keys import encrypt, keys_group, secrets_group
from .node import node_command, status
from .requests import quote, request
from .template import template_group
from .triggers import job_group, sponsor_group, subscription_group
from .v4 import v4_group


class _Cli(click.Group):
    """Turns errors into one clear line and exit code 1 instead of a traceback (`COPROCESSOR_DEBUG=1` shows it)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors already are one line
        except CoprocessorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except Exception as exc:  # a library's error we did not word: still one line, and how to see more
            if os.environ.get("COPROCESSOR_DEBUG"):
                raise
            text = " ".join(str(exc).split())[:300] or "no message"
            click.echo(f"error: {type(exc).__name__}: {text} (COPROCESSOR_DEBUG=1 shows the traceback)", err=True)
            sys.exit(1)


def _use_state_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        config.use_state_dir(value)


@click.group(cls=_Cli, context_settings={"auto_envvar_prefix": "COPROCESSOR"})
@click.version_option(package_name="coprocessor")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="COPROCESSOR_STATE_DIR",
    show_envvar=True,
    expose_value=False,
    is_eager=True,
    callback=_use_state_dir,
    help="Where deployment records, the journal, the enclave token and logs are kept (default .coprocessor).",
)
def main() -> None:
    """An EVM coprocessor: Solidity requests answered by enclave-signed Python templates.

    Start with `coprocessor dev --demo`: it starts a local chain, deploys the contracts,
    registers a development enclave, answers a few real requests and prints them.
    """


for command in (
    dev,
    deploy,
    node_command,
    status,
    request,
    quote,
    encrypt,
    enclave,
    keys_group,
    secrets_group,
    attest_group,
    template_group,
    subscription_group,
    sponsor_group,
    job_group,
    v4_group,
):
    main.add_command(command)


def _show_envvars(command: click.Command) -> None:
    """Every option's `--help` names its environment variable: its own, or click's automatic
    `COPROCESSOR_<COMMAND PATH>_<PARAMETER>` (e.g. `COPROCESSOR_TEMPLATE_RUN_INPUT_JSON`)."""
    for param in command.params:
        if isinstance(param, click.Option):
            param.show_envvar = True
    for sub in getattr(command, "commands", {}).values():
        _show_envvars(sub)


_show_envvars(main)
