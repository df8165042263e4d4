"""Attestor commands (`coprocessor attest verify|approve`) and the enclave's `attest` and `register`."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import AttestationError
from .options import deployment_option, enclave_token_option, enclave_url_option, policy_kwargs, policy_options, rpc_option

if TYPE_CHECKING:  # imported where they are used: see __init__.py
    from web3 import Web3

    from ..attest.attestor import Policy
    from ..attest.registration import Attestation


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AttestationError(f"cannot read {path}: {exc}") from None


def _der(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data


def onchain_images(w3: Web3, registry: str, from_block: int) -> frozenset[bytes]:
    """Image ids the registry allows now, from its ImageAllowed and ImageRevoked events."""
    from ..chain import contract

    instance = contract(w3, "EnclaveRegistry", registry)
    allowed = {e["args"]["imageId"] for e in instance.events.ImageAllowed().get_logs(from_block=from_block)}
    revoked = {e["args"]["imageId"] for e in instance.events.ImageRevoked().get_logs(from_block=from_block)}
    return frozenset(allowed - revoked)


def build_policy(options: dict[str, Any], onchain: Callable[[], frozenset[bytes]] | None) -> Policy:
    """A Policy from `policy_options` values; the allowlist is `--image`, or the chain's when none is given."""
    from ..attest.attestor import Policy

    if options["images"]:
        images = frozenset(bytes.fromhex(i.removeprefix("0x")) for i in options["images"])
    elif onchain is not None:
        images = onchain()
    else:
        raise click.UsageError("no measurement allowlist: pass --image, or --rpc and --deployment to use the registry's")
    return Policy(
        allowed_images=images,
        allowed_statuses=frozenset({"UpToDate", *options["statuses"]}),
        rejected_advisories=frozenset(options["advisories"]),
        dev_root_ca_der=_der(options["dev_root"]) if options["dev_root"] else None,
        now=options.get("now"),
    )


def collateral_for(options: dict[str, Any], attestation: Attestation) -> dict[str, Any] | None:
    """`--collateral`, or fetched with `--pccs`, or None (the evidence's own)."""
    if options["collateral_path"]:
        collateral: dict[str, Any] = _load_json(options["collateral_path"])
        return collateral
    if options["pccs"]:
        import asyncio

        import dcap_qvl

        try:
            fetched = asyncio.run(dcap_qvl.get_collateral(options["pccs"], attestation.evidence.quote))
        except Exception as exc:
            raise AttestationError(f"fetching collateral from {options['pccs']} failed: {exc}") from None
        fetched_collateral: dict[str, Any] = json.loads(fetched.to_json())
        return fetched_collateral
    return None


def _check_claim_target(attestation: Attestation, chain_id: int, registry: str) -> None:
    claim = attestation.claim
    if claim.chain_id != chain_id or claim.registry.lower() != registry.lower():
        raise AttestationError(f"the claim is for chain {claim.chain_id} registry {claim.registry}, not this deployment")


# ---------------------------------------------------------------------------- attest


@click.group()
def attest_group() -> None:
    """Attestor tools: verify an enclave's evidence, approve it for the registry."""


