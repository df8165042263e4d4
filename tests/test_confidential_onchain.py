"""Confidential requests end to end on Anvil, through the CLI a user would type: an input sealed to a
template's published key is answered, and its plaintext appears nowhere on-chain or in the node's log;
a secret sealed by its owner is read by the template, and the node's journal holds only ciphertext."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_abi import encode

from coprocessor.cli import main
from coprocessor.dev import devnet
from coprocessor.node.pipeline import Node

from .conftest import TEST_TEMPLATES, Devnet

SECRET_VALUE = "owner-only-3f9d1c7a"
PRIVATE_VALUES = [271828182845, 314159265358]  # distinctive: their 32-byte words are looked for everywhere


@pytest.fixture(scope="module")
def keyed(stack: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack's enclave makes the cluster's keys and publishes the test templates' keys; the deployment record's path."""
    templates = [stack.template("sealed-sum"), stack.template("secret-digest")]
    devnet.provision_keys(stack.rpc_url, stack.deployment, stack.enclave(), templates)
    record = tmp_path_factory.mktemp("deployment") / "deployment.json"
    stack.deployment.save(record)
    return record


def _cli(stack: Devnet, record: Path, *args: str, stdin: str | None = None) -> str:
    common = ["--rpc", stack.rpc_url, "--deployment", str(record), "--templates", str(TEST_TEMPLATES)]
    result = CliRunner().invoke(main, [*args, *common], input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_request_encryptedInput_answeredAndItsPlaintextIsNowhere(
    stack: Devnet, keyed: Path, node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first_block = stack.w3.eth.block_number + 1
    shown = _cli(stack, keyed, "request", "sealed-sum", f"[{PRIVATE_VALUES}]")
    assert "OK in" in shown and str(sum(PRIVATE_VALUES)) in shown, shown

    words = [encode(["uint256"], [v]) for v in PRIVATE_VALUES]
    seen = bytearray()
    for number in range(first_block, stack.w3.eth.block_number + 1):
        block = stack.w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            seen += bytes(tx["input"])
            for entry in stack.w3.eth.get_transaction_receipt(tx["hash"])["logs"]:
                seen += bytes(entry["data"])
    assert len(seen) > 1000, "the request's transactions were read"
    assert not any(word in seen for word in words), "a private value is on-chain"
    logged = caplog.text
    assert not any(str(v) in logged or word.hex() in logged for v, word in zip(PRIVATE_VALUES, words, strict=True))


def test_secretsPut_templateReadsTheSecretTheOperatorNeverHeld(
    stack: Devnet, keyed: Path, node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _cli(stack, keyed, "secrets", "put", "secret-digest", "API_TOKEN", "--journal", str(node.journal.target), stdin=SECRET_VALUE + "\n")
    deadline = time.monotonic() + 20
    while "sealed secret API_TOKEN" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "handed to the enclave" in caplog.text

    shown = _cli(stack, keyed, "request", "secret-digest", "[1]")
    assert "0x" + hashlib.sha256(SECRET_VALUE.encode()).hexdigest() in shown, shown
    journal = Path(str(node.journal.target))
    stored = b"".join(p.read_bytes() for p in journal.parent.glob(journal.name + "*"))  # the file and its WAL
    assert len(stored) > 0 and SECRET_VALUE.encode() not in stored, "the journal holds the secret in the clear"
    assert SECRET_VALUE not in caplog.text


def test_encrypt_plainTemplate_saysItTakesPlainInputs(stack: Devnet, keyed: Path) -> None:
    common = ["--rpc", stack.rpc_url, "--deployment", str(keyed), "--templates", str(TEST_TEMPLATES)]
    result = CliRunner().invoke(main, ["encrypt", "fee-echo", "[1]", *common])
    assert result.exit_code == 2 and "takes plain inputs" in result.output


def test_sealedInputConsumer_inputSealedForItWithTheCli_answered(stack: Devnet, keyed: Path, node: Node) -> None:
    from eth_abi import decode

    from coprocessor.chain import ANVIL_KEYS, TxSender, contract

    sender = TxSender(stack.w3, ANVIL_KEYS[devnet.USER])
    address = sender.deploy("SealedInputConsumer", stack.deployment.coprocessor, stack.deployment.key_registry)
    sealed = _cli(stack, keyed, "encrypt", "sealed-sum", "[[40, 2]]", "--consumer", address).strip()
    consumer = contract(stack.w3, "SealedInputConsumer", address)
    template_id = stack.template("sealed-sum").template_id
    fee = contract(stack.w3, "Coprocessor", stack.deployment.coprocessor).functions.requestFee(template_id).call()
    data = consumer.encode_abi("askSealed", args=[template_id, bytes.fromhex(sealed.removeprefix("0x")), 300])
    receipt = sender.wait(sender.send(address, bytes.fromhex(data.removeprefix("0x")), value=fee))
    assert receipt["status"] == 1
    request_id = bytes(receipt["logs"][0]["topics"][1])  # the Coprocessor's RequestSubmitted comes first
    deadline = time.monotonic() + 30
    while not consumer.functions.outputs(request_id).call() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert decode(["uint256"], consumer.functions.outputs(request_id).call()) == (42,)


def test_keysJoin_refusesAnEnclaveNotActiveInTheRegistryThenJoinsItOnceRegistered(stack: Devnet, keyed: Path, tmp_path: Path) -> None:
    payee = stack.payee
    process, newcomer = devnet.start_enclave(stack.deployment, payee, [TEST_TEMPLATES], stack.pki_dir, tmp_path / "new.token")
    try:
        args = ["keys", "join", "--enclave", newcomer.url, "--enclave-token-file", str(tmp_path / "new.token")]
        args += ["--from", stack.enclave_url, "--from-token-file", str(stack.enclave_token_file)]
        args += ["--rpc", stack.rpc_url, "--deployment", str(keyed)]
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code == 1 and "not active in the EnclaveRegistry" in refused.output, refused.output
        devnet.register_enclave(stack.rpc_url, stack.deployment, newcomer, stack.pki_dir)
        joined = CliRunner().invoke(main, args)
        assert joined.exit_code == 0 and "joined" in joined.output, joined.output
        template_id = stack.template("sealed-sum").template_id
        assert newcomer.template_keys(template_id)[:3] == stack.enclave().template_keys(template_id)[:3]
    finally:
        devnet.stop(process)
