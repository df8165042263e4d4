"""`coprocessor subscription ...` (scheduled jobs), `coprocessor sponsor ...` and `coprocessor job ...` (HTTP jobs).

docs/triggers.md walks through both, from nothing to a running job on Anvil.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import click

from .options import ADDRESS, deployment_option, in_state_dir, json_args, load_template_dirs, rpc_option, templates_option

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_POLICIES = {"run-late": 0, "skip": 1}
_NO_ADDRESS = "0x" + "00" * 20

keys_file_option = click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=in_state_dir("api-keys.toml"),
    show_default="<state dir>/api-keys.toml",
    help="The node's API keys file (`node --jobs-keys`): only each key's SHA-256 is written there.",
)
jobs_url_option = click.option(
    "--url",
    default="http://127.0.0.1:8547",
    show_default=True,
    envvar="COPROCESSOR_JOBS_URL",
    show_envvar=True,
    help="The node's jobs endpoint (`node --jobs-port`; `dev` serves it on 8547).",
)


def _duration(text: str, what: str) -> int:
    """Seconds from `90`, `90s`, `15m`, `2h` or `1d`."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: give seconds, or a number with s, m, h or d (e.g. 15m)", param_hint=what)
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


# ----------------------------------------------------------------------------------------------------- subscriptions


@click.group("subscription")
def subscription_group() -> None:
    """Scheduled jobs paid up front (the Subscriptions contract): create, show, cancel."""


@subscription_group.command("create")
@click.argument("template")
@click.option(
    "--input", "input_hex", default="0x", show_default=True, help="The fixed input every run gets beside its run index (hex bytes)."
)
@click.option("--cron", "cron_expression", default=None, help='A 5-field cron expression in UTC, e.g. "*/5 * * * *" (docs/triggers.md).')
@click.option("--every", default=None, help="Or an interval: seconds, or a number with s, m, h or d (e.g. 1h).")
@click.option("--runs", type=click.IntRange(1, 2**64 - 1), required=True, help="How many runs, at most.")
@click.option(
    "--consumer", type=ADDRESS, default=None, help="The ISubscriptionConsumer each result goes to. Default: a new ScheduledConsumer."
)
@click.option("--budget", type=int, default=None, help="Wei paid up front. Default: the request fee times --runs.")
@click.option("--start", "start_in", default="0", show_default=True, help="When run 0 may start, from now: seconds, or 15m, 2h...")
@click.option("--tolerance", default="5m", show_default=True, help="How late a run may still start.")
@click.option(
    "--policy",
    type=click.Choice(sorted(_POLICIES)),
    default="run-late",
    show_default=True,
    help="Missed runs: run late, or skip to the latest.",
)
@click.option("--callback-gas", type=int, default=200_000, show_default=True, help="Exact gas for the consumer's callback.")
@click.option("--timeout", default="10m", show_default=True, help="Each run's request timeout, after which its fee returns to the budget.")
@rpc_option
@deployment_option
@templates_option
def subscription_create(
    template: str,
    input_hex: str,
    cron_expression: str | None,
    every: str | None,
    runs: int,
    consumer: str | None,
    budget: int | None,
    start_in: str,
    tolerance: str,
    policy: str,
    callback_gas: int,
    timeout: str,
    rpc: str,
    deployment_path: Path,
    template_dirs: tuple[Path, ...],
) -> None:
    """Create a subscription: TEMPLATE (a name or 0x id) runs on a schedule, paid up front.

    Each run's template gets `(uint64 runIndex, bytes input)`: declare `inputs = ["uint64", "bytes"]`. For example:

        coprocessor subscription create run-echo --cron "*/5 * * * *" --runs 12 --templates tests/templates
    """
    from coprocessor_enclave.template import find_template

    from ..chain import Deployment, connect, contract
    from ..cron import CronError, compile_cron, describe
    from .options import dev_or_env_sender

    if (cron_expression is None) == (every is None):
        raise click.UsageError("give the schedule as --cron EXPRESSION or --every INTERVAL (one of them)")
    try:
        spec = compile_cron(cron_expression) if cron_expression is not None else 0
    except CronError as exc:
        raise click.BadParameter(str(exc), param_hint="--cron") from None
    interval = _duration(every, "--every") if every is not None else 0
    chosen = find_template(load_template_dirs(template_dirs), template)
    if list(chosen.inputs) != ["uint64", "bytes"]:
        click.echo(f"note: {chosen.name} takes {list(chosen.inputs)}, but each run passes (uint64 runIndex, bytes input)", err=True)
    try:
        input_data = bytes.fromhex(input_hex.removeprefix("0x"))
    except ValueError:
        raise click.BadParameter("hex bytes, e.g. 0x1234", param_hint="--input") from None
    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "subscriptions")
    owner = dev_or_env_sender(w3, "COPROCESSOR_KEY", "USER", "the subscription's owner")
    if consumer is None:
        consumer = owner.deploy("ScheduledConsumer", deployment.subscriptions)
        click.echo(f"deployed a ScheduledConsumer at {consumer} to receive the results", err=True)
    if budget is None:
        fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(chosen.template_id).call()
        budget = fee * runs
    now = int(w3.eth.get_block("latest")["timestamp"])
    start = _duration(start_in, "--start")
    schedule = (now + start if start else 0, interval, runs, _duration(tolerance, "--tolerance"), _POLICIES[policy], spec)
    subscriptions = contract(w3, "Subscriptions", deployment.subscriptions)
    receipt = owner.call_function(
        subscriptions,
        "create",
        consumer,
        chosen.template_id,
        input_data,
        schedule,
        callback_gas,
        _duration(timeout, "--timeout"),
        value=budget,
    )
    created = subscriptions.events.SubscriptionCreated().process_receipt(receipt)
    sub_id = int(created[0].args.id)
    what = f"cron {cron_expression!r} ({describe(cron_expression)})" if cron_expression else f"every {interval} s"
    click.echo(f"subscription {sub_id}: {chosen.name}, {what}, {runs} runs, budget {budget} wei, results to {consumer}")
    click.echo(f"see it with: coprocessor subscription show {sub_id}")


