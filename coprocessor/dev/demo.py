"""The demo `coprocessor dev --demo` runs: real requests through the example consumer and a Uniswap v4
dynamic-fee hook on the real PoolManager, each answer printed as it is mined."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from eth_utils import keccak, to_checksum_address
from web3.types import RPCEndpoint

from coprocessor_enclave.protocol import Status
from coprocessor_enclave.template import Template, encode_args, find_template

from ..chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
from . import devnet, v4
from .consumer import Answer, ExampleConsumerClient

if TYPE_CHECKING:
    from .chains import DevChain


def run_demo(w3: object, deployment: Deployment, templates: dict[bytes, Template]) -> bool:
    """Sends real requests through the example consumer and prints a table of the callbacks."""
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
            f" {answer.latency * 1000:>6.0f} ms  {shorten(answer.describe(template))}"
        )
    latencies = sorted(a.latency for _, _, a, _ in answers)
    click.echo("-" * 100)
    click.echo(
        f"{len(answers)} requests answered on-chain; latency median {latencies[len(latencies) // 2] * 1000:.0f} ms,"
        f" max {latencies[-1] * 1000:.0f} ms (request mined -> callback stored)"
    )
    if not ok:
        click.echo("error: some statuses differ from what the demo expected", err=True)
    return ok and run_hook_demo(w3, deployment, find_template(templates, "v4-volatility"))


def run_chains_demo(chains: Sequence[DevChain], templates: dict[bytes, Template]) -> bool:
    """One request on each further chain, answered by the same enclave and node (`dev --chains N`)."""
    if not chains:
        return True
    median = find_template(templates, "median-price")
    click.echo("\nThe same enclave and node on further chains:")
    ok = True
    for chain in chains:
        w3 = connect(chain.rpc_url)
        client = ExampleConsumerClient(w3, TxSender(w3, ANVIL_KEYS[devnet.USER]), chain.deployment.consumer)
        request_id, sent_at = client.ask(median.template_id, encode_args(median, [[7 * 10**8, 9 * 10**8, 8 * 10**8], 500]))
        answer = client.wait(request_id, sent_at)
        ok &= answer.status == Status.OK
        click.echo(
            f"  chain {chain.chain_id}: 0x{request_id.hex()[:12]}… median-price {answer.status.name}"
            f" {answer.latency * 1000:.0f} ms  {answer.describe(median)}"
        )
    return ok


def run_schedule_demo(w3: Any, deployment: Deployment, templates: dict[bytes, Template], runs: int = 3) -> bool:
    """A cron job: `heartbeat` on "*/5 * * * *" (UTC), paid up front. The demo moves the local chain's clock to each
    due time (anvil_setNextBlockTimestamp) rather than waiting five minutes; the node triggers each run by itself."""
    from eth_abi import decode

    from ..cron import compile_cron

    heartbeat = find_template(templates, "heartbeat")
    owner = TxSender(w3, ANVIL_KEYS[devnet.USER])
    consumer = owner.deploy("ScheduledConsumer", deployment.subscriptions)
    subscriptions = contract(w3, "Subscriptions", deployment.subscriptions)
    fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(heartbeat.template_id).call()
    schedule = (0, 0, runs, 300, 0, compile_cron("*/5 * * * *"))  # startAt now, no interval, runs, 5 min late at most, RunLate
    receipt = owner.call_function(subscriptions, "create", consumer, heartbeat.template_id, b"", schedule, 200_000, 600, value=fee * runs)
    sub_id = int(subscriptions.events.SubscriptionCreated().process_receipt(receipt)[0].args.id)
    click.echo(f'\nA cron job: subscription {sub_id} runs heartbeat on "*/5 * * * *" (UTC), {runs} runs paid up front ({fee * runs} wei):')
    received = contract(w3, "ScheduledConsumer", consumer).events.RunReceived()
    ok = True
    for run in range(runs):
        _, due_at = subscriptions.functions.nextRunAt(sub_id).call()
        w3.provider.make_request("anvil_setNextBlockTimestamp", [int(due_at)])
        w3.provider.make_request("evm_mine", [])  # the chain's clock is now at the due time: the node sees it and triggers
        started = time.monotonic()
        found: list[Any] = []
        while not found and time.monotonic() - started < 30:
            found = [e for e in received.get_logs(from_block=receipt["blockNumber"]) if e.args.runIndex == run]
            time.sleep(0.05)
        if not found or found[0].args.status != Status.OK:
            click.echo(f"  run {run}: no Ok answer within 30 s", err=True)
            return False
        index, block, stamp = decode(list(heartbeat.outputs), found[0].args.output)
        ok &= index == run and stamp >= due_at
        due = time.strftime("%H:%M", time.gmtime(int(due_at)))
        click.echo(
            f"  run {run} due {due} UTC: answered in {(time.monotonic() - started) * 1000:.0f} ms, anchored at block {block}"
            f" ({time.strftime('%H:%M:%S', time.gmtime(stamp))} by the chain's verified clock)"
        )
    return ok


def run_cross_chain_demo(home: DevChain, other: DevChain, templates: dict[bytes, Template]) -> bool:
    """A read across chains: a request on `home` asks for a balance on `other` at a block the request names."""
    from ..dev.chains import DEV_FINALITY_DEPTH

    library = find_template(templates, "cross-chain-balance")
    w3_other = connect(other.rpc_url)
    holder = to_checksum_address("0x" + "c0" * 20)
    block = int(TxSender(w3_other, ANVIL_KEYS[devnet.USER]).transact(holder, b"", value=123_456_789)["blockNumber"])
    w3_other.provider.make_request(RPCEndpoint("anvil_mine"), [DEV_FINALITY_DEPTH])  # final at the dev read depth
    w3 = connect(home.rpc_url)
    client = ExampleConsumerClient(w3, TxSender(w3, ANVIL_KEYS[devnet.USER]), home.deployment.consumer)
    request_id, sent_at = client.ask(library.template_id, encode_args(library, [other.chain_id, block, holder]))
    answer = client.wait(request_id, sent_at)
    expected = w3_other.eth.get_balance(holder, block_identifier=block)
    click.echo(f"\nA read across chains: a request on chain {home.chain_id} asks for a balance on chain {other.chain_id} at block {block}:")
    click.echo(
        f"  0x{request_id.hex()[:12]}… cross-chain-balance {answer.status.name} {answer.latency * 1000:.0f} ms"
        f"  {answer.describe(library)} wei (chain {other.chain_id} says {expected})"
    )
    return answer.status == Status.OK and int.from_bytes(answer.output, "big") == expected


def run_hook_demo(w3: Any, deployment: Deployment, volatility: Template) -> bool:
    """A Uniswap v4 dynamic-fee hook on the real PoolManager: volatile swaps, a request, the callback's fee."""
    click.echo("\nUniswap v4 CoprocessorFeeHook (the real PoolManager bytecode from @uniswap/v4-core):")
    deployer = TxSender(w3, ANVIL_KEYS[devnet.DEPLOYER])
    demo = v4.run_fee_hook_demo(deployer, deployment.coprocessor, volatility.template_id, w3)
    click.echo(
        f"  swap fee before the callback  {demo.fee_before:>7} (hundredths of a bip)   swap tx gas {demo.swap_gas:,} (with the request)"
    )
    click.echo(
        f"  request 0x{demo.request_id.hex()[:12]}… answered  volatility {demo.volatility} -> fee {demo.fee_set}"
        f" in {demo.latency * 1000:.0f} ms (request mined -> callback stored)"
    )
    click.echo(f"  next swap's Swap event fee    {demo.fee_after:>7}")
    ok = demo.fee_after == demo.fee_set > demo.fee_before
    if not ok:
        click.echo("error: the hook's fee did not move as the demo expected", err=True)
    return ok


def shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
