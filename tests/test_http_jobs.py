"""HTTP-triggered jobs end to end: a web2 client POSTs a job to the node's jobs endpoint, the node submits it to
Sponsorships (paid from a sponsor's balance), runs it in the enclave and delivers the signed result to the
consumer; the client polls its status. Unauthorised, over-limit and replayed jobs get a clear refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_abi import decode, encode
from eth_account import Account

from coprocessor.chain import ANVIL_KEYS, TxSender, contract
from coprocessor.dev import devnet
from coprocessor.errors import ManifestError
from coprocessor.node import catalog
from coprocessor.node.endpoint import EndpointServer
from coprocessor.node.jobs import JobService, load_api_keys, make_jobs_server, new_api_key, watch_api_keys
from coprocessor.sponsorships import Job, KeyConfig, KeyKind, relayed_key_id, sign_job, signer_key_id, sponsorships_domain
from coprocessor_enclave.protocol import Status

from .conftest import Devnet

SPONSOR, RELAYER, SIGNER, STRANGER = devnet.SPONSOR, devnet.JOBS, 6, 7  # Anvil accounts (the last two only sign)
AUTHOR_FEE = 10**15


@dataclass
class Jobs:
    stack: Devnet
    url: str
    api_key: str
    slow_key: str  # one job a minute
    consumer: str
    template_id: bytes
    fee: int


@pytest.fixture(scope="module")
def jobs(stack: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    w3, deployment = stack.w3, stack.deployment
    template = stack.template("fee-echo")  # left unpublished by the stack: published here with an author fee
    catalog.publish(
        TxSender(w3, ANVIL_KEYS[devnet.AUTHOR]), deployment.template_registry, template.template_id, "fee-echo", "1", "", AUTHOR_FEE
    )
    fee = contract(w3, "Coprocessor", deployment.coprocessor).functions.requestFee(template.template_id).call()
    sponsor, relayer = TxSender(w3, ANVIL_KEYS[SPONSOR]), TxSender(w3, ANVIL_KEYS[RELAYER])
    sponsorships = contract(w3, "Sponsorships", deployment.sponsorships)
    sponsor.call_function(sponsorships, "deposit", value=100 * fee)
    # The API keys: relayed by the node's jobs account; one spends at most 3 jobs' fees.
    api_key, api_hash = new_api_key()
    slow_key, slow_hash = new_api_key()
    for name, allowance in (("partner", 3 * fee), ("slow", 100 * fee)):
        config = KeyConfig(KeyKind.RELAYED, relayer=relayer.address, max_fee_per_job=fee, allowance=allowance)
        sponsor.call_function(sponsorships, "setKey", relayed_key_id(name), config.as_tuple())
    signer = Account.from_key(ANVIL_KEYS[SIGNER])
    sponsor.call_function(
        sponsorships, "setKey", signer_key_id(signer.address), KeyConfig(KeyKind.SIGNER, max_fee_per_job=fee, allowance=10 * fee).as_tuple()
    )
    keys_file = tmp_path_factory.mktemp("jobs") / "api-keys.toml"
    keys_file.write_text(
        f'[keys.partner]\nsha256 = "{api_hash}"\nsponsor = "{sponsor.address}"\nrate = 50\nburst = 50\n'
        f'[keys.slow]\nsha256 = "{slow_hash}"\nsponsor = "{sponsor.address}"\nrate = 0.01\nburst = 1\n'
    )
    consumer = TxSender(w3, ANVIL_KEYS[devnet.USER]).deploy("SponsoredJobConsumer", deployment.sponsorships)
    node, thread = stack.start_node(tmp_path_factory.mktemp("journal") / "journal.sqlite")
    service = JobService(relayer, deployment.sponsorships, watch_api_keys(keys_file), node.journal.get, start_block=deployment.start_block)
    server: EndpointServer = make_jobs_server(service).start()
    try:
        yield Jobs(stack, f"http://127.0.0.1:{server.server_address[1]}", api_key, slow_key, consumer, template.template_id, fee)
    finally:
        server.shutdown()
        node.stop()
        thread.join(10)


def _body(jobs: Jobs, value: int, **extra: Any) -> dict[str, Any]:
    return {
        "templateId": "0x" + jobs.template_id.hex(),
        "input": "0x" + encode(["uint256"], [value]).hex(),
        "consumer": jobs.consumer,
        **extra,
    }


def _post(jobs: Jobs, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(jobs.url + "/jobs", json=body, headers=headers, timeout=60)


def _settled(jobs: Jobs, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = httpx.get(f"{jobs.url}/jobs/{request_id}", timeout=10).json()
        if state["state"] == "settled":
            return dict(state)
        time.sleep(0.1)
    raise AssertionError(f"job {request_id} not settled: {state}")


def test_jobs_apiKeyJob_landsAndTheStatusSaysSo(jobs: Jobs) -> None:
    answer = _post(jobs, _body(jobs, 7), jobs.api_key)
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["state"] == "requested" and job["requestId"].startswith("0x")
    state = _settled(jobs, job["requestId"])
    assert state["statusName"] == "OK" and decode(["uint256"], bytes.fromhex(state["output"][2:]))[0] == 7
    stored = contract(jobs.stack.w3, "SponsoredJobConsumer", jobs.consumer).functions.responses(bytes.fromhex(job["requestId"][2:])).call()
    assert stored[0] is True and stored[2] == Status.OK  # delivered on-chain to the consumer


def test_jobs_unauthorised_refusedWithWhatToDo(jobs: Jobs) -> None:
    missing = _post(jobs, _body(jobs, 1))
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = _post(jobs, _body(jobs, 1), "cpk_not-a-key")
    assert wrong.status_code == 401 and wrong.json()["error"] == "unknown API key"


def test_jobs_signedJob_landsAndAnotherSignerIsRefused(jobs: Jobs) -> None:
    w3 = jobs.stack.w3
    sponsor = TxSender(w3, ANVIL_KEYS[SPONSOR]).address
    domain = sponsorships_domain(w3.eth.chain_id, jobs.stack.deployment.sponsorships)
    signer = Account.from_key(ANVIL_KEYS[SIGNER])
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 600
    job = Job(sponsor, signer_key_id(signer.address), jobs.consumer, jobs.template_id, encode(["uint256"], [5]), 200_000, 600, 11, deadline)
    fields = {"sponsor": sponsor, "signer": signer.address, "nonce": 11, "deadline": deadline}
    good = _post(jobs, _body(jobs, 5, **fields, signature="0x" + sign_job(signer, job, domain).hex()))
    assert good.status_code == 201, good.text
    assert _settled(jobs, good.json()["requestId"])["statusName"] == "OK"

    stranger = Account.from_key(ANVIL_KEYS[STRANGER])
    forged = _post(jobs, _body(jobs, 5, **{**fields, "nonce": 12}, signature="0x" + sign_job(stranger, job, domain).hex()))
    assert forged.status_code == 403, forged.text
    assert forged.json()["reason"] == "InvalidJobSignature"


def test_jobs_deadlineTooClose_refusedBeforeAnythingIsSent(jobs: Jobs) -> None:
    now = int(jobs.stack.w3.eth.get_block("latest")["timestamp"])
    close = _post(jobs, _body(jobs, 4, deadline=now + 5), jobs.api_key)
    assert close.status_code == 400 and "deadline must be at least" in close.json()["error"]


def test_jobs_sameNonceAgain_conflictNamesTheFirstJob(jobs: Jobs) -> None:
    first = _post(jobs, _body(jobs, 3, nonce=424242), jobs.api_key)
    assert first.status_code == 201, first.text
    again = _post(jobs, _body(jobs, 3, nonce=424242), jobs.api_key)
    assert again.status_code == 409
    assert again.json()["reason"] == "NonceAlreadyUsed" and again.json()["requestId"] == first.json()["requestId"]


def test_jobs_rateAndAllowance_refusedWithTheirCodes(jobs: Jobs) -> None:
    assert _post(jobs, _body(jobs, 2), jobs.slow_key).status_code == 201
    limited = _post(jobs, _body(jobs, 2), jobs.slow_key)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    spent = None
    for _ in range(4):  # the partner key may spend 3 fees in all, some already spent above
        spent = _post(jobs, _body(jobs, 9), jobs.api_key)
        if spent.status_code != 201:
            break
    assert spent is not None and spent.status_code == 402, spent.text
    assert spent.json()["reason"] == "AllowanceExceeded"


def test_jobs_statusOfAnUnknownRequest_404(jobs: Jobs) -> None:
    assert httpx.get(f"{jobs.url}/jobs/0x{'ab' * 32}", timeout=10).status_code == 404
    assert httpx.get(f"{jobs.url}/jobs/nonsense", timeout=10).status_code == 400


def test_loadApiKeys_badFiles_sayWhatIsWrong(tmp_path: Path) -> None:
    cases = {
        "": "[keys.<name>]",
        '[keys.a]\nsha256 = "xyz"\nsponsor = "0x' + "11" * 20 + '"\n': "SHA-256",
        '[keys.a]\nsha256 = "' + "a" * 64 + '"\nsponsor = "nobody"\n': "`sponsor` must be an address",
        '[keys.a]\nsha256 = "' + "a" * 64 + '"\nsponsor = "0x' + "11" * 20 + '"\nrate = 0\n': "`rate`",
    }
    for text, message in cases.items():
        path = tmp_path / "keys.toml"
        path.write_text(text)
        with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
            load_api_keys(path)