@subscription_group.command("show")
@click.argument("sub_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@rpc_option
@deployment_option
def subscription_show(sub_id: int, as_json: bool, rpc: str, deployment_path: Path) -> None:
    """Show a subscription: its schedule, budget, the next run and (cron) the due times after it."""
    from ..chain import Deployment, connect, contract
    from ..cron import next_due_times

    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "subscriptions")
    subscriptions = contract(w3, "Subscriptions", deployment.subscriptions)
    s = subscriptions.functions.subscriptions(sub_id).call()
    fields = [entry["name"] for entry in subscriptions.get_function_by_name("subscriptions").abi["outputs"][0]["components"]]
    record = dict(zip(fields, s, strict=True))
    if int(record["owner"], 16) == 0:
        raise click.ClickException(f"no subscription {sub_id} (there are {subscriptions.functions.subscriptionCount().call()})")
    run_index, due_at = subscriptions.functions.nextRunAt(sub_id).call()
    finished = due_at == 2**256 - 1
    upcoming = next_due_times(int(record["cron"]), due_at + 60, 4) if record["cron"] and not finished else []
    shown = {
        "id": sub_id,
        "owner": record["owner"],
        "consumer": record["consumer"],
        "templateId": "0x" + bytes(record["templateId"]).hex(),
        "schedule": f"cron spec 0x{int(record['cron']):x}" if record["cron"] else f"every {record['interval']} s",
        "runsStarted": int(record["nextRun"]),
        "maxRuns": int(record["maxRuns"]),
        "budget": int(record["budget"]),
        "cancelled": bool(record["cancelled"]),
        "nextRun": None if finished else {"index": int(run_index), "dueAt": int(due_at), "due": _when(int(due_at))},
        "thenDue": [_when(t) for t in upcoming],
    }
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for key, value in shown.items():
        if key == "nextRun":
            value = "none: finished or cancelled" if value is None else f"run {value['index']} at {value['due']}"
        elif key == "thenDue":
            if not value:
                continue
            value = ", ".join(value)
        click.echo(f"{key:<12} {value}")


@subscription_group.command("cancel")
@click.argument("sub_id", type=int)
@rpc_option
@deployment_option
def subscription_cancel(sub_id: int, rpc: str, deployment_path: Path) -> None:
    """Cancel a subscription (its owner only): the rest of its budget comes back at once."""
    from ..chain import Deployment, connect, contract
    from .options import dev_or_env_sender

    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "subscriptions")
    owner = dev_or_env_sender(w3, "COPROCESSOR_KEY", "USER", "the subscription's owner")
    subscriptions = contract(w3, "Subscriptions", deployment.subscriptions)
    receipt = owner.call_function(subscriptions, "cancel", sub_id)
    refund = subscriptions.events.SubscriptionCancelled().process_receipt(receipt)[0].args.refund
    click.echo(f"subscription {sub_id} cancelled: {refund} wei back to {owner.address}")


# ----------------------------------------------------------------------------------------------------- sponsors


@click.group("sponsor")
def sponsor_group() -> None:
    """Pay for HTTP jobs (the Sponsorships contract): deposit, add keys with limits, show."""


