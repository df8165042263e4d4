"""`coprocessor node` (serve requests) and `coprocessor status` (what its journal holds)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import (
    deployment_option,
    enclave_token_option,
    enclave_url_option,
    in_state_dir,
    journal_option,
    node_config,
    node_options,
    policy_kwargs,
    policy_options,
    rpc_option,
    setup_logging,
    verbose_option,
)

if TYPE_CHECKING:  # imported where they are used: see __init__.py
    from ..node.pipeline import Node


def serve_metrics(node: Node, port: int) -> None:
    if port:
        bound = node.metrics.serve(port)
        logging.getLogger("coprocessor.node.pipeline").info("metrics on http://127.0.0.1:%d/metrics", bound)


@click.command("node")
@rpc_option
@deployment_option
@click.option(
    "--chains",
    "chains_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve several chains: a TOML file of [[chains]] (name, rpc, deployment, optional confirmations and reorg_depth); "
    "replaces --rpc and --deployment. The enclave must serve every one (`enclave serve --also`).",
)
@enclave_url_option
@enclave_token_option
@journal_option
@click.option(
    "--key-env",
    default="COPROCESSOR_NODE_KEY",
    show_default=True,
    help="Environment variable holding the submitting account's private key.",
)
@click.option(
    "--attestor-key-env",
    "attestor_envs",
    multiple=True,
    help="Environment variable with an attestor key, to renew the enclave key before it expires; repeat for k-of-n. Without it the node only stops when the key lapses.",
)
@click.option("--renew-before", default=3 * 24 * 3600, show_default=True, help="Seconds before expiry at which the enclave key is renewed.")
@click.option(
    "--validity", default=30 * 24 * 3600, show_default=True, help="Seconds a renewed key's registration lasts (longer than --renew-before)."
)
@click.option("--key-check-interval", default=10.0, show_default=True, help="Seconds between on-chain checks of the enclave key.")
@click.option(
    "--quote-port", default=0, show_default=True, help="Serve enclave-signed quotes (sync mode) on this port: POST /quote. 0: off."
)
@click.option(
    "--quote-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the quote endpoint binds (it is meant to be public; the enclave's own API stays on loopback).",
)
@click.option(
    "--jobs-port",
    default=0,
    show_default=True,
    help="Serve HTTP jobs on this port (POST /jobs, GET /jobs/<requestId>), paid by sponsors in the Sponsorships contract. 0: off.",
)
@click.option("--jobs-host", default="127.0.0.1", show_default=True, help="Address the jobs endpoint binds (it is meant to be public).")
@click.option(
    "--jobs-keys",
    type=click.Path(dir_okay=False, path_type=Path),
    default=in_state_dir("api-keys.toml"),
    show_default="<state dir>/api-keys.toml",
    help="The API keys the jobs endpoint accepts (SHA-256 only; `coprocessor sponsor add-key` writes it; read again as it changes).",
)
@click.option(
    "--jobs-key-env",
    default="COPROCESSOR_JOBS_KEY",
    show_default=True,
    help="Environment variable with the jobs account's key: it submits API-key jobs (sponsors name it their keys' relayer).",
)
@click.option(
    "--lease",
    "lease_seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=1.0),
    help="Seconds this node's claim on its work outlives its last heartbeat; with a shared PostgreSQL journal, "
    "another node takes the work over after that.",
)
@verbose_option
@policy_options
@node_options
def node_command(
    rpc: str,
    deployment_path: Path,
    chains_file: Path | None,
    enclave_url: str,
    enclave_token_file: Path,
    journal_path: Path | str,
    lease_seconds: float,
    key_env: str,
    attestor_envs: tuple[str, ...],
    renew_before: int,
    validity: int,
    key_check_interval: float,
    quote_port: int,
    quote_host: str,
    jobs_port: int,
    jobs_host: str,
    jobs_keys: Path,
    jobs_key_env: str,
    verbose: bool,
    **kwargs: Any,
) -> None:
    """Serve requests: watch the chain, run them in the enclave, submit signed results.

    The node checks its enclave key on-chain every few seconds: a revoked or expired key
    stops dispatching and submitting at once. With attestor keys it re-attests and
    registers a fresh key before the current one expires (policy options as for
    `coprocessor attest verify`).

    Several nodes, each with its own enclave and account, serve one deployment when they
    share a PostgreSQL journal (`--journal postgresql://...`): one scans the chain, all run
    and submit, and a node that stops has its work finished by the others.

    One node serves several chains with `--chains FILE`: each chain gets its own journal
    partition, cursor, account nonces and metrics (labelled `chain`), and one enclave whose
    key is registered on every chain answers them all (docs/chains.md).
    """
    import functools
    import signal

    from ..attest.registration import KeyKeeper, Registrar
    from ..chain import Deployment, TxSender, connect
    from ..node.chains import MultiChainNode, load_chains, partition_for
    from ..node.enclave_client import EnclaveClient
    from ..node.jobs import start_jobs_server
    from ..node.journal import Journal
    from ..node.pipeline import Node, NodeConfig
    from ..node.quotes import start_quote_server
    from .attest import build_policy, collateral_for, onchain_images

    setup_logging(verbose)
    config, metrics_port = node_config(kwargs, key_check_interval)
    options = policy_kwargs(kwargs)
    if validity <= renew_before:
        raise click.UsageError("--validity must be longer than --renew-before, or every fresh key would be renewed at once")
    names = (key_env, *attestor_envs)
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise click.UsageError(f"set {', '.join(missing)} (the submitting account's key, then attestor keys)")
    key, *attestor_keys = (os.environ[name] for name in names)
    if chains_file is not None and (quote_port or jobs_port):
        raise click.UsageError("--quote-port and --jobs-port serve one chain: run them with --rpc and --deployment, not --chains")
    if jobs_port and not os.environ.get(jobs_key_env):
        raise click.UsageError(f"set {jobs_key_env} to the jobs account's key (it submits API-key jobs), or leave --jobs-port off")
    enclave = EnclaveClient.with_token_file(enclave_url, enclave_token_file)
    log = logging.getLogger("coprocessor.node.pipeline")

    def chain_node(rpc_url: str, deployment: Deployment, chain_config: NodeConfig, partition: str | None) -> Node:
        """The node of one chain: its RPC, account nonces, key checks and journal (partition)."""
        w3 = connect(rpc_url)
        deployment.check_on(w3, "coprocessor", "registry")
        chain_enclave = enclave.for_chain(deployment.chain_id)
        sender = TxSender(w3, key)
        registrar = None
        if attestor_keys:
            policy = build_policy(options, functools.partial(onchain_images, w3, deployment.registry, deployment.start_block))
            registrar = Registrar(
                w3,
                deployment,
                sender,
                [bytes.fromhex(k.removeprefix("0x")) for k in attestor_keys],
                policy,
                validity,
                collateral=functools.partial(collateral_for, options),
            )
        keeper = KeyKeeper(w3, deployment.registry, chain_enclave, registrar, renew_before)
        journal = Journal(journal_path, node_id=sender.address.lower(), lease_seconds=lease_seconds, partition=partition)
        return Node(
            w3,
            deployment.coprocessor,
            journal,
            chain_enclave,
            sender,
            deployment.start_block,
            chain_config,
            keeper,
            subscriptions=deployment.subscriptions,
        )

    served: Node | MultiChainNode
    jobs_server = None
    if chains_file is not None:
        chains = load_chains(chains_file)
        home = int(enclave.info()["chainId"])
        nodes = {c.name: chain_node(c.rpc, c.deployment, c.node_config(config), partition_for(c.chain_id, home)) for c in chains}
        served = MultiChainNode(nodes)
        if metrics_port:
            log.info("metrics of %d chains on http://127.0.0.1:%d/metrics", len(chains), served.serve_metrics(metrics_port))
        for c in chains:
            log.info("serving chain %s (%d): coprocessor %s", c.name, c.chain_id, c.deployment.coprocessor)
        quote_server = jobs_server = None
    else:
        deployment = Deployment.load(deployment_path)
        served = node = chain_node(rpc, deployment, config, None)
        serve_metrics(node, metrics_port)
        log.info("node serving %s with enclave %s", deployment.coprocessor, enclave_url)
        quote_server = start_quote_server(enclave, node.w3, quote_host, quote_port) if quote_port else None
        if quote_server is not None:
            log.info("quote endpoint on http://%s:%d/quote", quote_host, quote_port)
        if jobs_port:
            jobs_server = start_jobs_server(
                node.w3,
                os.environ[jobs_key_env],
                deployment.sponsorships,
                jobs_keys,
                node.journal.get,
                jobs_host,
                jobs_port,
                deployment.start_block,
            )
            log.info("jobs endpoint on http://%s:%d/jobs (API keys from %s)", jobs_host, jobs_port, jobs_keys)
    signal.signal(signal.SIGTERM, lambda *_: served.stop())
    try:
        served.run()
    except KeyboardInterrupt:
        served.stop()
    finally:
        for server in (quote_server, jobs_server):  # a stopped node (revoked or expired key) stops serving them too
            if server is not None:
                server.shutdown()
    if served.lease_lost is not None:
        raise served.lease_lost


@click.command()
@journal_option
@click.option(
    "--chain",
    "chain_id",
    type=int,
    default=None,
    help="A node serving several chains (`node --chains`): this chain's part of the journal. Omit it for the enclave's home chain.",
)
@click.option("--errors", "error_count", default=5, show_default=True, help="How many recent errors to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(journal_path: Path | str, chain_id: int | None, error_count: int, as_json: bool) -> None:
    """Show what a node's journal holds: requests by state, the oldest pending, recent errors.

    Reads the journal only (safe while the node runs); the chain stays the final word.
    """
    import time

    from coprocessor_enclave.text import inert

    from ..node.chains import partition_name
    from ..node.databases import partitioned, redacted
    from ..node.journal import Journal, State

    partition = None if chain_id is None else partition_name(chain_id)
    where = partitioned(journal_path, partition)
    if isinstance(where, Path) and not where.exists():
        raise click.ClickException(
            f"no journal at {where}: pass --journal (the node's --journal, or <state dir>/journal.sqlite for `dev`)"
            + ("" if chain_id is None else ", and --chain only for a chain other than the enclave's home")
        )
    journal = Journal(journal_path, partition=partition)
    counts = journal.counts()
    oldest = journal.oldest_active()
    cursor = journal.cursor()
    errors = journal.recent_errors(error_count)
    now = time.time()
    nodes = [{"node": n, "epoch": e, "lease_seconds_left": round(max(0.0, u - now), 1)} for n, e, u in journal.nodes()]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "counts": counts,
                    "nodes": nodes,
                    "cursor": None if cursor is None else {"block": cursor[0], "hash": "0x" + cursor[1]},
                    "oldest_pending": None
                    if oldest is None
                    else {
                        "request_id": "0x" + oldest.request.request_id.hex(),
                        "state": oldest.state.value,
                        "age_seconds": round(time.time() - oldest.seen_at, 3),
                        "block": oldest.block_number,
                    },
                    "errors": [{"request_id": "0x" + e.request.request_id.hex(), "state": e.state.value, "error": e.error} for e in errors],
                },
                indent=2,
            )
        )
        return
    click.echo(f"journal   {redacted(where)}" + ("" if partition is None or isinstance(where, Path) else f" (schema {partition})"))
    for node in nodes:
        state = f"lease {node['lease_seconds_left']} s" if node["lease_seconds_left"] else "stopped (work released)"
        click.echo(f"node      {node['node']} epoch {node['epoch']}: {state}")
    click.echo(f"cursor    {'none yet' if cursor is None else f'block {cursor[0]}'}")
    for state in State:
        click.echo(f"{state.value:<10}{counts.get(state.value, 0):>8}")
    if oldest is not None:
        click.echo(
            f"oldest pending: 0x{oldest.request.request_id.hex()} ({oldest.state.value}, {time.time() - oldest.seen_at:.1f} s, block {oldest.block_number})"
        )
    for entry in errors:
        click.echo(f"error: 0x{entry.request.request_id.hex()[:16]}… {entry.state.value}: {inert(entry.error or '')[:200]}")
