"""docs/solidity.md's tutorial, as a test: MyFeeHook (solidity/src/tutorial) deployed at a mined address,
a dynamic-fee pool, alternating swaps; the node's callbacks set the fee the next swaps pay."""

from __future__ import annotations

from coprocessor.chain import ANVIL_KEYS, TxSender
from coprocessor.dev import devnet, v4
from coprocessor.dev.toolchain import PROJECT_ROOT, artifact
from coprocessor.node.pipeline import Node
from coprocessor_enclave.protocol import REQUEST_SUBMITTED_TOPIC

from .conftest import Devnet


def test_tutorialHook_callbacksSetTheFeeLaterSwapsPay(stack: Devnet, node: Node) -> None:
    deployer = TxSender(stack.w3, ANVIL_KEYS[devnet.DEPLOYER])
    v4_stack = v4.deploy_v4_stack(deployer)
    template_id = stack.template("v4-volatility").template_id
    hook = v4.deploy_hook(
        deployer, artifact("MyFeeHook"), v4.AFTER_SWAP_FLAG, v4_stack.pool_manager, stack.deployment.coprocessor, template_id
    )
    deployer.transact(hook, b"", value=10**17)  # `coprocessor v4 hook --fund`
    pool = v4.init_pool(deployer, v4_stack, hook)
    fees = []
    for i in range(6):  # as `coprocessor v4 swap`, alternating direction, each answered before the next
        receipt = v4.swap(deployer, v4_stack, pool, i % 2 == 0, 10**18)
        fees.append(v4.swap_fee(receipt, v4_stack.pool_manager))
        logs = stack.w3.eth.get_logs(
            {"fromBlock": receipt["blockNumber"], "toBlock": receipt["blockNumber"], "topics": ["0x" + REQUEST_SUBMITTED_TOPIC.hex()]}
        )
        (request_id,) = {bytes(log["topics"][1]) for log in logs}
        assert request_id in stack.settled({request_id}, receipt["blockNumber"], timeout=60)
    assert fees[0] == 0, "a new dynamic-fee pool starts at fee 0"
    assert fees[-1] > 500, f"the callbacks never raised the fee: {fees}"


def test_tutorialDoc_showsTheWholeContract() -> None:
    """docs/solidity.md says "It is the whole contract": it shows the file, licence, pragma and imports included."""
    doc = (PROJECT_ROOT / "docs" / "solidity.md").read_text()
    shown = doc.split("It is the whole contract:\n\n```solidity\n", 1)[1].split("```\n", 1)[0]
    assert shown == (PROJECT_ROOT / "solidity" / "src" / "tutorial" / "MyFeeHook.sol").read_text()