@sponsor_group.command("deposit")
@click.argument("wei", type=int)
@rpc_option
@deployment_option
def sponsor_deposit(wei: int, rpc: str, deployment_path: Path) -> None:
    """Add WEI to the sponsor's balance (the account in COPROCESSOR_SPONSOR_KEY)."""
    from ..chain import Deployment, connect, contract
    from .options import dev_or_env_sender

    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "sponsorships")
    sponsor = dev_or_env_sender(w3, "COPROCESSOR_SPONSOR_KEY", "SPONSOR", "the sponsor")
    sponsorships = contract(w3, "Sponsorships", deployment.sponsorships)
    sponsor.call_function(sponsorships, "deposit", value=wei)
    click.echo(f"sponsor {sponsor.address}: balance {sponsorships.functions.balanceOf(sponsor.address).call()} wei")


@sponsor_group.command("add-key")
@click.argument("name")
@click.option(
    "--signer", type=ADDRESS, default=None, help="A Signer key instead: jobs signed (EIP-712) by this address, relayed by anyone."
)
@click.option(
    "--relayer",
    type=ADDRESS,
    default=None,
    help="The node's jobs account that relays this API key's jobs. Default: dev account #7 on Anvil.",
)
@click.option("--allowance", type=int, required=True, help="Wei this key may spend in all (refunds come back to it).")
@click.option("--max-fee", type=int, default=None, help="Wei one job may cost at most. Default: the allowance.")
@click.option(
    "--jobs-per-window", type=int, default=0, show_default=True, help="At most this many jobs per --window on-chain (0: no limit)."
)
@click.option("--window", default="0", show_default=True, help="The rate window: seconds, or 1m, 1h...")
@click.option("--rate", type=float, default=1.0, show_default=True, help="API key: jobs a second the node accepts from it.")
@click.option("--burst", type=int, default=5, show_default=True, help="API key: jobs at once the node accepts from it.")
@keys_file_option
@rpc_option
@deployment_option
def sponsor_add_key(
    name: str,
    signer: str | None,
    relayer: str | None,
    allowance: int,
    max_fee: int | None,
    jobs_per_window: int,
    window: str,
    rate: float,
    burst: int,
    keys_file: Path,
    rpc: str,
    deployment_path: Path,
) -> None:
    """Authorise a key to spend the sponsor's balance, with limits.

    By default NAME becomes an API key: a fresh secret is printed once (give it to the client) and its
    SHA-256 is added to the node's keys file; the node relays its jobs. With --signer, jobs must be
    signed by that address instead.
    """
    from ..chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
    from ..dev import devnet
    from ..node.jobs import new_api_key
    from ..sponsorships import KeyConfig, KeyKind, relayed_key_id, signer_key_id
    from .options import LOCAL_CHAIN_ID, dev_or_env_sender

    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "sponsorships")
    sponsor = dev_or_env_sender(w3, "COPROCESSOR_SPONSOR_KEY", "SPONSOR", "the sponsor")
    limits: dict[str, Any] = {"max_fee_per_job": allowance if max_fee is None else max_fee, "allowance": allowance}
    limits.update(max_jobs_per_window=jobs_per_window, window=_duration(window, "--window"))
    if signer is not None:
        key_id, config = signer_key_id(signer), KeyConfig(KeyKind.SIGNER, **limits)
    else:
        if relayer is None:
            if w3.eth.chain_id != LOCAL_CHAIN_ID:
                raise click.UsageError("give --relayer: the address of the node's jobs account (node --jobs-key-env)")
            relayer = TxSender(w3, ANVIL_KEYS[devnet.JOBS]).address
        key_id, config = relayed_key_id(name), KeyConfig(KeyKind.RELAYED, relayer=relayer, **limits)
    sponsor.call_function(contract(w3, "Sponsorships", deployment.sponsorships), "setKey", key_id, config.as_tuple())
    click.echo(f"key {name} (id 0x{key_id.hex()}) may spend {allowance} wei of sponsor {sponsor.address}")
    if signer is not None:
        return
    api_key, digest = new_api_key()
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    with keys_file.open("a") as out:
        out.write(
            f'\n[keys.{name}]\nsha256 = "{digest}"\nsponsor = "{sponsor.address}"\nkey_id = "0x{key_id.hex()}"\nrate = {rate}\nburst = {burst}\n'
        )
    click.echo(f"its SHA-256 is in {keys_file} (the node reads it); the API key, shown this once:")
    click.echo(api_key)


@sponsor_group.command("show")
@click.option("--sponsor", "address", type=ADDRESS, default=None, help="Whose balance. Default: the COPROCESSOR_SPONSOR_KEY account.")
@rpc_option
@deployment_option
def sponsor_show(address: str | None, rpc: str, deployment_path: Path) -> None:
    """Show a sponsor's balance."""
    from ..chain import Deployment, connect, contract
    from .options import dev_or_env_sender

    deployment = Deployment.load(deployment_path)
    w3 = connect(rpc)
    deployment.check_on(w3, "sponsorships")
    address = address or dev_or_env_sender(w3, "COPROCESSOR_SPONSOR_KEY", "SPONSOR", "the sponsor").address
    balance = contract(w3, "Sponsorships", deployment.sponsorships).functions.balanceOf(address).call()
    click.echo(f"sponsor {address}: balance {balance} wei")


