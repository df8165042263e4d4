"""Sponsored jobs on a real Anvil with the devnet deployed: a job signed in Python by eth-account (EIP-712) is accepted by
`Sponsorships.submit` and paid from the sponsor's balance, and its consumer gets the result; a job signed by another key
is refused, and a Relayed key's job is taken from its relayer only.

No node runs here: the response is signed by a throwaway key registered with the dev chain's attestor, as
`EnclaveRegistry.register` takes any key the attestors approve (as in test_key_registry.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from coprocessor.attest.attestor import approve
from coprocessor.chain import ANVIL_KEYS, Deployment, TxSender, connect, contract
from coprocessor.dev import devnet
from coprocessor.errors import ChainError
from coprocessor.node import catalog
from coprocessor.sponsorships import (
    JOB_TYPEHASH,
    Job,
    KeyKind,
    job_digest,
    job_signer,
    relayed_key_id,
    sign_job,
    signer_key_id,
    sponsorships_domain,
)
from coprocessor_enclave.attestation import dev_image_id
from coprocessor_enclave.protocol import (
    EnclaveRecord,
    Fulfillment,
    Request,
    Status,
    TeeType,
    coprocessor_domain,
    encode_fulfill,
    response_digest,
    sign_digest,
)

TEMPLATE_ID = keccak(b"a sponsored template bundle")
AUTHOR_FEE = 10**15
SPONSOR, RELAYER, STRANGER = 6, devnet.NODE, 8  # Anvil accounts: #6 and #8 are free; the node's account relays API-key jobs
ALLOWANCE = 10**18


@dataclass
class Chain:
    """Anvil with the devnet deployed, a published paid template, and a consumer of sponsored jobs."""

    w3: Web3
    deployment: Deployment
    sponsorships: Contract
    consumer: str
    fee: int


@pytest.fixture(scope="module")
def chain(contracts_built: None) -> Iterator[Chain]:
    """A fresh Anvil with the protocol deployed as `coprocessor deploy` does, `TEMPLATE_ID` published with an author fee."""
    port = devnet.free_port()
    anvil = devnet.start_anvil(port)
    try:
        rpc_url = f"http://127.0.0.1:{port}"
        w3 = connect(rpc_url)
        deployment = devnet.deploy(rpc_url)
        deployment.check_on(w3, "sponsorships")
        author = TxSender(w3, ANVIL_KEYS[devnet.AUTHOR])
        catalog.publish(author, deployment.template_registry, TEMPLATE_ID, "sponsored-test", "1.0.0", "", AUTHOR_FEE)
        consumer = TxSender(w3, ANVIL_KEYS[SPONSOR]).deploy("SponsoredJobConsumer", deployment.sponsorships)
        fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(TEMPLATE_ID).call()
        yield Chain(w3, deployment, contract(w3, "Sponsorships", deployment.sponsorships), consumer, int(fee))
    finally:
        devnet.stop(anvil)


def _send(chain: Chain, account: int, function: str, *args: Any, value: int = 0) -> Any:
    """Sends `Sponsorships.function(*args)` from Anvil account `account`; the receipt, or ChainError with the revert."""
    sender = TxSender(chain.w3, ANVIL_KEYS[account])
    data = bytes.fromhex(chain.sponsorships.encode_abi(function, args=list(args))[2:])
    return sender.wait(sender.send(chain.deployment.sponsorships, data, value=value))


def _key(kind: KeyKind, relayer: str = "0x" + "00" * 20) -> tuple[Any, ...]:
    """`ISponsorships.KeyConfig`: any consumer and template, at most 2x the fee a job, no rate limit, no expiry."""
    return (int(kind), relayer, "0x" + "00" * 20, bytes(32), 2 * 10**16, ALLOWANCE, 0, 0, 0)


def _job(chain: Chain, key_id: bytes, nonce: int) -> Job:
    sponsor = TxSender(chain.w3, ANVIL_KEYS[SPONSOR]).address
    deadline = chain.w3.eth.get_block("latest")["timestamp"] + 600
    return Job(sponsor, key_id, chain.consumer, TEMPLATE_ID, encode(["string"], ["ETH/USD"]), 100_000, 3600, nonce, deadline)


def _balance(chain: Chain) -> int:
    return int(chain.sponsorships.functions.balanceOf(TxSender(chain.w3, ANVIL_KEYS[SPONSOR]).address).call())


def _registered_key(chain: Chain) -> bytes:
    """A fresh signing key, registered as a DEV enclave with the dev attestor's approval."""
    key = secrets.token_bytes(32)
    address = keys.PrivateKey(key).public_key.to_checksum_address()
    payee = TxSender(chain.w3, ANVIL_KEYS[devnet.PAYEE]).address
    expires_at = chain.w3.eth.get_block("latest")["timestamp"] + 3600
    record = EnclaveRecord(address, dev_image_id(), TeeType.DEV, payee, expires_at, keccak(b"quote"))
    attestor_key = bytes.fromhex(ANVIL_KEYS[devnet.ATTESTOR].removeprefix("0x"))
    approval = approve(record, attestor_key, chain.deployment.chain_id, chain.deployment.registry)
    registry = contract(chain.w3, "EnclaveRegistry", chain.deployment.registry)
    TxSender(chain.w3, ANVIL_KEYS[devnet.NODE]).call_function(registry, "register", record.as_tuple(), [approval])
    return key


