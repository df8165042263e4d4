"""The `coprocessor` command line.

Every command module imports only click and light modules at import time; what a command runs
(web3, the node, the enclave client, eth_abi) is imported inside it, so `--help` and a mistyped
command answer at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_attest import attest_group, enclave_attest, enclave_register, enclave_token_option, policy_kwargs, policy_options
from .cli_template import json_args, load_template_dirs, template_group, templates_option
from .cli_v4 import v4_group
from .config import NodeConfig, default_state_dir
from .errors import CoprocessorError
from .toolchain import TEMPLATES_DIR

if TYPE_CHECKING:
    from .chain import Deployment
    from .node import Node
    from coprocessor_enclave.template import Template


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("web3").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def node_options(command: Any) -> Any:
    """The node's tuning knobs, shared by `node` and `dev`; each is also a COPROCESSOR_* environment variable."""
    defaults = NodeConfig()
    options = [
        click.option("--concurrency", type=click.IntRange(1, 256), default=defaults.concurrency, show_default=True, envvar="COPROCESSOR_CONCURRENCY", show_envvar=True, help="Enclave runs at once."),
        click.option("--max-batch", type=click.IntRange(1, 512), default=defaults.max_batch, show_default=True, envvar="COPROCESSOR_MAX_BATCH", show_envvar=True, help="Most responses in one fulfil transaction."),
        click.option("--gas-budget", type=click.IntRange(100_000), default=defaults.gas_budget, show_default=True, envvar="COPROCESSOR_GAS_BUDGET", show_envvar=True, help="Gas a fulfil transaction may plan for (callback limits plus overhead)."),
        click.option("--max-in-flight", type=click.IntRange(1, 64), default=defaults.max_in_flight, show_default=True, envvar="COPROCESSOR_MAX_IN_FLIGHT", show_envvar=True, help="Node transactions pending at once."),
        click.option("--batch-wait", type=click.FloatRange(0, 10), default=defaults.batch_wait, show_default=True, envvar="COPROCESSOR_BATCH_WAIT", show_envvar=True, help="Seconds a partial batch may wait, after the last fulfil, for responses the enclave is still making (never when it is idle)."),
        click.option("--backlog-batch-wait", type=click.FloatRange(0, 10), default=defaults.backlog_batch_wait, show_default=True, envvar="COPROCESSOR_BACKLOG_BATCH_WAIT", show_envvar=True, help="The same while requests also wait to be run (the node is behind): fuller batches cost less per response."),
        click.option("--confirmations", type=click.IntRange(0), default=defaults.confirmations, show_default=True, envvar="COPROCESSOR_CONFIRMATIONS", show_envvar=True, help="Blocks to wait before acting on a request."),
        click.option("--reorg-depth", type=click.IntRange(1), default=defaults.reorg_depth, show_default=True, envvar="COPROCESSOR_REORG_DEPTH", show_envvar=True, help="Deepest reorg handled exactly; a deeper one rescans this far back."),
        click.option("--poll-interval", type=click.FloatRange(0.001), default=defaults.poll_interval, show_default=True, envvar="COPROCESSOR_POLL_INTERVAL", show_envvar=True, help="Seconds between head polls when the RPC has no websocket."),
        click.option("--ws-url", default="", envvar="COPROCESSOR_WS_URL", show_envvar=True, help="Websocket URL for new heads. Default: the RPC URL with ws://; `none` polls only."),
        click.option("--metrics-port", type=click.IntRange(0, 65535), default=0, show_default=True, envvar="COPROCESSOR_METRICS_PORT", show_envvar=True, help="Serve Prometheus metrics on this port (/metrics). 0: off."),
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


def _serve_metrics(node: Node, port: int) -> None:
    if port:
        bound = node.metrics.serve(port)
        logging.getLogger("coprocessor.node").info("metrics on http://127.0.0.1:%d/metrics", bound)


class _Cli(click.Group):
    """Turns our errors into one clear line and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CoprocessorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Cli)
@click.version_option(package_name="coprocessor")
def main() -> None:
    """An EVM coprocessor: Solidity requests answered by enclave-signed Python templates.

    Start with `coprocessor dev --demo`: it starts a local chain, deploys the contracts,
    registers a development enclave, answers a few real requests and prints them.
    """


# ---------------------------------------------------------------------------- dev


@main.command()
@click.option("--port", default=8545, show_default=True, help="Port for the local Anvil chain.")
@click.option("--demo", is_flag=True, help="Send a handful of requests, print the answers, then exit.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_state_dir,
    show_default=".coprocessor",
    help="Where the journal, deployment record and enclave log go (wiped at start).",
)
@templates_option
@click.option("--secrets", "secrets_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="TOML file of secrets for templates (see docs/templates.md).")
@click.option("--quote-port", default=8546, show_default=True, help="Port of the node's quote endpoint (sync mode; `coprocessor quote`); 0 turns it off.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@node_options
def dev(port: int, demo: bool, state_dir: Path, template_dirs: tuple[Path, ...], secrets_file: Path | None, quote_port: int, verbose: bool, **kwargs: Any) -> None:
    """Run everything locally: Anvil, contracts, a DEV enclave and the node.

    Development attestation only: NOT SECURE. Ctrl-C stops every child process.
    """
    import signal
    import threading
    from dataclasses import asdict

    from . import devnet, v4
    from .chain import ANVIL_KEYS, TxSender, connect
    from .journal import Journal
    from .node import Node
    from .quotes import start_quote_server
    from .registration import KeyKeeper
    from .toolchain import forge_build
    from coprocessor_enclave.attestation import DEV_BANNER
    from coprocessor_enclave.template import load_templates
    from coprocessor_enclave.text import inert

    _setup_logging(verbose)
    config, metrics_port = node_config(kwargs)
    log = logging.getLogger("coprocessor.dev")
    templates = load_templates([TEMPLATES_DIR, *template_dirs])  # the library, plus the author's own
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "enclave.log"):
        (state_dir / stale).unlink(missing_ok=True)

    click.echo("compiling contracts (forge, offline solcjs)...", err=True)
    forge_build()
    anvil = enclave_process = None
    node = quote_server = None
    try:
        click.echo(f"starting anvil on 127.0.0.1:{port}...", err=True)
        anvil = devnet.start_anvil(port)
        rpc_url = f"http://127.0.0.1:{port}"
        # The project's library is published for the demo; templates from --templates are loaded into the
        # enclave but left for their author to publish (`coprocessor template publish`).
        deployment = devnet.deploy(rpc_url, templates=load_templates([TEMPLATES_DIR]).values())
        deployment.save(state_dir / "deployment.json")
        log.info("deployed: registry %s, coprocessor %s, consumer %s", deployment.registry, deployment.coprocessor, deployment.consumer)

        w3 = connect(rpc_url)
        # A local Uniswap v4 to try hooks on (`coprocessor v4 hook|pool|swap` read this file).
        v4_stack = v4.deploy_v4_stack(TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER]))
        (state_dir / "v4.json").write_text(json.dumps(asdict(v4_stack), indent=2))
        log.info("Uniswap v4: PoolManager %s (real bytecode), swap router %s", v4_stack.pool_manager, v4_stack.swap_router)
        payee = TxSender(w3, ANVIL_KEYS[devnet.PAYEE]).address
        pki_dir = state_dir / "dev-pki"
        enclave_process, enclave = devnet.start_enclave(
            deployment, payee, [t.path for t in templates.values()], pki_dir, state_dir / "enclave.token",
            state_dir / "enclave.log", chain_rpc=rpc_url, secrets_file=secrets_file,
        )
        click.echo(DEV_BANNER, err=True)
        sender = TxSender(w3, ANVIL_KEYS[devnet.NODE])  # one nonce counter for registrations and fulfilments
        registrar = devnet.dev_registrar(rpc_url, deployment, pki_dir, sender=sender)
        record = registrar.register(enclave)
        log.info(
            "dev enclave %s: DCAP quote verified by dcap-qvl against the dev root, approved and registered (payee %s)",
            record.enclave, payee,
        )
        for template in templates.values():
            log.info("template %s v%s: %s", template.name, inert(template.version), template.id_hex)

        journal = Journal(state_dir / "journal.sqlite")
        keeper = KeyKeeper(w3, deployment.registry, enclave, registrar, renew_before_seconds=devnet.DEV_ENCLAVE_VALIDITY // 10)
        node = Node(w3, deployment.coprocessor, journal, enclave, sender, deployment.start_block, config, keeper)
        _serve_metrics(node, metrics_port)
        if quote_port:
            quote_server = start_quote_server(enclave, w3, "127.0.0.1", quote_port)
            click.echo(f"quote endpoint (sync mode): http://127.0.0.1:{quote_port}/quote", err=True)
        if demo:
            thread = threading.Thread(target=node.run, name="node", daemon=True)
            thread.start()
            ok = _run_demo(w3, deployment, templates)
            node.stop()
            thread.join(5)
            sys.exit(0 if ok else 1)
        signal.signal(signal.SIGTERM, lambda *_: node.stop())
        log.info("serving requests; Ctrl-C to stop")
        try:
            node.run()
        except KeyboardInterrupt:
            pass
    finally:
        if node is not None:
            node.stop()
        if quote_server is not None:
            quote_server.shutdown()
        devnet.stop(enclave_process)
        devnet.stop(anvil)


def _run_demo(w3: object, deployment: Deployment, templates: dict[bytes, Template]) -> bool:
    """Sends real requests through the example consumer and prints a table of the callbacks."""
    from eth_utils import keccak

    from . import devnet
    from .chain import ANVIL_KEYS, TxSender
    from .consumer import Answer, ExampleConsumerClient
    from coprocessor_enclave.protocol import Status
    from coprocessor_enclave.template import encode_args, find_template

    median = find_template(templates, "median-price")
    holder = find_template(templates, "token-holder")
    merkle = find_template(templates, "merkle-root")
    client = ExampleConsumerClient(w3, TxSender(w3, ANVIL_KEYS[devnet.USER]), deployment.consumer)  # type: ignore[arg-type]
    user, eth = client.sender.address, "0x" + "00" * 20
    e8 = 10**8
    leaves = ["0x" + keccak(i.to_bytes(32, "big")).hex() for i in range(256)]
    cases: list[tuple[Template, str, bytes, Status]] = [
        (median, "4 sources, 1 outlier", encode_args(median, [[3012 * e8, 3015 * e8, 3009 * e8, 9999 * e8], 200]), Status.OK),
        (median, "5 sources", encode_args(median, [[101 * e8, 99 * e8, 100 * e8, 102 * e8, 98 * e8], 500]), Status.OK),
        (median, "1 source", encode_args(median, [[42 * e8], 0]), Status.OK),
        (median, "empty list", encode_args(median, [[], 100]), Status.INVALID_INPUT),
        (median, "malformed ABI", b"\x01\x02\x03", Status.INVALID_INPUT),
        (holder, "asker holds 1 ETH?", encode_args(holder, [eth, user, 10**18]), Status.OK),
        (merkle, "256 leaves, proof #7", encode_args(merkle, [leaves, 7]), Status.OK),
    ]
    # One at a time, so each latency is that request's own, not time spent queued behind the others.
    answers: list[tuple[Template, str, Answer, Status]] = []
    for template, label, input_data, expected in cases:
        request_id, sent_at = client.ask(template.template_id, input_data)
        answers.append((template, label, client.wait(request_id, sent_at), expected))
    click.echo("")
    click.echo(f"{'request id':<16} {'template':<13} {'case':<21} {'status':<13} {'latency':>8}  output")
    click.echo("-" * 100)
    ok = True
    for template, label, answer, expected in answers:
        ok &= answer.status == expected
        click.echo(
            f"0x{answer.request_id.hex()[:12]}… {template.name:<13} {label:<21} {answer.status.name:<13}"
            f" {answer.latency * 1000:>6.0f} ms  {_shorten(answer.describe(template))}"
        )
    latencies = sorted(a.latency for _, _, a, _ in answers)
    click.echo("-" * 100)
    click.echo(
        f"{len(answers)} requests answered on-chain; latency median {latencies[len(latencies) // 2] * 1000:.0f} ms,"
        f" max {latencies[-1] * 1000:.0f} ms (request mined -> callback stored)"
    )
    if not ok:
        click.echo("error: some statuses differ from what the demo expected", err=True)
    return ok and _run_hook_demo(w3, deployment, find_template(templates, "v4-volatility"))


def _run_hook_demo(w3: Any, deployment: Deployment, volatility: Template) -> bool:
    """A Uniswap v4 dynamic-fee hook on the real PoolManager: volatile swaps, a request, the callback's fee."""
    from . import devnet, v4
    from .chain import ANVIL_KEYS, TxSender

    click.echo("\nUniswap v4 CoprocessorFeeHook (the real PoolManager bytecode from @uniswap/v4-core):")
    deployer = TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER])
    demo = v4.run_fee_hook_demo(deployer, deployment.coprocessor, volatility.template_id, w3)
    click.echo(f"  swap fee before the callback  {demo.fee_before:>7} (hundredths of a bip)   swap tx gas {demo.swap_gas:,} (with the request)")
    click.echo(f"  request 0x{demo.request_id.hex()[:12]}… answered  volatility {demo.volatility} -> fee {demo.fee_set}"
               f" in {demo.latency * 1000:.0f} ms (request mined -> callback stored)")
    click.echo(f"  next swap's Swap event fee    {demo.fee_after:>7}")
    ok = demo.fee_after == demo.fee_set > demo.fee_before
    if not ok:
        click.echo("error: the hook's fee did not move as the demo expected", err=True)
    return ok


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------- deploy / node / request


