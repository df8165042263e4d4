"""`coprocessor v4 ...`: a local Uniswap v4 to try hooks on (deploy, hook, pool, swap)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ChainError
from .options import ADDRESS, deployment_option, in_state_dir, load_template_dirs, rpc_option, templates_option

if TYPE_CHECKING:  # imported where they are used: see __init__.py
    from ..chain import TxSender

_state_option = click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=in_state_dir("v4.json"),
    show_default="<state dir>/v4.json",
    help="Where the v4 addresses are kept between commands.",
)


def _sender(rpc: str) -> TxSender:
    """Anvil's deployer account: these commands are for a local chain."""
    from ..chain import ANVIL_KEYS, TxSender, connect
    from ..dev import devnet

    return TxSender(connect(rpc), ANVIL_KEYS[devnet.DEPLOYER])


def _load(state_path: Path) -> dict[str, Any]:
    if not state_path.is_file():
        raise ChainError(f"no local v4 at {state_path}: run `coprocessor v4 deploy` (or `coprocessor dev`) first")
    state: dict[str, Any] = json.loads(state_path.read_text())
    return state


@click.group("v4")
def v4_group() -> None:
    """A local Uniswap v4 (the real PoolManager bytecode from @uniswap/v4-core) to try hooks on."""


@v4_group.command("deploy")
@rpc_option
@_state_option
def v4_deploy(rpc: str, state_path: Path) -> None:
    """Deploy PoolManager, the test swap and liquidity routers and two test tokens."""
    from ..dev import v4

    stack = v4.deploy_v4_stack(_sender(rpc))
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(asdict(stack), indent=2))
    click.echo(json.dumps(asdict(stack), indent=2))


@v4_group.command("hook")
@click.argument("contract")
@click.option(
    "--flags",
    required=True,
    help="Comma-separated hook permissions (Hooks.sol's, dashed), e.g. after-initialize,after-swap; a wrong one lists them all.",
)
@click.option("--template", "template_key", required=True, help="Template (name or id) passed to the constructor.")
@click.option("--fund", default=0.1, show_default=True, help="Ether sent to the hook for request fees.")
@rpc_option
@deployment_option
@_state_option
@templates_option
def v4_hook(
    contract: str,
    flags: str,
    template_key: str,
    fund: float,
    rpc: str,
    deployment_path: Path,
    state_path: Path,
    template_dirs: tuple[Path, ...],
) -> None:
    """Deploy the forge-built hook CONTRACT at a mined address carrying --flags.

    Its constructor must be (IPoolManager poolManager, ICoprocessor coprocessor, bytes32 templateId),
    as in docs/solidity.md.
    """
    from coprocessor_enclave.template import find_template

    from ..chain import Deployment
    from ..dev import v4
    from ..dev.toolchain import artifact

    try:
        mask = sum(v4.HOOK_FLAGS[name.strip()] for name in flags.split(","))
    except KeyError as exc:
        raise click.BadParameter(f"unknown flag {exc} (known: {', '.join(v4.HOOK_FLAGS)})", param_hint="--flags") from None
    template = find_template(load_template_dirs(template_dirs), template_key)
    sender = _sender(rpc)
    stack = _load(state_path)
    deployment = Deployment.load(deployment_path)
    deployment.check_on(sender.w3, "coprocessor")
    coprocessor = deployment.coprocessor
    address = v4.deploy_hook(sender, artifact(contract), mask, stack["pool_manager"], coprocessor, template.template_id)
    if fund:
        sender.transact(address, b"", value=int(fund * 10**18))
    click.echo(f"{contract} deployed at {address} (flags {mask:#06x}, template {template.name} {template.id_hex[:10]}…)")


@v4_group.command("pool")
@click.argument("hook", type=ADDRESS)
@rpc_option
@_state_option
def v4_pool(hook: str, rpc: str, state_path: Path) -> None:
    """Initialise a dynamic-fee pool of the two test tokens with HOOK, at price 1, with liquidity."""
    from ..dev import v4

    pool = v4.init_pool(_sender(rpc), v4.V4Stack(**_load(state_path)), hook)
    click.echo(f"pool 0x{pool.pool_id.hex()} initialised with hook {pool.hooks} (dynamic fee)")


@v4_group.command("swap")
@click.argument("hook", type=ADDRESS)
@click.option("--one-for-zero", is_flag=True, help="Swap token1 for token0 (default: token0 for token1).")
@click.option("--amount", default=10**18, show_default=True, help="Exact input amount.")
@rpc_option
@_state_option
def v4_swap(hook: str, one_for_zero: bool, amount: int, rpc: str, state_path: Path) -> None:
    """Swap in the dynamic-fee pool of HOOK; print the LP fee from PoolManager's Swap event."""
    from ..chain import connect
    from ..dev import v4

    stack = v4.V4Stack(**_load(state_path))
    pool = v4.Pool(stack.currency0, stack.currency1, v4.DYNAMIC_FEE_FLAG, v4.TICK_SPACING, connect(rpc).to_checksum_address(hook))
    try:
        receipt = v4.swap(_sender(rpc), stack, pool, not one_for_zero, amount)
    except ChainError as exc:
        if "PoolNotInitialized" in str(exc):
            raise ChainError(f"{exc}: no pool with hook {hook} yet; create it with `coprocessor v4 pool {hook}`") from None
        raise
    (event,) = v4.swap_events(receipt, stack.pool_manager)
    click.echo(
        f"swap in block {receipt['blockNumber']}: fee {event.fee} (hundredths of a bip), tick {event.tick}, gas {receipt['gasUsed']:,}"
    )
