"""`coprocessor request` (on-chain, through the example consumer) and `coprocessor quote` (signed, off-chain)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .options import ADDRESS, deployment_option, json_args, load_template_dirs, rpc_option, templates_option


@click.command()
@click.argument("template")
@click.argument("args")
@rpc_option
@deployment_option
@click.option("--timeout", default=300, show_default=True, help="Seconds before the request may be cancelled and refunded.")
@click.option(
    "--fee", type=int, default=None, help="Fee in wei. Default: the Coprocessor's requestFee (minimum fee plus the template author's fee)."
)
@click.option("--wait", "wait_seconds", default=60.0, show_default=True, help="Seconds to wait for the callback.")
@templates_option
def request(
    template: str,
    args: str,
    rpc: str,
    deployment_path: Path,
    timeout: int,
    fee: int | None,
    wait_seconds: float,
    template_dirs: tuple[Path, ...],
) -> None:
    """Send one request through the example consumer and wait for its callback.

    TEMPLATE is a name or 0x id; ARGS is a JSON list of the template's inputs (@file.json reads
    a file, - reads stdin), e.g.

        coprocessor request median-price '[[100, 101, 250], 500]'
    """
    from coprocessor_enclave.protocol import Status
    from coprocessor_enclave.template import encode_args, find_template

    from ..chain import ANVIL_KEYS, Deployment, TxSender, connect, contract, decode_revert
    from ..dev import devnet
    from ..dev.consumer import ExampleConsumerClient
    from ..errors import ChainError

    chosen = find_template(load_template_dirs(template_dirs), template)
    values = json_args(args, "ARGS")
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "coprocessor", "consumer")
    client = ExampleConsumerClient(w3, TxSender(w3, ANVIL_KEYS[devnet.USER]), deployment.consumer)
    try:
        if fee is None:
            fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(chosen.template_id).call()
            if fee:
                click.echo(f"paying the request fee of {fee} wei (minimum fee plus the author's fee)", err=True)
        input_data = encode_args(chosen, values)
        if chosen.encrypted_input:  # sealed for this consumer: only the cluster's enclaves can read it
            from ..confidential import encrypt_input

            input_data = encrypt_input(w3, deployment, deployment.consumer, chosen.template_id, input_data)
            click.echo(f"input sealed to {chosen.name}'s published input key ({len(input_data)} bytes on-chain)", err=True)
        request_id, sent_at = client.ask(chosen.template_id, input_data, timeout, fee)
    except Exception as exc:  # the Coprocessor's refusals, said with what to do
        data = getattr(exc, "data", None)
        reason = decode_revert(data) if isinstance(data, (str, bytes)) else str(exc)
        if "UnknownTemplate" in reason:
            raise ChainError(
                f"template {chosen.name} ({chosen.id_hex}) is not published on this chain:"
                f" publish it first with `coprocessor template publish {chosen.path}`"
            ) from None
        if "TemplateIsDeprecated" in reason:
            raise ChainError(
                f"template {chosen.name} ({chosen.id_hex}) was deprecated by its author: the Coprocessor refuses new requests for it"
            ) from None
        raise
    click.echo(f"request 0x{request_id.hex()} sent; waiting for the callback...", err=True)
    answer = client.wait(request_id, sent_at, wait_seconds)
    click.echo(f"{answer.status.name} in {answer.latency * 1000:.0f} ms: {answer.describe(chosen)}")
    if answer.status != Status.OK:
        sys.exit(2)


@click.command()
@click.argument("template")
@click.argument("args")
@click.option(
    "--consumer", required=True, type=ADDRESS, help="Address of the contract that will verify the quote (it is bound into the signature)."
)
@click.option(
    "--url", default="http://127.0.0.1:8546", show_default=True, help="A node's quote endpoint (`node --quote-port`, on in `dev`)."
)
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

    from coprocessor_enclave.template import encode_args, find_template

    from ..node.quotes import fetch_quote

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