@main.command()
@click.option("--rpc", default="http://127.0.0.1:8545", show_default=True, help="JSON-RPC URL of the chain.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path(".coprocessor/deployment.json"), show_default=True)
@click.option("--no-dev", is_flag=True, help="Deploy a registry that refuses DEV enclaves forever (allowDev = false).")
def deploy(rpc: str, out: Path, no_dev: bool) -> None:
    """Deploy the contracts to a dev chain with Anvil's well-known keys and write a deployment record."""
    from . import devnet
    from .toolchain import forge_build

    forge_build()
    deployment = devnet.deploy(rpc, allow_dev=not no_dev, templates=load_template_dirs(()).values())
    deployment.save(out)
    click.echo(json.dumps(deployment.__dict__, indent=2))


@main.command("node")
@click.option("--rpc", default="http://127.0.0.1:8545", show_default=True, help="JSON-RPC URL of the chain.")
@click.option("--deployment", "deployment_path", type=click.Path(dir_okay=False, path_type=Path), default=Path(".coprocessor/deployment.json"), show_default=True)
@click.option("--enclave", "enclave_url", required=True, help="URL of a running `coprocessor enclave serve`.")
@enclave_token_option
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path), default=Path(".coprocessor/journal.sqlite"), show_default=True)
@click.option("--key-env", default="COPROCESSOR_NODE_KEY", show_default=True, help="Environment variable holding the submitting account's private key.")
@click.option("--attestor-key-env", "attestor_envs", multiple=True, help="Environment variable with an attestor key, to renew the enclave key before it expires; repeat for k-of-n. Without it the node only stops when the key lapses.")
@click.option("--renew-before", default=3 * 24 * 3600, show_default=True, help="Seconds before expiry at which the enclave key is renewed.")
@click.option("--validity", default=30 * 24 * 3600, show_default=True, help="Seconds a renewed key's registration lasts (longer than --renew-before).")
@click.option("--key-check-interval", default=10.0, show_default=True, help="Seconds between on-chain checks of the enclave key.")
@click.option("--quote-port", default=0, show_default=True, help="Serve enclave-signed quotes (sync mode) on this port: POST /quote. 0: off.")
@click.option("--quote-host", default="127.0.0.1", show_default=True, help="Address the quote endpoint binds (it is meant to be public; the enclave's own API stays on loopback).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@policy_options
@node_options
def node_command(rpc: str, deployment_path: Path, enclave_url: str, enclave_token_file: Path, journal_path: Path, key_env: str, attestor_envs: tuple[str, ...], renew_before: int, validity: int, key_check_interval: float, quote_port: int, quote_host: str, verbose: bool, **kwargs: Any) -> None:
    """Serve requests: watch the chain, run them in the enclave, submit signed results.

    The node checks its enclave key on-chain every few seconds: a revoked or expired key
    stops dispatching and submitting at once. With attestor keys it re-attests and
    registers a fresh key before the current one expires (policy options as for
    `coprocessor attest verify`).
    """
    import functools
    import signal

    from .chain import Deployment, TxSender, connect
    from .cli_attest import build_policy, collateral_for, onchain_images
    from .enclave_client import EnclaveClient
    from .journal import Journal
    from .node import Node
    from .quotes import start_quote_server
    from .registration import KeyKeeper, Registrar

    _setup_logging(verbose)
    config, metrics_port = node_config(kwargs, key_check_interval)
    options = policy_kwargs(kwargs)
    if validity <= renew_before:
        raise click.UsageError("--validity must be longer than --renew-before, or every fresh key would be renewed at once")
    names = (key_env, *attestor_envs)
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise click.UsageError(f"set {', '.join(missing)} (the submitting account's key, then attestor keys)")
    key, *attestor_keys = (os.environ[name] for name in names)
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    enclave = EnclaveClient.with_token_file(enclave_url, enclave_token_file)
    sender = TxSender(w3, key)
    registrar = None
    if attestor_keys:
        policy = build_policy(options, functools.partial(onchain_images, w3, deployment.registry, deployment.start_block))
        registrar = Registrar(
            w3, deployment, sender, [bytes.fromhex(k.removeprefix("0x")) for k in attestor_keys], policy,
            validity, collateral=functools.partial(collateral_for, options),
        )
    keeper = KeyKeeper(w3, deployment.registry, enclave, registrar, renew_before)
    node = Node(
        w3, deployment.coprocessor, Journal(journal_path), enclave, sender,
        deployment.start_block, config, keeper,
    )
    _serve_metrics(node, metrics_port)
    signal.signal(signal.SIGTERM, lambda *_: node.stop())
    logging.getLogger("coprocessor.node").info("node serving %s with enclave %s", deployment.coprocessor, enclave_url)
    quote_server = start_quote_server(enclave, w3, quote_host, quote_port) if quote_port else None
    if quote_server is not None:
        logging.getLogger("coprocessor.node").info("quote endpoint on http://%s:%d/quote", quote_host, quote_port)
    try:
        node.run()
    except KeyboardInterrupt:
        node.stop()
    finally:
        if quote_server is not None:  # a stopped node (revoked or expired key) stops quoting too
            quote_server.shutdown()


@main.command()
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path), default=Path(".coprocessor/journal.sqlite"), show_default=True, envvar="COPROCESSOR_JOURNAL", show_envvar=True, help="The node's journal.")
@click.option("--errors", "error_count", default=5, show_default=True, help="How many recent errors to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(journal_path: Path, error_count: int, as_json: bool) -> None:
    """Show what a node's journal holds: requests by state, the oldest pending, recent errors.

    Reads the journal only (safe while the node runs); the chain stays the final word.
    """
    import time

    from .journal import Journal, State
    from coprocessor_enclave.text import inert

    if not journal_path.exists():
        raise click.ClickException(f"no journal at {journal_path}: pass --journal (the node's --journal, or <state dir>/journal.sqlite for `dev`)")
    journal = Journal(journal_path)
    counts = journal.counts()
    oldest = journal.oldest_active()
    cursor = journal.cursor()
    errors = journal.recent_errors(error_count)
    if as_json:
        click.echo(json.dumps({
            "counts": counts,
            "cursor": None if cursor is None else {"block": cursor[0], "hash": "0x" + cursor[1]},
            "oldest_pending": None if oldest is None else {
                "request_id": "0x" + oldest.request.request_id.hex(), "state": oldest.state.value,
                "age_seconds": round(time.time() - oldest.seen_at, 3), "block": oldest.block_number,
            },
            "errors": [{"request_id": "0x" + e.request.request_id.hex(), "state": e.state.value, "error": e.error} for e in errors],
        }, indent=2))
        return
    click.echo(f"journal   {journal_path}")
    click.echo(f"cursor    {'none yet' if cursor is None else f'block {cursor[0]}'}")
    for state in State:
        click.echo(f"{state.value:<10}{counts.get(state.value, 0):>8}")
    if oldest is not None:
        click.echo(f"oldest pending: 0x{oldest.request.request_id.hex()} ({oldest.state.value}, {time.time() - oldest.seen_at:.1f} s, block {oldest.block_number})")
    for entry in errors:
        click.echo(f"error: 0x{entry.request.request_id.hex()[:16]}… {entry.state.value}: {inert(entry.error or '')[:200]}")


@main.command()
@click.argument("template")
@click.argument("args")
@click.option("--rpc", default="http://127.0.0.1:8545", show_default=True, help="JSON-RPC URL of the chain.")
@click.option("--deployment", "deployment_path", type=click.Path(dir_okay=False, path_type=Path), default=Path(".coprocessor/deployment.json"), show_default=True)
@click.option("--timeout", default=300, show_default=True, help="Seconds before the request may be cancelled and refunded.")
@click.option("--fee", type=int, default=None, help="Fee in wei. Default: the Coprocessor's requestFee (minimum fee plus the template author's fee).")
@click.option("--wait", "wait_seconds", default=60.0, show_default=True, help="Seconds to wait for the callback.")
@templates_option
def request(template: str, args: str, rpc: str, deployment_path: Path, timeout: int, fee: int | None, wait_seconds: float, template_dirs: tuple[Path, ...]) -> None:
    """Send one request through the example consumer and wait for its callback.

    TEMPLATE is a name or 0x id; ARGS is a JSON list of the template's inputs (@file.json reads
    a file, - reads stdin), e.g.

        coprocessor request median-price '[[100, 101, 250], 500]'
    """
    from . import devnet
    from .chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
    from .consumer import ExampleConsumerClient
    from coprocessor_enclave.protocol import Status
    from coprocessor_enclave.template import encode_args, find_template

    chosen = find_template(load_template_dirs(template_dirs), template)
    values = json_args(args, "ARGS")
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    client = ExampleConsumerClient(w3, TxSender(w3, ANVIL_KEYS[devnet.USER]), deployment.consumer)
    if fee is None:
        fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(chosen.template_id).call()
        if fee:
            click.echo(f"paying the request fee of {fee} wei (minimum fee plus the author's fee)", err=True)
    request_id, sent_at = client.ask(chosen.template_id, encode_args(chosen, values), timeout, fee)
    click.echo(f"request 0x{request_id.hex()} sent; waiting for the callback...", err=True)
    answer = client.wait(request_id, sent_at, wait_seconds)
    click.echo(f"{answer.status.name} in {answer.latency * 1000:.0f} ms: {answer.describe(chosen)}")
    if answer.status != Status.OK:
        sys.exit(2)


@main.command()
@click.argument("template")
@click.argument("args")
@click.option("--consumer", required=True, help="Address of the contract that will verify the quote (it is bound into the signature).")
@click.option("--url", default="http://127.0.0.1:8546", show_default=True, help="A node's quote endpoint (`node --quote-port`, on in `dev`).")
@click.option("--lifetime", default=300, show_default=True, help="Seconds the quote stays valid (the enclave caps it).")
@click.option("--json", "as_json", is_flag=True, help="Print every field as JSON instead of only the encoded quote.")
@templates_option
def quote(template: str, args: str, consumer: str, url: str, lifetime: int, as_json: bool, template_dirs: tuple[Path, ...]) -> None:
    """Fetch an enclave-signed quote (sync mode) and print `abi.encode(SignedQuote)` as hex, ready for hookData.

    TEMPLATE is a name or 0x id; ARGS is a JSON list of the template's inputs (@file.json reads
    a file, - reads stdin), e.g.

        coprocessor quote median-price '[[100, 101, 250], 500]' --consumer 0x...
    """
    import time

    from .quotes import fetch_quote
    from coprocessor_enclave.template import encode_args, find_template

    chosen = find_template(load_template_dirs(template_dirs), template)
    values = json_args(args, "ARGS")
    body = {
        "templateId": chosen.id_hex,
        "input": "0x" + encode_args(chosen, values).hex(),
        "consumer": consumer,
        "deadline": int(time.time()) + lifetime,
    }
    signed = fetch_quote(url, body)
    if as_json:
        click.echo(json.dumps(signed.to_json(), indent=2))
        return
    q = signed.quote
    click.echo(
        f"quote 0x{q.nonce.hex()[:12]}… signed by {signed.signer} for {q.consumer}, valid until {q.deadline},"
        f" anchored at block {q.anchor_block}; output 0x{signed.output.hex()}",
        err=True,
    )
    click.echo("0x" + signed.encode().hex())


# ---------------------------------------------------------------------------- enclave / template


@main.group()
def enclave() -> None:
    """The enclave process: key holder and template runner."""


@enclave.command(
    "serve", add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
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
enclave.add_command(enclave_register)
main.add_command(attest_group, "attest")
main.add_command(template_group)
main.add_command(v4_group)