@attest_group.command("verify")
@click.argument("attestation_path", metavar="ATTESTATION", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rpc", default=None, help="Read the registry's image allowlist from this chain (with --deployment).")
@deployment_option
@click.option(
    "--now",
    type=int,
    default=None,
    help="Verify as of this unix time (default: the clock), for recorded quotes. Only here: approvals always use the clock.",
)
@policy_options
def attest_verify(attestation_path: Path, rpc: str | None, deployment_path: Path, now: int | None, **kwargs: Any) -> None:
    """Verify ATTESTATION (written by `coprocessor enclave attest`) and print what it proves.

    dcap-qvl checks the quote, its certificate chain and collateral; then the TCB status
    and advisories, the RTMR3 event log, the report data binding and the image allowlist.
    Exits 1 with one line saying why when any check fails.
    """
    from ..attest.attestor import verify_evidence
    from ..attest.registration import Attestation
    from ..chain import Deployment, connect

    options = {**policy_kwargs(kwargs), "now": now}
    attestation = Attestation.from_json(_load_json(attestation_path))
    onchain = None
    if rpc:
        deployment = Deployment.load(deployment_path)
        w3 = connect(rpc)
        deployment.check_on(w3, "registry")
        _check_claim_target(attestation, w3.eth.chain_id, deployment.registry)
        onchain = functools.partial(onchain_images, w3, deployment.registry, deployment.start_block)
    policy = build_policy(options, onchain)
    verdict = verify_evidence(attestation.evidence, attestation.claim, policy, collateral_for(options, attestation))
    click.echo(json.dumps({"ok": True, "claim": attestation.claim.to_json(), **verdict.to_json()}, indent=2))


@attest_group.command("approve")
@click.argument("attestation_path", metavar="ATTESTATION", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@rpc_option
@deployment_option
@click.option(
    "--key-env", default="COPROCESSOR_ATTESTOR_KEY", show_default=True, help="Environment variable holding the attestor's private key."
)
@click.option("--validity", default=30 * 24 * 3600, show_default=True, help="Seconds the registration stays valid.")
@click.option(
    "--expires-at",
    type=int,
    default=None,
    help="Exact expiry (unix time) instead of now + --validity: k-of-n attestors must all sign the same record.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the approval here (default: stdout).")
@policy_options
def attest_approve(
    attestation_path: Path,
    rpc: str,
    deployment_path: Path,
    key_env: str,
    validity: int,
    expires_at: int | None,
    out: Path | None,
    **kwargs: Any,
) -> None:
    """Verify ATTESTATION, then sign the EIP-712 approval `EnclaveRegistry.register` expects.

    The claim must name this deployment's chain and registry. The output holds the record
    and the signature; gather the threshold's worth and pass them to `register`.
    """
    from ..attest.attestor import approve, record_for, verify_evidence
    from ..attest.registration import Attestation
    from ..chain import Deployment, connect

    options = policy_kwargs(kwargs)
    key = os.environ.get(key_env)
    if not key:
        raise click.UsageError(f"set {key_env} to the attestor's private key")
    attestation = Attestation.from_json(_load_json(attestation_path))
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "registry")
    claim = attestation.claim
    _check_claim_target(attestation, w3.eth.chain_id, deployment.registry)
    policy = build_policy(options, functools.partial(onchain_images, w3, deployment.registry, deployment.start_block))
    verdict = verify_evidence(attestation.evidence, claim, policy, collateral_for(options, attestation))
    record = record_for(verdict, claim, expires_at or w3.eth.get_block("latest")["timestamp"] + validity)
    signature = approve(record, bytes.fromhex(key.removeprefix("0x")), claim.chain_id, claim.registry)
    result = {
        "record": {
            "enclave": record.enclave,
            "imageId": "0x" + record.image_id.hex(),
            "teeType": int(record.tee_type),
            "payee": record.payee,
            "expiresAt": record.expires_at,
            "quoteHash": "0x" + record.quote_hash.hex(),
        },
        "approval": "0x" + signature.hex(),
    }
    text = json.dumps(result, indent=2)
    if out:
        out.write_text(text + "\n")
        click.echo(f"approval for {record.enclave} ({record.tee_type.name}, expires {record.expires_at}) written to {out}", err=True)
    else:
        click.echo(text)


# ---------------------------------------------------------------------------- enclave attest / register


@click.command("attest")
@enclave_url_option
@enclave_token_option
@deployment_option
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write the attestation (claim + evidence)."
)
def enclave_attest(enclave_url: str, enclave_token_file: Path, deployment_path: Path, out: Path) -> None:
    """Ask the enclave for evidence over a fresh nonce and write it for attestors."""
    from ..attest.registration import attest
    from ..chain import Deployment
    from ..node.enclave_client import EnclaveClient

    deployment = Deployment.load(deployment_path)
    attestation = attest(EnclaveClient.with_token_file(enclave_url, enclave_token_file), deployment.chain_id, deployment.registry)
    out.write_text(json.dumps(attestation.to_json(), indent=2) + "\n")
    click.echo(f"attestation for {attestation.claim.enclave} ({attestation.evidence.backend}) written to {out}")


@click.command("register")
@enclave_url_option
@enclave_token_option
@rpc_option
@deployment_option
@click.option(
    "--attestor-key-env",
    "attestor_envs",
    multiple=True,
    default=["COPROCESSOR_ATTESTOR_KEY"],
    show_default=True,
    help="Environment variable with an attestor key; repeat for k-of-n.",
)
@click.option(
    "--key-env",
    default="COPROCESSOR_NODE_KEY",
    show_default=True,
    help="Environment variable holding the key that sends the register transaction.",
)
@click.option("--validity", default=30 * 24 * 3600, show_default=True, help="Seconds the registration stays valid.")
@policy_options
def enclave_register(
    enclave_url: str,
    enclave_token_file: Path,
    rpc: str,
    deployment_path: Path,
    attestor_envs: tuple[str, ...],
    key_env: str,
    validity: int,
    **kwargs: Any,
) -> None:
    """The whole flow: attest, verify with dcap-qvl, approve with each attestor key, register on-chain."""
    from ..attest.registration import Registrar
    from ..chain import Deployment, TxSender, connect
    from ..node.enclave_client import EnclaveClient

    options = policy_kwargs(kwargs)
    keys = [os.environ.get(name) for name in (key_env, *attestor_envs)]
    missing = [name for name, value in zip((key_env, *attestor_envs), keys, strict=True) if not value]
    if missing:
        raise click.UsageError(f"set {', '.join(missing)}")
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "registry")
    policy = build_policy(options, functools.partial(onchain_images, w3, deployment.registry, deployment.start_block))
    attestor_keys = [bytes.fromhex(k.removeprefix("0x")) for k in keys[1:]]  # type: ignore[union-attr]
    registrar = Registrar(
        w3,
        deployment,
        TxSender(w3, str(keys[0])),
        attestor_keys,
        policy,
        validity,
        collateral=functools.partial(collateral_for, options),
    )
    record = registrar.register(EnclaveClient.with_token_file(enclave_url, enclave_token_file))
    click.echo(
        f"enclave {record.enclave} registered as {record.tee_type.name}, image 0x{record.image_id.hex()}, expires at {record.expires_at}"
    )
