"""CoprocessorGatedAction, the Lens-v2-style Open Action, on Anvil with the real enclave and a node.

A mock LensHub (a test double from solidity/test/lens) plays LensHub's post and act roles. A publisher
posts with the module gating on a real ERC-20; profiles act through the hub; the module asks the
token-holder template, which reads the actor's balance through proofs against the anchor block; the
node's fulfilment calls the module back, which approves a holder and refuses a non-holder.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD

from coprocessor.chain import ANVIL_KEYS, TxSender, contract
from coprocessor.dev import devnet
from coprocessor.dev.toolchain import artifact, npm_artifact
from coprocessor.errors import ChainError
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import Status

from .conftest import Devnet

MINIMUM = 500
SETTLE_TIMEOUT = 60


class Lens:
    """The hub, the module attached to one post, a token, and helpers to make profiles and act."""

    def __init__(self, stack: Devnet, token: str | None = None) -> None:
        self.stack = stack
        self.publisher = TxSender(stack.w3, ANVIL_KEYS[devnet.DEPLOYER])
        erc20 = npm_artifact("@uniswap/v4-core", "TestERC20")  # mints its constructor argument to the deployer
        self.token = token or self.publisher.deploy_artifact(erc20, 10**21)
        self.erc20 = stack.w3.eth.contract(address=self.token, abi=erc20["abi"])
        hub_address = self.publisher.deploy("MockLensHub")
        module_address = self.publisher.deploy(
            "CoprocessorGatedAction", stack.deployment.coprocessor, hub_address, stack.template("token-holder").template_id
        )
        self.hub = contract(stack.w3, "MockLensHub", hub_address)
        self.module = contract(stack.w3, "CoprocessorGatedAction", module_address)
        self.publisher_profile = self.profile(self.publisher)
        self.publisher.call_function(
            self.hub, "post", self.publisher_profile, module_address, encode(["address", "uint256"], [self.token, MINIMUM])
        )
        self.pub_id = self.hub.functions.pubCount(self.publisher_profile).call()
        self.publisher.call_function(self.module, "fund", self.publisher_profile, self.pub_id, value=10**17)

    def profile(self, owner: TxSender) -> int:
        """Mints a profile to `owner`; returns its id."""
        self.publisher.call_function(self.hub, "createProfile", owner.address)
        return int(self.hub.functions.profileCount().call())

    def actor(self, name: str, tokens: int) -> tuple[TxSender, int]:
        """A fresh funded account holding `tokens` of the token, and its profile."""
        account = TxSender(self.stack.w3, "0x" + keccak(b"open-action " + name.encode()).hex())
        self.publisher.transact(account.address, b"", value=10**18)
        if tokens:
            self.publisher.call_function(self.erc20, "transfer", account.address, tokens)
        return account, self.profile(account)

    def act(self, actor: TxSender, profile: int) -> tuple[bytes, Any]:
        """Acts on the post through the hub; returns the check's request id and the receipt."""
        params = (self.publisher_profile, self.pub_id, profile, [], [], self.module.address, b"")
        receipt = actor.call_function(self.hub, "act", params)
        (requested,) = self.module.events.ActionRequested().process_receipt(receipt, errors=DISCARD)  # the hub's and the Coprocessor's logs
        assert requested["args"]["actor"] == actor.address
        assert requested["args"]["actorProfileId"] == profile
        return bytes(requested["args"]["requestId"]), receipt

    def settlement(self, request_id: bytes, from_block: int) -> dict[str, Any]:
        """The module's ActionSettled event for `request_id`."""
        (settled,) = self.module.events.ActionSettled().get_logs(from_block=from_block, argument_filters={"requestId": request_id})
        return dict(settled["args"])


def _settle(stack: Devnet, request_ids: set[bytes], from_block: int) -> dict[bytes, Status]:
    statuses = stack.settled(request_ids, from_block, timeout=SETTLE_TIMEOUT)
    assert set(statuses) == request_ids, "the node did not settle every check"
    return statuses


def test_openAction_holderAndNonHolder_holderApprovedNonHolderRefused(stack: Devnet, node: Node) -> None:
    lens = Lens(stack)
    holder, holder_profile = lens.actor("holder", 750)
    outsider, outsider_profile = lens.actor("outsider", MINIMUM - 1)
    start = stack.w3.eth.block_number

    held, act_receipt = lens.act(holder, holder_profile)
    short, _ = lens.act(outsider, outsider_profile)
    key = lens.module.functions.actionKey(lens.publisher_profile, lens.pub_id, holder_profile).call()
    assert lens.module.functions.pendingRequestOf(key).call() == held

    assert _settle(stack, {held, short}, start) == {held: Status.OK, short: Status.OK}
    assert lens.settlement(held, start) == {"requestId": held, "approved": True, "status": 0, "reason": ""}
    assert lens.settlement(short, start) == {"requestId": short, "approved": False, "status": 0, "reason": "balance below the minimum"}
    assert lens.module.functions.isApproved(lens.publisher_profile, lens.pub_id, holder_profile).call()
    assert not lens.module.functions.isApproved(lens.publisher_profile, lens.pub_id, outsider_profile).call()
    assert lens.module.functions.pendingRequestOf(key).call() == b"\0" * 32
    print(f"\nact through the mock hub: {act_receipt['gasUsed']} gas (whole transaction)")


def test_openAction_actWhilePending_refusedByTheModule(stack: Devnet) -> None:
    # No node in this test: the first check stays pending.
    lens = Lens(stack)
    holder, profile = lens.actor("impatient", 750)
    request_id, _ = lens.act(holder, profile)
    params = (lens.publisher_profile, lens.pub_id, profile, [], [], lens.module.address, b"")
    data = bytes.fromhex(lens.hub.encode_abi("act", args=[params]).removeprefix("0x"))
    with pytest.raises(ChainError, match=r"ActionPending\(0x"):
        holder.estimate(lens.hub.address, data)
    key = lens.module.functions.actionKey(lens.publisher_profile, lens.pub_id, profile).call()
    assert lens.module.functions.pendingRequestOf(key).call() == request_id


def test_openAction_tokenWithoutCode_refusedWithTheTemplateReason(stack: Devnet, node: Node) -> None:
    nothing = to_checksum_address("0x" + "0d" * 20)
    lens = Lens(stack, token=nothing)
    actor, profile = lens.actor("no-token", 0)
    start = stack.w3.eth.block_number
    request_id, _ = lens.act(actor, profile)
    assert _settle(stack, {request_id}, start) == {request_id: Status.INVALID_INPUT}
    settled = lens.settlement(request_id, start)
    assert settled["approved"] is False and settled["status"] == Status.INVALID_INPUT
    assert settled["reason"].startswith(f"no contract at token {nothing.lower()}"), settled["reason"]


def test_artifacts_testDoubleAndModule_foundInForgeOutput() -> None:
    assert any(item.get("name") == "act" for item in artifact("MockLensHub")["abi"])
    assert any(item.get("name") == "processPublicationAction" for item in artifact("CoprocessorGatedAction")["abi"])
