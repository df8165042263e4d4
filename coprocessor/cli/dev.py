"""`coprocessor dev` (everything locally, and the demo) and `coprocessor deploy`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from ..config import default_state_dir
from ..dev.toolchain import TEMPLATES_DIR
from .options import (
    in_state_dir,
    load_template_dirs,
    node_config,
    node_options,
    rpc_option,
    setup_logging,
    templates_option,
    verbose_option,
)


@click.command()
@click.option(
    "--port", default=8545, show_default=True, help="Port for the local Anvil chain (further chains: 10 ports apart, 8555, 8565, ...)."
)
@click.option(
    "--chains",
    "chain_count",
    type=click.IntRange(1, 8),
    default=None,
    help="How many local chains (chain ids 31337, 31338, ...) one enclave and one node serve. Default: 1, and 2 with --demo "
    "(it reads one chain from the other).",
)
@click.option("--demo", is_flag=True, help="Send a handful of requests, print the answers, then exit.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_state_dir,
    show_default=".coprocessor",
    help="Where the journal, deployment record and enclave log go (wiped at start).",
)
@templates_option
@click.option(
    "--secrets",
    "secrets_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TOML file of plaintext secrets for templates: DEVELOPMENT ONLY, the operator reads them (production: `coprocessor secrets put`).",
)
@click.option(
    "--quote-port",
    default=8546,
    show_default=True,
    help="Port of the node's quote endpoint (sync mode; `coprocessor quote`); 0 turns it off.",
)
@click.option(
    "--jobs-port",
    default=8547,
    show_default=True,
    help="Port of the node's HTTP jobs endpoint (`coprocessor job submit`; API keys from `coprocessor sponsor add-key`); 0 turns it off.",
)
@verbose_option
@node_options
def dev(
    port: int,
    chain_count: int | None,
    demo: bool,
    state_dir: Path,
    template_dirs: tuple[Path, ...],
    secrets_file: Path | None,
    quote_port: int,
    jobs_port: int,
    verbose: bool,
    **kwargs: Any,
) -> None:
    """Run everything locally: Anvil, contracts, a DEV enclave and the node.

    With --chains N, N Anvils (chain ids 31337 up) are served by one enclave, whose key is
    registered on each, and one node; `<state dir>/chains.toml` lists them for `coprocessor node --chains`.

    Development attestation only: NOT SECURE. Ctrl-C stops every child process.
    """
    import signal
    import threading
    from dataclasses import asdict

    from coprocessor_enclave.attestation import DEV_BANNER
    from coprocessor_enclave.template import load_templates
    from coprocessor_enclave.text import inert

    from ..chain import ANVIL_KEYS, TxSender, connect
    from ..dev import chains as dev_chains
    from ..dev import devnet, v4
    from ..dev.demo import run_chains_demo, run_cross_chain_demo, run_demo, run_schedule_demo
    from ..dev.toolchain import forge_build
    from ..node.jobs import start_jobs_server
    from ..node.quotes import start_quote_server

    setup_logging(verbose)
    config, metrics_port = node_config(kwargs)
    log = logging.getLogger("coprocessor.dev")
    chain_count = chain_count or (2 if demo else 1)
    templates = load_templates([TEMPLATES_DIR, *template_dirs])  # the library, plus the author's own
    state_dir.mkdir(parents=True, exist_ok=True)
    for pattern in ("journal*.sqlite*", "enclave.log", "deployment-*.json", "api-keys.toml"):
        for stale in state_dir.glob(pattern):
            stale.unlink()

    click.echo("compiling contracts (forge, offline solcjs)...", err=True)
    forge_build()
    running: list[dev_chains.DevChain] = []
    enclave_process = served = quote_server = jobs_server = None
    try:
        click.echo(f"starting {chain_count} anvil chain(s) from 127.0.0.1:{port}...", err=True)
        # The project's library is published for the demo; templates from --templates are loaded into the
        # enclave but left for their author to publish (`coprocessor template publish`).
        running = dev_chains.start_chains(chain_count, load_templates([TEMPLATES_DIR]).values(), first_port=port)
        home = running[0]
        deployment = home.deployment
        deployment.save(state_dir / "deployment.json")
        for chain in running[1:]:
            chain.deployment.save(state_dir / f"deployment-{chain.chain_id}.json")
        if chain_count > 1:  # `coprocessor node --chains` reads this
            (state_dir / "chains.toml").write_text(dev_chains.chains_file(running, state_dir))
        for chain in running:
            log.info(
                "chain %d at %s: registry %s, coprocessor %s, key registry %s, consumer %s",
                chain.chain_id,
                chain.rpc_url,
                chain.deployment.registry,
                chain.deployment.coprocessor,
                chain.deployment.key_registry,
                chain.deployment.consumer,
            )

        w3 = connect(home.rpc_url)
        # A local Uniswap v4 to try hooks on (`coprocessor v4 hook|pool|swap` read this file).
        v4_stack = v4.deploy_v4_stack(TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER]))
        (state_dir / "v4.json").write_text(json.dumps(asdict(v4_stack), indent=2))
        log.info("Uniswap v4: PoolManager %s (real bytecode), swap router %s", v4_stack.pool_manager, v4_stack.swap_router)
        enclave_process, enclave = dev_chains.start_enclave(running, [t.path for t in templates.values()], state_dir, secrets_file)
        click.echo(DEV_BANNER, err=True)
        log.info(
            "dev enclave %s: DCAP quote verified by dcap-qvl against the dev root, approved and registered on %s",
            enclave.info()["address"],
            ", ".join(f"chain {c.chain_id}" for c in running),
        )
        for template in templates.values():
            log.info("template %s v%s: %s", template.name, inert(template.version), template.id_hex)
        epoch = enclave.keys_genesis()
        for chain in running:
            devnet.publish_all_keys(chain.rpc_url, chain.deployment, enclave.for_chain(chain.chain_id), templates.values())
        log.info("cluster keys made inside the enclave (epoch %d); every template's public keys published", epoch)

        served = dev_chains.multichain_node(running, enclave, state_dir / "journal.sqlite", config, keys_from=state_dir / "dev-pki")
        if metrics_port:
            log.info("metrics on http://127.0.0.1:%d/metrics", served.serve_metrics(metrics_port))
        if quote_port:
            quote_server = start_quote_server(enclave.for_chain(home.chain_id), w3, "127.0.0.1", quote_port)
            click.echo(f"quote endpoint (sync mode): http://127.0.0.1:{quote_port}/quote", err=True)
        if jobs_port:
            home_journal = served.nodes[home.name].journal
            jobs_server = start_jobs_server(
                w3,
                ANVIL_KEYS[devnet.JOBS],
                deployment.sponsorships,
                state_dir / "api-keys.toml",
                home_journal.get,
                "127.0.0.1",
                jobs_port,
                deployment.start_block,
            )
            click.echo(f"HTTP jobs endpoint: http://127.0.0.1:{jobs_port}/jobs (API keys: `coprocessor sponsor add-key`)", err=True)
        if demo:
            thread = threading.Thread(target=served.run, name="node", daemon=True)
            thread.start()
            ok = run_demo(w3, deployment, templates) and run_chains_demo(running[1:], templates)
            ok = ok and run_schedule_demo(w3, deployment, templates)
            if len(running) > 1:
                ok = ok and run_cross_chain_demo(home, running[1], templates)
            served.stop()
            thread.join(10)
            sys.exit(0 if ok else 1)
        signal.signal(signal.SIGTERM, lambda *_: served.stop() if served is not None else None)
        log.info("serving requests on %d chain(s); Ctrl-C to stop", chain_count)
        try:
            served.run()
        except KeyboardInterrupt:
            pass
    finally:
        if served is not None:
            served.stop()
        for server in (quote_server, jobs_server):
            if server is not None:
                server.shutdown()
        devnet.stop(enclave_process)
        dev_chains.stop_chains(running)


@click.command()
@rpc_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=in_state_dir("deployment.json"),
    show_default="<state dir>/deployment.json",
    help="Where to write the deployment record.",
)
@click.option("--no-dev", is_flag=True, help="Deploy a registry that refuses DEV enclaves forever (allowDev = false).")
def deploy(rpc: str, out: Path, no_dev: bool) -> None:
    """Deploy the contracts to a dev chain with Anvil's well-known keys and write a deployment record."""
    from ..dev import devnet
    from ..dev.toolchain import forge_build

    forge_build()
    deployment = devnet.deploy(rpc, allow_dev=not no_dev, templates=load_template_dirs(()).values())
    deployment.save(out)
    click.echo(json.dumps(deployment.__dict__, indent=2))