# ----------------------------------------------------------------------------------------------------- jobs


@click.group("job")
def job_group() -> None:
    """Send a job to a node over HTTP, and follow it."""


@job_group.command("submit")
@click.argument("template")
@click.argument("args")
@click.option(
    "--consumer", type=ADDRESS, default=None, help="The ISponsoredConsumer the result goes to. Default: a new SponsoredJobConsumer."
)
@click.option("--api-key-env", default="COPROCESSOR_API_KEY", show_default=True, help="Environment variable holding the API key.")
@click.option("--nonce", type=int, default=None, help="Makes a retry safe: the same nonce never runs twice. Default: random.")
@click.option("--wait", "wait_seconds", default=60.0, show_default=True, help="Seconds to follow the job until it settles (0: do not).")
@jobs_url_option
@rpc_option
@deployment_option
@templates_option
def job_submit(
    template: str,
    args: str,
    consumer: str | None,
    api_key_env: str,
    nonce: int | None,
    wait_seconds: float,
    url: str,
    rpc: str,
    deployment_path: Path,
    template_dirs: tuple[Path, ...],
) -> None:
    """POST a job (TEMPLATE on ARGS, a JSON list) to a node with an API key, then follow it until it settles.

    COPROCESSOR_API_KEY=cpk_... coprocessor job submit median-price '[[100, 101, 250], 500]'
    """
    import os

    import httpx

    from coprocessor_enclave.template import encode_args, find_template

    from ..chain import ANVIL_KEYS, Deployment, TxSender, connect
    from ..dev import devnet

    api_key = os.environ.get(api_key_env)
    if not api_key:
        raise click.UsageError(f"set {api_key_env} to the API key `coprocessor sponsor add-key` printed")
    chosen = find_template(load_template_dirs(template_dirs), template)
    input_data = encode_args(chosen, json_args(args, "ARGS"))
    if consumer is None:
        deployment = Deployment.load(deployment_path)
        w3 = connect(rpc)
        consumer = TxSender(w3, ANVIL_KEYS[devnet.USER]).deploy("SponsoredJobConsumer", deployment.sponsorships)
        click.echo(f"deployed a SponsoredJobConsumer at {consumer} to receive the result", err=True)
    body: dict[str, Any] = {"templateId": chosen.id_hex, "input": "0x" + input_data.hex(), "consumer": consumer}
    if nonce is not None:
        body["nonce"] = nonce
    reply = httpx.post(url.rstrip("/") + "/jobs", json=body, headers={"Authorization": f"Bearer {api_key}"}, timeout=90)
    answer = _answer(reply)
    click.echo(f"job {answer['requestId']} requested in {answer['tx']}")
    if wait_seconds > 0:
        _follow(url, answer["requestId"], wait_seconds, chosen)


@job_group.command("status")
@click.argument("request_id")
@jobs_url_option
def job_status(request_id: str, url: str) -> None:
    """Where a job stands (REQUEST_ID as `job submit` printed it), as the node's journal has it."""
    import httpx

    click.echo(json.dumps(_answer(httpx.get(f"{url.rstrip('/')}/jobs/{request_id}", timeout=30)), indent=2))


def _answer(reply: Any) -> dict[str, Any]:
    """The endpoint's JSON, or its refusal as one line."""
    try:
        body = reply.json()
    except ValueError:
        body = {"error": reply.text[:200]}
    if reply.status_code >= 400:
        raise click.ClickException(f"the node refused it (HTTP {reply.status_code}): {body.get('error', body)}")
    return dict(body)


def _follow(url: str, request_id: str, seconds: float, template: Any) -> None:
    import httpx
    from eth_abi import decode

    deadline = time.monotonic() + seconds
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = _answer(httpx.get(f"{url.rstrip('/')}/jobs/{request_id}", timeout=30))
        if state["state"] in ("settled", "expired", "dropped"):
            break
        time.sleep(0.2)
    if state.get("state") != "settled":
        raise click.ClickException(
            f"job {request_id} is {state.get('state', 'unknown')} after {seconds:g} s: follow it with `coprocessor job status {request_id}`"
        )
    output = bytes.fromhex(str(state.get("output", "0x"))[2:])
    shown = decode(list(template.outputs), output) if state.get("statusName") == "OK" else output.decode(errors="replace")
    click.echo(f"settled: {state.get('statusName')} {shown}")
