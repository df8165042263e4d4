"""Options and helpers the commands share: one definition each, every one also a `COPROCESSOR_*`
environment variable, and every path under the state dir (`coprocessor --state-dir`, or
`COPROCESSOR_STATE_DIR`; default `.coprocessor`)."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..config import NodeConfig, default_state_dir
from ..dev.toolchain import TEMPLATES_DIR

if TYPE_CHECKING:
    from coprocessor_enclave.template import Template

    from ..chain import TxSender

LOCAL_CHAIN_ID = 31337  # Anvil's: where dev accounts stand in for keys that were not given


class _Address(click.ParamType):  # type: ignore[type-arg]  # generic only in click's stubs of some versions
    """An Ethereum address: 0x and 40 hex digits (any case), checked before anything is sent."""

    name = "address"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if len(text) != 42 or not text.startswith("0x") or any(c not in "0123456789abcdefABCDEF" for c in text[2:]):
            self.fail(f"{text!r} is not an address: 0x and 40 hex digits", param, ctx)
        return text


ADDRESS = _Address()


def in_state_dir(name: str) -> Callable[[], Path]:
    """A default path under the state dir, read when the command runs (after `--state-dir` took effect)."""
    return lambda: default_state_dir() / name


rpc_option = click.option(
    "--rpc",
    default="http://127.0.0.1:8545",
    show_default=True,
    envvar="COPROCESSOR_RPC",
    show_envvar=True,
    help="JSON-RPC URL of the chain.",
)
deployment_option = click.option(
    "--deployment",
    "deployment_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=in_state_dir("deployment.json"),
    show_default="<state dir>/deployment.json",
    envvar="COPROCESSOR_DEPLOYMENT",
    show_envvar=True,
    help="Deployment record written by `coprocessor dev` or `deploy`.",
)


class JournalTarget(click.ParamType[Path | str]):
    """A SQLite file (a path), or a PostgreSQL database (a `postgresql://` URL) several nodes share."""

    name = "PATH|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        text = str(value)
        if text.startswith(("postgresql://", "postgres://")):
            return text
        if "://" in text:
            self.fail(f"{text.split('://')[0]}:// is not a journal: give a SQLite file path or a postgresql:// URL", param, ctx)
        return Path(text)


journal_option = click.option(
    "--journal",
    "journal_path",
    type=JournalTarget(),
    default=in_state_dir("journal.sqlite"),
    show_default="<state dir>/journal.sqlite",
    envvar="COPROCESSOR_JOURNAL",
    show_envvar=True,
    help="The node's journal: a SQLite file, or a postgresql:// URL for several nodes sharing one deployment.",
)
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
templates_option = click.option(
    "--templates",
    "template_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of templates (or one template folder); repeatable. Default: the project's templates/.",
)
enclave_token_option = click.option(
    "--enclave-token-file",
    "enclave_token_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=in_state_dir("enclave.token"),
    show_default="<state dir>/enclave.token",
    envvar="COPROCESSOR_ENCLAVE_TOKEN_FILE",
    help="The token the enclave wrote at start (`enclave serve --token-file`); it answers no one without it.",
)
# Intel's TCB statuses that a policy may accept (Revoked never verifies).
TCB_STATUSES = (
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
)


enclave_url_option = click.option("--enclave", "enclave_url", required=True, help="URL of a running `coprocessor enclave serve`.")


def dev_or_env_sender(w3: Any, key_env: str, dev_role: str, who: str) -> TxSender:
    """The account whose key is in `key_env`, or on a local Anvil chain the dev account of `dev_role`
    (a name in `devnet`, e.g. "AUTHOR"), saying so."""
    from ..chain import ANVIL_KEYS, TxSender
    from ..dev import devnet

    key = os.environ.get(key_env)
    if key:
        return TxSender(w3, key)
    if w3.eth.chain_id != LOCAL_CHAIN_ID:
        raise click.UsageError(f"set {key_env} to {who}'s private key")
    index = getattr(devnet, dev_role)
    click.echo(f"{key_env} not set: sending as Anvil dev account #{index} (local chain)", err=True)
    return TxSender(w3, ANVIL_KEYS[index])


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("web3").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def json_args(text: str, hint: str) -> list[Any]:
    """A template's inputs as a JSON list: given inline, as `@file.json`, or `-` for standard input
    (thousands of values do not fit on a command line); or a clear usage error."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {text[1:]}: {exc.strerror or exc}", param_hint=hint) from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"must be a JSON list of the template's inputs: {exc}", param_hint=hint) from None
    if not isinstance(values, list):
        raise click.BadParameter("must be a JSON list of the template's inputs", param_hint=hint)
    return values


def load_template_dirs(template_dirs: tuple[Path, ...]) -> dict[bytes, Template]:
    """The templates under `template_dirs`, or the project's library when none are given."""
    from coprocessor_enclave.template import load_templates

    return load_templates(list(template_dirs) or [TEMPLATES_DIR])


