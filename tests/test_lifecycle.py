"""Enclave keys on a real Anvil: the CLI flow, allowDev = false, renewal, revocation and expiry.

The tests share one module stack and run in file order: the last ones revoke and expire keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from coprocessor.attest.registration import KeyKeeper
from coprocessor.chain import ANVIL_KEYS, TxSender, connect, contract
from coprocessor.dev import devnet
from coprocessor.errors import ChainError
from coprocessor.node.enclave_client import EnclaveClient
from coprocessor.node.journal import Journal, State
from coprocessor.node.pipeline import Node, NodeConfig
from coprocessor_enclave.attestation import DevBackend, dev_image_id
from coprocessor_enclave.enclave import Enclave, EnclaveConfig
from coprocessor_enclave.protocol import RequestState
from coprocessor_enclave.rpc import make_server, write_token
from coprocessor_enclave.template import encode_args

from .conftest import Devnet


@pytest.fixture
def spare_enclave(stack: Devnet, tmp_path: Path) -> Iterator[tuple[Enclave, EnclaveClient]]:
    """A second, unregistered DEV enclave bound to the stack's deployment, served on loopback; its token
    is in tmp_path / "enclave.token"."""
    with _serve(stack, stack.deployment.registry, stack.pki_dir, tmp_path / "enclave.token") as served:
        yield served


@contextmanager
def _serve(stack: Devnet, registry: str, pki_dir: Path, token_file: Path) -> Iterator[tuple[Enclave, EnclaveClient]]:
    d = stack.deployment
    enclave = Enclave(EnclaveConfig(d.chain_id, d.coprocessor, registry, stack.payee), stack.templates, DevBackend(pki_dir))
    server = make_server(enclave, write_token(token_file))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield enclave, EnclaveClient.with_token_file(f"http://127.0.0.1:{server.server_address[1]}", token_file)
    finally:
        server.shutdown()
        enclave.close()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coprocessor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _registry(stack: Devnet):  # noqa: ANN202 - a web3 contract
    return contract(stack.w3, "EnclaveRegistry", stack.deployment.registry)


# ---------------------------------------------------------------------------- CLI


def test_cli_attestVerifyAndRegister_devEnclave(stack: Devnet, spare_enclave: tuple[Enclave, EnclaveClient], tmp_path: Path) -> None:
    enclave, client = spare_enclave
    url, token = client.url, ["--enclave-token-file", str(tmp_path / "enclave.token")]
    deployment_file = tmp_path / "deployment.json"
    stack.deployment.save(deployment_file)
    attestation = tmp_path / "attestation.json"
    done = _cli("enclave", "attest", "--enclave", url, *token, "--deployment", str(deployment_file), "--out", str(attestation))
    assert done.returncode == 0, done.stderr

    root = str(stack.pki_dir / "root_ca.pem")
    image = "0x" + dev_image_id().hex()
    verified = _cli("attest", "verify", str(attestation), "--image", image, "--insecure-dev-root", root)
    assert verified.returncode == 0, verified.stderr
    assert '"teeType": "DEV"' in verified.stdout and f'"imageId": "{image}"' in verified.stdout

    refused = _cli("attest", "verify", str(attestation), "--image", image)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: quote is signed by the development PKI (NOT SECURE); refused unless the dev root is configured as insecure"
    ]
    not_listed = _cli("attest", "verify", str(attestation), "--image", "0x" + "ab" * 32, "--insecure-dev-root", root)
    assert not_listed.returncode == 1 and "is not on the allowlist" in not_listed.stderr
    late = _cli("attest", "verify", str(attestation), "--image", image, "--insecure-dev-root", root, "--now", str(2**40))
    assert late.returncode == 1
    (line,) = late.stderr.strip().splitlines()  # dcap-qvl's error chain, on one line, with what to do
    assert line.startswith("error: quote verification failed:") and "fetch fresh collateral" in line, line

    assert not _registry(stack).functions.isActive(enclave.address).call()
    keys = {"COPROCESSOR_NODE_KEY": ANVIL_KEYS[devnet.NODE], "COPROCESSOR_ATTESTOR_KEY": ANVIL_KEYS[devnet.ATTESTOR]}
    registered = _cli(
        "enclave",
        "register",
        "--enclave",
        url,
        *token,
        "--rpc",
        stack.rpc_url,
        "--deployment",
        str(deployment_file),
        "--insecure-dev-root",
        root,
        env=keys,  # no --image: the registry's own allowlist
    )
    assert registered.returncode == 0, registered.stderr
    assert f"enclave {enclave.address} registered as DEV" in registered.stdout
    assert _registry(stack).functions.isActive(enclave.address).call()


def test_register_allowDevFalseRegistry_refusesDevEnclave(stack: Devnet, tmp_path: Path) -> None:
    production = devnet.deploy(stack.rpc_url, allow_dev=False)
    registry = contract(stack.w3, "EnclaveRegistry", production.registry)
    assert registry.functions.allowDev().call() is False
    with pytest.raises(ChainError, match="DevNotAllowed"):
        TxSender(stack.w3, ANVIL_KEYS[devnet.DEPLOYER]).call_function(registry, "allowImage", dev_image_id(), 0)
    with _serve(stack, production.registry, stack.pki_dir, tmp_path / "enclave.token") as (enclave, client):
        registrar = devnet.dev_registrar(stack.rpc_url, production, stack.pki_dir)
        with pytest.raises(ChainError, match="DevNotAllowed"):
            registrar.register(client)  # the attestor approves; the chain still refuses
        assert not registry.functions.isActive(enclave.address).call()


# ---------------------------------------------------------------------------- renewal, revocation, expiry


def _node_with_keeper(stack: Devnet, keeper: KeyKeeper, journal: Path) -> tuple[Node, threading.Thread]:
    w3 = connect(stack.rpc_url)
    node = Node(
        w3,
        stack.deployment.coprocessor,
        Journal(journal),
        keeper.enclave,
        TxSender(w3, ANVIL_KEYS[devnet.NODE]),
        w3.eth.block_number + 1,
        NodeConfig(key_check_interval=0.1),
        keeper,
    )
    thread = threading.Thread(target=node.run, daemon=True)
    thread.start()
    return node, thread


def test_keyKeeper_renewsBeforeExpiry_newKeySigns(stack: Devnet, tmp_path: Path) -> None:
    client = stack.enclave()
    old = client.info()["address"]
    old_expiry = _registry(stack).functions.enclaves(old).call()[2]
    # Renewal is due when the key expires within the window: a window longer than the current key's
    # validity makes it due now, and the fresh key's longer validity makes it not due again.
    registrar = devnet.dev_registrar(stack.rpc_url, stack.deployment, stack.pki_dir, 2 * devnet.DEV_ENCLAVE_VALIDITY)
    keeper = KeyKeeper(stack.w3, stack.deployment.registry, client, registrar, devnet.DEV_ENCLAVE_VALIDITY + 3600)
    node, thread = _node_with_keeper(stack, keeper, tmp_path / "journal.sqlite")
    try:
        deadline = time.monotonic() + 30
        while client.info()["address"] == old and time.monotonic() < deadline:
            time.sleep(0.1)
        new = client.info()["address"]
        assert new != old and keeper.problem is None
        registry = _registry(stack)
        assert registry.functions.isActive(new).call() and registry.functions.isActive(old).call()
        assert registry.functions.enclaves(new).call()[2] > old_expiry
        time.sleep(0.5)  # several more checks: the fresh key is not renewed again
        assert client.info()["address"] == new

        median = stack.template("median-price")
        user = stack.user()
        request_id, sent_at = user.ask(median.template_id, encode_args(median, [[7], 0]))
        user.wait(request_id, sent_at)
        coprocessor = contract(stack.w3, "Coprocessor", stack.deployment.coprocessor)
        (event,) = coprocessor.events.RequestFulfilled().get_logs(from_block=0, argument_filters={"requestId": request_id})
        assert event["args"]["enclave"] == new
    finally:
        node.stop()
        thread.join(10)


def test_node_revokedKey_stopsSigningAtOnce(stack: Devnet, tmp_path: Path) -> None:
    client = stack.enclave()
    keeper = KeyKeeper(stack.w3, stack.deployment.registry, client, None, renew_before_seconds=60)
    node, thread = _node_with_keeper(stack, keeper, tmp_path / "journal.sqlite")
    try:
        address = client.info()["address"]
        TxSender(stack.w3, ANVIL_KEYS[devnet.DEPLOYER]).call_function(_registry(stack), "revokeEnclave", address)
        revoked = f"enclave key {address} was revoked on-chain"
        deadline = time.monotonic() + 10
        while keeper.problem != revoked and time.monotonic() < deadline:
            time.sleep(0.05)
        assert keeper.problem == revoked

        median = stack.template("median-price")
        request_id, _ = stack.user().ask(median.template_id, encode_args(median, [[7], 0]))
        time.sleep(1.5)  # plenty for a local answer (about 0.1 s when the key is usable)
        coprocessor = contract(stack.w3, "Coprocessor", stack.deployment.coprocessor)
        assert RequestState(coprocessor.functions.requestState(request_id).call()) == RequestState.PENDING
        assert [e.request.request_id for e in node.journal.entries(State.SEEN)] == [request_id]
    finally:
        node.stop()
        thread.join(10)


def test_keyKeeper_expiredKey_saysWhy(stack: Devnet, spare_enclave: tuple[Enclave, EnclaveClient]) -> None:
    enclave, client = spare_enclave
    record = devnet.dev_registrar(stack.rpc_url, stack.deployment, stack.pki_dir, validity_seconds=600).register(client)
    keeper = KeyKeeper(stack.w3, stack.deployment.registry, client, None, renew_before_seconds=60)
    assert keeper.problem == "enclave key not checked on-chain yet"  # fails closed until the first check
    assert keeper.check() is None  # 600 s left: fine, and not due for renewal
    stack.w3.provider.make_request("evm_increaseTime", [601])
    stack.w3.provider.make_request("evm_mine", [])
    assert keeper.check() == f"enclave key {record.enclave} expired at {record.expires_at} and no attestor is configured to renew it"
