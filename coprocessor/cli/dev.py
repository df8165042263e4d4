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
from .node import serve_metrics
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
@verbose_option
@node_options
def dev(
    port: int,
    demo: bool,
    state_dir: Path,
    template_dirs: tuple[Path, ...],
    secrets_file: Path | None,
    quote_port: int,
    verbose: bool,
    **kwargs: Any,
) -> None:
    """Run everything locally: Anvil, contracts, a DEV enclave and the node.

    Development attestation only: NOT SECURE. Ctrl-C stops every child process.
    """
    import signal
    import threading
    from dataclasses import asdict

    from coprocessor_enclave.attestation import DEV_BANNER
    from coprocessor_enclave.template import load_templates
    from coprocessor_enclave.text import inert

    from ..attest.registration import KeyKeeper
    from ..chain import ANVIL_KEYS, TxSender, connect
    from ..dev import devnet, v4
    from ..dev.demo import run_demo
    from ..dev.toolchain import forge_build
    from ..node.journal import Journal
    from ..node.pipeline import Node
    from ..node.quotes import start_quote_server

    setup_logging(verbose)
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
        log.info(
            "deployed: registry %s, coprocessor %s, key registry %s, consumer %s",
            deployment.registry,
            deployment.coprocessor,
            deployment.key_registry,
            deployment.consumer,
        )

        w3 = connect(rpc_url)
        # A local Uniswap v4 to try hooks on (`coprocessor v4 hook|pool|swap` read this file).
        v4_stack = v4.deploy_v4_stack(TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER]))
        (state_dir / "v4.json").write_text(json.dumps(asdict(v4_stack), indent=2))
        log.info("Uniswap v4: PoolManager %s (real bytecode), swap router %s", v4_stack.pool_manager, v4_stack.swap_router)
        payee = TxSender(w3, ANVIL_KEYS[devnet.PAYEE]).address
        pki_dir = state_dir / "dev-pki"
        enclave_process, enclave = devnet.start_enclave(
            deployment,
            payee,
            [t.path for t in templates.values()],
            pki_dir,
            state_dir / "enclave.token",
            state_dir / "enclave.log",
            chain_rpc=rpc_url,
            secrets_file=secrets_file,
        )
        click.echo(DEV_BANNER, err=True)
        sender = TxSender(w3, ANVIL_KEYS[devnet.NODE])  # one nonce counter for registrations and fulfilments
        registrar = devnet.dev_registrar(rpc_url, deployment, pki_dir, sender=sender)
        record = registrar.register(enclave)
        log.info(
            "dev enclave %s: DCAP quote verified by dcap-qvl against the dev root, approved and registered (payee %s)",
            record.enclave,
            payee,
        )
        for template in templates.values():
            log.info("template %s v%s: %s", template.name, inert(template.version), template.id_hex)
        epoch = devnet.provision_keys(rpc_url, deployment, enclave, templates.values(), sender=sender)
        log.info("cluster keys made inside the enclave (epoch %d); every template's public keys published", epoch)

        journal = Journal(state_dir / "journal.sqlite")
        keeper = KeyKeeper(w3, deployment.registry, enclave, registrar, renew_before_seconds=devnet.DEV_ENCLAVE_VALIDITY // 10)
        node = Node(
            w3,
            deployment.coprocessor,
            journal,
            enclave,
            sender,
            deployment.start_block,
            config,
            keeper,
            subscriptions=deployment.subscriptions,
        )
        serve_metrics(node, metrics_port)
        if quote_port:
            quote_server = start_quote_server(enclave, w3, "127.0.0.1", quote_port)
            click.echo(f"quote endpoint (sync mode): http://127.0.0.1:{quote_port}/quote", err=True)
        if demo:
            thread = threading.Thread(target=node.run, name="node", daemon=True)
            thread.start()
            ok = run_demo(w3, deployment, templates)
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