def node_options(command: Any) -> Any:
    """The node's tuning knobs, shared by `node` and `dev`; each is also a COPROCESSOR_* environment variable."""
    defaults = NodeConfig()
    options = [
        click.option(
            "--concurrency",
            type=click.IntRange(1, 256),
            default=defaults.concurrency,
            show_default=True,
            envvar="COPROCESSOR_CONCURRENCY",
            show_envvar=True,
            help="Enclave runs at once.",
        ),
        click.option(
            "--max-batch",
            type=click.IntRange(1, 512),
            default=defaults.max_batch,
            show_default=True,
            envvar="COPROCESSOR_MAX_BATCH",
            show_envvar=True,
            help="Most responses in one fulfil transaction.",
        ),
        click.option(
            "--gas-budget",
            type=click.IntRange(100_000),
            default=defaults.gas_budget,
            show_default=True,
            envvar="COPROCESSOR_GAS_BUDGET",
            show_envvar=True,
            help="Gas a fulfil transaction may plan for (callback limits plus overhead).",
        ),
        click.option(
            "--max-in-flight",
            type=click.IntRange(1, 64),
            default=defaults.max_in_flight,
            show_default=True,
            envvar="COPROCESSOR_MAX_IN_FLIGHT",
            show_envvar=True,
            help="Node transactions pending at once.",
        ),
        click.option(
            "--batch-wait",
            type=click.FloatRange(0, 10),
            default=defaults.batch_wait,
            show_default=True,
            envvar="COPROCESSOR_BATCH_WAIT",
            show_envvar=True,
            help="Seconds a partial batch may wait, after the last fulfil, for responses the enclave is still making (never when it is idle).",
        ),
        click.option(
            "--backlog-batch-wait",
            type=click.FloatRange(0, 10),
            default=defaults.backlog_batch_wait,
            show_default=True,
            envvar="COPROCESSOR_BACKLOG_BATCH_WAIT",
            show_envvar=True,
            help="The same while requests also wait to be run (the node is behind): fuller batches cost less per response.",
        ),
        click.option(
            "--confirmations",
            type=click.IntRange(0),
            default=defaults.confirmations,
            show_default=True,
            envvar="COPROCESSOR_CONFIRMATIONS",
            show_envvar=True,
            help="Blocks to wait before acting on a request.",
        ),
        click.option(
            "--reorg-depth",
            type=click.IntRange(1),
            default=defaults.reorg_depth,
            show_default=True,
            envvar="COPROCESSOR_REORG_DEPTH",
            show_envvar=True,
            help="Deepest reorg handled exactly; a deeper one rescans this far back.",
        ),
        click.option(
            "--poll-interval",
            type=click.FloatRange(0.001),
            default=defaults.poll_interval,
            show_default=True,
            envvar="COPROCESSOR_POLL_INTERVAL",
            show_envvar=True,
            help="Seconds between head polls when the RPC has no websocket.",
        ),
        click.option(
            "--ws-url",
            default="",
            envvar="COPROCESSOR_WS_URL",
            show_envvar=True,
            help="Websocket URL for new heads. Default: the RPC URL with ws://; `none` polls only.",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(0, 65535),
            default=0,
            show_default=True,
            envvar="COPROCESSOR_METRICS_PORT",
            show_envvar=True,
            help="Serve Prometheus metrics on this port (/metrics). 0: off.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def node_config(kwargs: dict[str, Any], key_check_interval: float | None = None) -> tuple[NodeConfig, int]:
    """Takes the `node_options` out of a command's keyword arguments: the config and the metrics port."""
    ws_url = kwargs.pop("ws_url")
    config = NodeConfig(
        concurrency=kwargs.pop("concurrency"),
        max_batch=kwargs.pop("max_batch"),
        gas_budget=kwargs.pop("gas_budget"),
        max_in_flight=kwargs.pop("max_in_flight"),
        batch_wait=kwargs.pop("batch_wait"),
        backlog_batch_wait=kwargs.pop("backlog_batch_wait"),
        confirmations=kwargs.pop("confirmations"),
        reorg_depth=kwargs.pop("reorg_depth"),
        poll_interval=kwargs.pop("poll_interval"),
        ws_url=None if ws_url == "none" else ws_url,
        **({} if key_check_interval is None else {"key_check_interval": key_check_interval}),
    )
    return config, kwargs.pop("metrics_port")


def policy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The attestor's policy, as options shared by every command that verifies evidence."""
    options = [
        click.option(
            "--image",
            "images",
            multiple=True,
            help="Allowlisted image id (0x, 32 bytes); repeatable. Default: the registry's allowlist (needs --rpc).",
        ),
        click.option(
            "--allow-status",
            "statuses",
            multiple=True,
            type=click.Choice(TCB_STATUSES),
            help="A TCB status accepted besides UpToDate; repeatable.",
        ),
        click.option(
            "--reject-advisory", "advisories", multiple=True, help="Intel advisory id that makes a quote unacceptable; repeatable."
        ),
        click.option(
            "--collateral",
            "collateral_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Collateral JSON (default: the evidence's own, or --pccs).",
        ),
        click.option("--pccs", default=None, help="Fetch collateral from this PCCS/PCS URL, e.g. https://api.trustedservices.intel.com."),
        click.option(
            "--insecure-dev-root",
            "dev_root",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="INSECURE: also accept quotes from this development root CA (PEM or DER); they register as DEV.",
        ),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def policy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    keys = ("images", "statuses", "advisories", "collateral_path", "pccs", "dev_root")
    return {k: kwargs.pop(k) for k in keys}
