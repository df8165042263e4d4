"""`coprocessor enclave ...`: run the enclave, and have it attest and register."""

from __future__ import annotations

import os
import sys

import click

from ..dev.toolchain import TEMPLATES_DIR
from .attest import enclave_attest, enclave_register


@click.group()
def enclave() -> None:
    """The enclave process: key holder and template runner."""


@enclave.command("serve", add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def enclave_serve(ctx: click.Context) -> None:
    """Run the enclave (`coprocessor-enclave serve`; its --help lists the options).

    The enclave is its own package, measured on its own: this command replaces itself with
    that program, so no code of the node runs in the key holder. Without --templates it
    serves the project's library.
    """
    args = list(ctx.args)
    if "--templates" not in args and not any(a in ("-h", "--help") for a in args):
        args += ["--templates", str(TEMPLATES_DIR)]
    os.execv(sys.executable, [sys.executable, "-I", "-m", "coprocessor_enclave", "serve", *args])


enclave.add_command(enclave_attest)


enclave.add_command(enclave_attest)
enclave.add_command(enclave_register)
