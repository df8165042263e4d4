"""The KeyRegistry on a real Anvil: deployed with the protocol and recorded, Python's `template_keys_digest` is
the contract's `keysDigest`, and a record is taken only with the signature of a registered, active enclave key.

The enclave process's signing key never leaves it, so the records here are signed by a throwaway key registered
with the dev chain's attestor, as `EnclaveRegistry.register` takes any key the attestors approve."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_keys import keys
from eth_utils import keccak
from web3 import Web3

from coprocessor.attest.attestor import approve
from coprocessor.chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
from coprocessor.dev import devnet
from coprocessor.errors import ChainError
from coprocessor_enclave.attestation import dev_image_id
from coprocessor_enclave.protocol import (
    KEYS_PUBLISHED_TOPIC,
    TEMPLATE_KEYS_TYPEHASH,
    EnclaveRecord,
    TeeType,
    coprocessor_domain,
    sign_digest,
    template_keys_digest,
)

TEMPLATE_ID = keccak(b"a template bundle")


@pytest.fixture(scope="module")
def chain(contracts_built: None) -> Iterator[tuple[Web3, Deployment]]:
    """A fresh Anvil with the protocol deployed as `coprocessor deploy` does."""
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    try:
        rpc_url = f"http://127.0.0.1:{port}"
        yield connect(rpc_url), devnet.deploy(rpc_url)
    finally:
        devnet.stop(anvil)


def _registered_key(w3: Web3, deployment: Deployment) -> bytes:
    """A fresh signing key, registered as a DEV enclave with the dev attestor's approval."""
    key = secrets.token_bytes(32)
    address = keys.PrivateKey(key).public_key.to_checksum_address()
    payee = TxSender(w3, ANVIL_KEYS[devnet.PAYEE]).address
    expires_at = w3.eth.get_block("latest")["timestamp"] + 3600
    record = EnclaveRecord(address, dev_image_id(), TeeType.DEV, payee, expires_at, keccak(b"quote"))
    attestor_key = bytes.fromhex(ANVIL_KEYS[devnet.ATTESTOR].removeprefix("0x"))
    approval = approve(record, attestor_key, deployment.chain_id, deployment.registry)
    registry = contract(w3, "EnclaveRegistry", deployment.registry)
    TxSender(w3, ANVIL_KEYS[devnet.NODE]).call_function(registry, "register", record.as_tuple(), [approval])
    assert registry.functions.isActive(address).call()
    return key


def _publish_data(deployment: Deployment, w3: Web3, epoch: int, input_key: bytes, secrets_key: bytes, signature: bytes) -> bytes:
    handle = contract(w3, "KeyRegistry", deployment.key_registry)
    return bytes.fromhex(handle.encode_abi("publish", args=[TEMPLATE_ID, epoch, input_key, secrets_key, signature])[2:])


def test_deploy_recordsTheKeyRegistry_boundToThisCoprocessorAndRegistry(chain: tuple[Web3, Deployment]) -> None:
    w3, deployment = chain
    deployment.check_on(w3, "key_registry")
    registry = contract(w3, "KeyRegistry", deployment.key_registry)
    assert registry.functions.coprocessor().call() == deployment.coprocessor
    assert registry.functions.enclaveRegistry().call() == deployment.registry
    assert bytes(registry.functions.TEMPLATE_KEYS_TYPEHASH().call()) == TEMPLATE_KEYS_TYPEHASH
    assert registry.functions.latestEpoch().call() == 0


@pytest.mark.parametrize(
    ("template_id", "epoch", "input_key", "secrets_key"),
    [
        (TEMPLATE_ID, 1, keccak(b"input"), keccak(b"secrets")),
        (b"\xff" * 32, 2**64 - 1, b"\x01" + b"\0" * 31, b"\xff" * 32),
        (b"\0" * 32, 0, b"\0" * 32, b"\0" * 32),  # the view hashes anything; `publish` refuses these
    ],
)
def test_templateKeysDigest_isTheContractsKeysDigest(
    chain: tuple[Web3, Deployment], template_id: bytes, epoch: int, input_key: bytes, secrets_key: bytes
) -> None:
    w3, deployment = chain
    on_chain = contract(w3, "KeyRegistry", deployment.key_registry).functions.keysDigest(template_id, epoch, input_key, secrets_key).call()
    domain = coprocessor_domain(deployment.chain_id, deployment.coprocessor)
    assert bytes(on_chain) == template_keys_digest(domain, template_id, epoch, input_key, secrets_key)


def test_publish_signedByARegisteredEnclaveKey_storedAndAnnounced(chain: tuple[Web3, Deployment]) -> None:
    w3, deployment = chain
    key = _registered_key(w3, deployment)
    input_key, secrets_key = secrets.token_bytes(32), secrets.token_bytes(32)
    digest = template_keys_digest(coprocessor_domain(deployment.chain_id, deployment.coprocessor), TEMPLATE_ID, 1, input_key, secrets_key)
    data = _publish_data(deployment, w3, 1, input_key, secrets_key, sign_digest(key, digest))
    relayer = TxSender(w3, ANVIL_KEYS[devnet.USER])  # anyone may send it

    receipt = relayer.transact(deployment.key_registry, data)
    (log,) = receipt["logs"]
    signer = keys.PrivateKey(key).public_key.to_canonical_address()
    assert [bytes(t) for t in log["topics"]] == [KEYS_PUBLISHED_TOPIC, TEMPLATE_ID, (1).to_bytes(32, "big"), b"\0" * 12 + signer]
    assert bytes(log["data"]) == input_key + secrets_key
    registry = contract(w3, "KeyRegistry", deployment.key_registry)
    assert registry.functions.keysOf(TEMPLATE_ID).call() == (1, input_key, secrets_key)
    assert registry.functions.latestEpoch().call() == 1

    assert not relayer.transact(deployment.key_registry, data)["logs"], "the same record again changes nothing"
    other = template_keys_digest(coprocessor_domain(deployment.chain_id, deployment.coprocessor), TEMPLATE_ID, 1, secrets_key, input_key)
    with pytest.raises(ChainError, match=r"^EpochKeysDiffer\(\)$"):
        relayer.estimate(deployment.key_registry, _publish_data(deployment, w3, 1, secrets_key, input_key, sign_digest(key, other)))


def test_publish_signedByAnUnregisteredKey_refusedWithTheSigner(chain: tuple[Web3, Deployment]) -> None:
    w3, deployment = chain
    key = secrets.token_bytes(32)
    input_key, secrets_key = secrets.token_bytes(32), secrets.token_bytes(32)
    digest = template_keys_digest(coprocessor_domain(deployment.chain_id, deployment.coprocessor), TEMPLATE_ID, 9, input_key, secrets_key)
    data = _publish_data(deployment, w3, 9, input_key, secrets_key, sign_digest(key, digest))
    signer = keys.PrivateKey(key).public_key.to_checksum_address().lower()  # decoded revert arguments are lower-case
    with pytest.raises(ChainError, match=rf"^SignerNotActive\({signer}\)$"):
        TxSender(w3, ANVIL_KEYS[devnet.USER]).estimate(deployment.key_registry, data)


def test_load_recordWithoutKeyRegistry_refusedAsOlderDeployment(chain: tuple[Web3, Deployment], tmp_path: Path) -> None:
    _, deployment = chain
    path = tmp_path / "deployment.json"
    deployment.save(path)
    assert Deployment.load(path) == deployment
    older = json.loads(path.read_text())
    del older["key_registry"]
    path.write_text(json.dumps(older))
    with pytest.raises(ChainError, match="lacks key_registry: it predates this version of the contracts"):
        Deployment.load(path)