def _request(chain: Chain, receipt: Any) -> Request:
    """The Coprocessor request a `submit` made, rebuilt from its `RequestSubmitted` log as a node's listener does."""
    coprocessor = contract(chain.w3, "Coprocessor", chain.deployment.coprocessor)
    (event,) = coprocessor.events.RequestSubmitted().process_receipt(receipt, errors=DISCARD)
    a = event["args"]
    return Request(
        bytes(a["requestId"]),
        a["consumer"],
        bytes(a["templateId"]),
        bytes(a["inputHash"]),
        a["callbackGasLimit"],
        a["fee"],
        a["deadline"],
        a["anchorBlock"],
        bytes(a["anchorHash"]),
    )


def test_jobDigest_pythonsEip712IsTheContracts(chain: Chain) -> None:
    client = Account.create()
    job = _job(chain, signer_key_id(client.address), 5)
    domain = sponsorships_domain(chain.deployment.chain_id, chain.deployment.sponsorships)
    assert job_digest(job, domain) == bytes(chain.sponsorships.functions.jobDigest(job.as_tuple()).call())
    assert JOB_TYPEHASH == bytes(chain.sponsorships.functions.JOB_TYPEHASH().call())
    # And by hand: hashStruct with `input` hashed, in the domain OpenZeppelin's EIP712 builds.
    fields = list(job.as_tuple())
    fields[4] = keccak(job.input)
    struct_hash = keccak(
        encode(
            ["bytes32", "address", "bytes32", "address", "bytes32", "bytes32", "uint32", "uint64", "uint256", "uint64"],
            [JOB_TYPEHASH, *fields],
        )
    )
    assert job_digest(job, domain) == domain.digest(struct_hash)
    assert domain.separator() == bytes(chain.sponsorships.functions.domainSeparator().call())


