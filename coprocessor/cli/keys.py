"""`coprocessor keys`, `secrets` and `encrypt`: the cluster's keys, held only by attested enclaves
(docs/keys.md), and what requesters and template owners seal to them."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import click

from .options import (
    ADDRESS,
    deployment_option,
    dev_or_env_sender,
    enclave_token_option,
    enclave_url_option,
    journal_option,
    json_args,
    load_template_dirs,
    rpc_option,
    templates_option,
)


@click.group("keys")
def keys_group() -> None:
    """The cluster's keys: made in one enclave, passed only to attested enclaves, published per template.

    \b
    First enclave of a cluster:   coprocessor keys genesis --enclave URL
    Every other one:              coprocessor keys join --enclave URL --from URL2 --from-token-file F
    Publish a template's keys:    coprocessor keys publish median-price --enclave URL
    """


@keys_group.command("genesis")
@enclave_url_option
@enclave_token_option
def keys_genesis(enclave_url: str, enclave_token_file: Path) -> None:
    """Make the cluster's first epoch inside the enclave at --enclave (once per cluster)."""
    from ..node.enclave_client import EnclaveClient

    epoch = EnclaveClient.with_token_file(enclave_url, enclave_token_file).keys_genesis()
    click.echo(f"cluster keys made inside the enclave: epoch {epoch}")


@keys_group.command("join")
@enclave_url_option
@enclave_token_option
@click.option("--from", "holder_url", required=True, help="URL of a running enclave of the cluster, which checks this one's quote.")
@click.option(
    "--from-token-file",
    "holder_token_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The token of the enclave at --from.",
)
@rpc_option
@deployment_option
def keys_join(
    enclave_url: str, enclave_token_file: Path, holder_url: str, holder_token_file: Path, rpc: str, deployment_path: Path
) -> None:
    """Give the enclave at --enclave the cluster's keys held by the one at --from.

    The holder checks the newcomer's quote with the attestor's code (measurement, report data
    binding a fresh key and its nonce, no DEV enclave in a production cluster) and seals each live
    epoch to that key. This command only relays sealed messages. It refuses an enclave whose key
    is not active in the EnclaveRegistry (never registered, expired or revoked): a revoked enclave
    gets no new epoch.
    """
    from ..chain import Deployment, connect, contract
    from ..errors import ChainError
    from ..node.enclave_client import EnclaveClient

    newcomer = EnclaveClient.with_token_file(enclave_url, enclave_token_file)
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "registry")
    address = str(newcomer.info()["address"])
    if not contract(w3, "EnclaveRegistry", deployment.registry).functions.isActive(address).call():
        raise ChainError(f"enclave {address} is not active in the EnclaveRegistry (not registered, expired or revoked): it gets no keys")
    epoch = newcomer.join(EnclaveClient.with_token_file(holder_url, holder_token_file))
    click.echo(f"joined: the enclave holds the cluster's keys up to epoch {epoch}")


@keys_group.command("rotate")
@enclave_url_option
@enclave_token_option
def keys_rotate(enclave_url: str, enclave_token_file: Path) -> None:
    """Start a new epoch with a fresh root; the previous one still opens for the grace window.

    Then have every enclave that should keep serving join again, and publish the templates' new keys.
    """
    from ..node.enclave_client import EnclaveClient

    epoch = EnclaveClient.with_token_file(enclave_url, enclave_token_file).rotate_epoch()
    click.echo(f"epoch {epoch} started: join the cluster's other enclaves again (`keys join`), then `keys publish`")


@keys_group.command("publish")
@click.argument("templates", nargs=-1, required=True)
@enclave_url_option
@enclave_token_option
@click.option(
    "--key-env", default="COPROCESSOR_NODE_KEY", show_default=True, help="Environment variable holding the sending account's key."
)
@rpc_option
@deployment_option
@templates_option
def keys_publish(
    templates: tuple[str, ...],
    enclave_url: str,
    enclave_token_file: Path,
    key_env: str,
    rpc: str,
    deployment_path: Path,
    template_dirs: tuple[Path, ...],
) -> None:
    """Publish TEMPLATES' public keys in the KeyRegistry, signed by the enclave at --enclave.

    The registry accepts them only with the signature of a registered, active enclave; anyone may send.
    """
    from coprocessor_enclave.template import find_template

    from ..chain import Deployment, connect
    from ..confidential import publish_keys
    from ..node.enclave_client import EnclaveClient

    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "key_registry")
    sender = dev_or_env_sender(w3, key_env, "NODE", "the sending account")
    enclave = EnclaveClient.with_token_file(enclave_url, enclave_token_file)
    known = load_template_dirs(template_dirs)
    for name in templates:
        chosen = find_template(known, name)
        published = publish_keys(sender, deployment, enclave, chosen.template_id)
        click.echo(f"{chosen.name}: epoch {published.epoch}, input key 0x{published.input_key.hex()}")


