"""The walkthrough the docs give a new user, as they give it: a new template (`template new`), published
by its author (`template publish`), a new consumer deployed on the dev chain with forge from a free dev
account (README, "Deploy your own consumer on the dev chain"), a request through it, and its callback."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_abi import decode

from coprocessor.chain import ANVIL_KEYS, TxSender
from coprocessor.cli import main
from coprocessor.dev.consumer import ExampleConsumerClient
from coprocessor.dev.toolchain import SOLIDITY_DIR, tool_path
from coprocessor_enclave.protocol import Status
from coprocessor_enclave.template import encode_args, load_template

from .conftest import open_stack

# Anvil's published development key of account #7, the one the README has a user deploy from.
ACCOUNT_7_KEY = ANVIL_KEYS[7]


def test_walkthrough_newTemplateNewConsumerOnTheDevChain_callbackArrives(
    contracts_built: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    created = CliRunner().invoke(main, ["template", "new", "spread", "--dir", "my-templates"])
    assert created.exit_code == 0, created.output
    template = load_template(tmp_path / "my-templates" / "spread")

    with open_stack(tmp_path / "state", [tmp_path / "my-templates"], unpublished=["spread"]) as stack:
        record = tmp_path / "deployment.json"
        stack.deployment.save(record)
        published = CliRunner().invoke(
            main, ["template", "publish", "my-templates/spread", "--rpc", stack.rpc_url, "--deployment", str(record)]
        )
        assert published.exit_code == 0, published.output

        deployed = subprocess.run(
            [str(tool_path("forge")), "create", "src/examples/ExampleConsumer.sol:ExampleConsumer", "--broadcast",
             "--rpc-url", stack.rpc_url, "--private-key", ACCOUNT_7_KEY, "--constructor-args", stack.deployment.coprocessor],
            cwd=SOLIDITY_DIR, capture_output=True, text=True, check=True,
        )  # fmt: skip
        (consumer,) = re.findall(r"Deployed to: (0x[0-9a-fA-F]{40})", deployed.stdout)

        node, thread = stack.start_node(tmp_path / "journal.sqlite")
        try:
            client = ExampleConsumerClient(stack.w3, TxSender(stack.w3, ACCOUNT_7_KEY), consumer)
            request_id, sent_at = client.ask(template.template_id, encode_args(template, [[10, 20, 60]]), 3600)
            answer = client.wait(request_id, sent_at, 60)
        finally:
            node.stop()
            thread.join(10)
    assert answer.status == Status.OK, answer.output
    assert decode(["uint256", "uint256"], answer.output) == (30, 50)  # the scaffold's mean and spread