def test_submit_jobSignedByEthAccount_acceptedPaidAndAnswered(chain: Chain) -> None:
    client = Account.create()  # the web2 client's key, authorised by the sponsor
    key_id = signer_key_id(client.address)
    _send(chain, SPONSOR, "deposit", value=10 * chain.fee)
    _send(chain, SPONSOR, "setKey", key_id, _key(KeyKind.SIGNER))
    before = _balance(chain)

    job = _job(chain, key_id, 1)
    domain = sponsorships_domain(chain.deployment.chain_id, chain.deployment.sponsorships)
    signature = sign_job(client, job, domain)
    assert job_signer(job, domain, signature) == client.address
    receipt = _send(chain, STRANGER, "submit", job.as_tuple(), signature)  # anyone may relay a signed job
    assert receipt["status"] == 1

    (submitted,) = chain.sponsorships.events.JobSubmitted().process_receipt(receipt, errors=DISCARD)  # other contracts' logs are skipped
    request = _request(chain, receipt)
    assert bytes(submitted["args"]["requestId"]) == request.request_id
    assert submitted["args"]["keyId"] == key_id and submitted["args"]["nonce"] == 1 and submitted["args"]["fee"] == chain.fee
    assert request.consumer == chain.deployment.sponsorships and request.input_hash == keccak(job.input)
    assert _balance(chain) == before - chain.fee
    assert chain.sponsorships.functions.nonceUsed(job.sponsor, key_id, 1).call()

    # An enclave answers; the job's consumer gets the result, with the sponsor that paid.
    enclave_key = _registered_key(chain)
    output = encode(["uint256"], [314159])
    digest = response_digest(coprocessor_domain(chain.deployment.chain_id, chain.deployment.coprocessor), request, Status.OK, output)
    fulfillment = Fulfillment(request, Status.OK, output, sign_digest(enclave_key, digest))
    node = TxSender(chain.w3, ANVIL_KEYS[devnet.NODE])
    assert node.wait(node.send(chain.deployment.coprocessor, encode_fulfill([fulfillment])))["status"] == 1
    received, sponsor, status, stored = (
        contract(chain.w3, "SponsoredJobConsumer", chain.consumer).functions.response(request.request_id).call()
    )
    assert (received, sponsor, status, bytes(stored)) == (True, job.sponsor, 0, output)

    # The same signed job again is a replay.
    with pytest.raises(ChainError, match=rf"^NonceAlreadyUsed\({job.sponsor.lower()}, 0x{key_id.hex()}, 1\)$"):
        _send(chain, STRANGER, "submit", job.as_tuple(), signature)


def test_submit_jobSignedByAnotherKey_refused(chain: Chain) -> None:
    client, impostor = Account.create(), Account.create()
    key_id = signer_key_id(client.address)
    _send(chain, SPONSOR, "deposit", value=10 * chain.fee)
    _send(chain, SPONSOR, "setKey", key_id, _key(KeyKind.SIGNER))
    before = _balance(chain)
    domain = sponsorships_domain(chain.deployment.chain_id, chain.deployment.sponsorships)
    job = _job(chain, key_id, 2)

    with pytest.raises(ChainError, match=r"^InvalidJobSignature\(\)$"):
        _send(chain, STRANGER, "submit", job.as_tuple(), sign_job(impostor, job, domain))
    # Signed by the right key, but for another contract (a domain of another verifying contract): refused too.
    elsewhere = sponsorships_domain(chain.deployment.chain_id, chain.deployment.subscriptions)
    with pytest.raises(ChainError, match=r"^InvalidJobSignature\(\)$"):
        _send(chain, STRANGER, "submit", job.as_tuple(), sign_job(client, job, elsewhere))
    # Or with a field changed after signing.
    signature = sign_job(client, job, domain)
    with pytest.raises(ChainError, match=r"^InvalidJobSignature\(\)$"):
        _send(chain, STRANGER, "submit", replace(job, callback_gas=job.callback_gas + 1).as_tuple(), signature)
    assert _balance(chain) == before, "nothing was charged"
    assert _send(chain, STRANGER, "submit", job.as_tuple(), signature)["status"] == 1


def test_submit_relayedKey_onlyFromItsRelayer(chain: Chain) -> None:
    relayer = TxSender(chain.w3, ANVIL_KEYS[RELAYER]).address
    key_id = relayed_key_id(f"acme-prod-{time.monotonic_ns()}")
    _send(chain, SPONSOR, "deposit", value=10 * chain.fee)
    _send(chain, SPONSOR, "setKey", key_id, _key(KeyKind.RELAYED, relayer))
    job = _job(chain, key_id, 0)
    stranger = TxSender(chain.w3, ANVIL_KEYS[STRANGER]).address
    with pytest.raises(ChainError, match=rf"^NotRelayer\({stranger.lower()}, {relayer.lower()}\)$"):
        _send(chain, STRANGER, "submit", job.as_tuple(), b"")
    assert _send(chain, RELAYER, "submit", job.as_tuple(), b"")["status"] == 1
    (config, jobs_in_window) = chain.sponsorships.functions.keyOf(job.sponsor, key_id).call()
    assert config[0] == KeyKind.RELAYED and config[5] == ALLOWANCE - chain.fee and jobs_in_window == 0