@keys_group.command("show")
@click.argument("template")
@rpc_option
@deployment_option
@templates_option
def keys_show(template: str, rpc: str, deployment_path: Path, template_dirs: tuple[Path, ...]) -> None:
    """Show TEMPLATE's keys as the KeyRegistry publishes them."""
    from coprocessor_enclave.template import find_template

    from ..chain import Deployment, connect
    from ..confidential import published_keys

    chosen = find_template(load_template_dirs(template_dirs), template)
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "key_registry")
    published = published_keys(w3, deployment, chosen.template_id)
    click.echo(f"epoch        {published.epoch}")
    click.echo(f"input key    0x{published.input_key.hex()}")
    click.echo(f"secrets key  0x{published.secrets_key.hex()}")


@click.command("encrypt")
@click.argument("template")
@click.argument("args")
@click.option("--consumer", type=ADDRESS, default=None, help="The contract that will send the request. Default: the example consumer.")
@rpc_option
@deployment_option
@templates_option
def encrypt(template: str, args: str, consumer: str | None, rpc: str, deployment_path: Path, template_dirs: tuple[Path, ...]) -> None:
    """Print ARGS encoded for TEMPLATE and sealed to its published input key, as 0x hex.

    The result opens only inside the cluster's enclaves, for this template, the --consumer
    contract, this Coprocessor and chain; pass it as the request's input. ARGS is a JSON list
    (@file.json reads a file, - reads stdin).
    """
    from coprocessor_enclave.template import encode_args, find_template

    from ..chain import Deployment, connect
    from ..confidential import encrypt_input

    chosen = find_template(load_template_dirs(template_dirs), template)
    if not chosen.encrypted_input:
        raise click.UsageError(f"template {chosen.name} takes plain inputs (its manifest has no `encrypted_input = true`)")
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "key_registry")
    sealed = encrypt_input(
        w3, deployment, consumer or deployment.consumer, chosen.template_id, encode_args(chosen, json_args(args, "ARGS"))
    )
    click.echo("0x" + sealed.hex())


@click.group("secrets")
def secrets_group() -> None:
    """Template secrets sealed to the template's key: the node stores them, only enclaves open them."""


@secrets_group.command("put")
@click.argument("template")
@click.argument("name")
@click.option(
    "--value-file",
    type=click.File("rb"),
    default="-",
    show_default="stdin",
    help="Where the secret's value is read from (never a command-line argument: shells keep those).",
)
@rpc_option
@deployment_option
@journal_option
@templates_option
def secrets_put(
    template: str,
    name: str,
    value_file: BinaryIO,
    rpc: str,
    deployment_path: Path,
    journal_path: Path | str,
    template_dirs: tuple[Path, ...],
) -> None:
    """Seal secret NAME of TEMPLATE to the template's published secrets key and store it in the node's journal.

    The node hands the ciphertext to its enclave, which opens it only when TEMPLATE asks for NAME.
    Neither the node nor its operator can read it.
    """
    from coprocessor_enclave.template import find_template

    from ..chain import Deployment, connect
    from ..confidential import encrypt_secret
    from ..node.journal import Journal

    chosen = find_template(load_template_dirs(template_dirs), template)
    if name not in chosen.secrets:
        raise click.UsageError(f"template {chosen.name} declares no secret {name!r} (its `secrets`: {', '.join(chosen.secrets) or 'none'})")
    value = value_file.read().rstrip(b"\n")
    if not value:
        raise click.UsageError("the secret's value is empty: pipe it in, or pass --value-file")
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "key_registry")
    sealed = encrypt_secret(w3, deployment, chosen.template_id, name, value)
    Journal(journal_path).put_secret(chosen.template_id, name, sealed)
    click.echo(f"secret {name} of {chosen.name} sealed ({len(sealed)} bytes) and stored; the node hands it to its enclave", err=True)
