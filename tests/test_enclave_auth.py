"""The enclave serves its owner only: every call but /info needs the token it wrote at start.

Loopback is no credential. The attack this closes: two enclaves on one host, a template of
the second (allowed private hosts, as `coprocessor dev` runs it) rotating and activating the
first one's key through its HTTP capability, so the first stopped answering.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from coprocessor.errors import EnclaveError
from coprocessor.node.enclave_client import EnclaveClient, read_token
from coprocessor.testing import TemplateRunner
from coprocessor_enclave.rpc import write_token

from .conftest import TEST_TEMPLATES, Devnet


def _post(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_enclave_templateOfAnotherEnclaveOnTheHost_cannotChangeItsKey(stack: Devnet) -> None:
    victim = stack.enclave()
    address_before = victim.info()["address"]
    port = urlparse(stack.enclave_url).port
    with TemplateRunner(TEST_TEMPLATES / "hostile-key-swap", allow_private_hosts=True) as attacker:
        result = attacker.run("hostile-key-swap", [port])
    assert result.ok, result.reason
    (answers,) = result.values
    calls = json.loads(answers)
    assert [c.get("rotate") for c in calls] == [401, 401], calls  # both loopback names refused, nothing activated
    assert "token" in calls[0]["body"]
    assert victim.info()["address"] == address_before
    assert victim.rotate() != address_before  # its owner, with the token, still can (and leaves it pending)


@pytest.mark.parametrize("path", ["/rotate", "/activate", "/run", "/quote", "/attest"])
def test_enclave_callWithoutOrWithAWrongToken_refused(stack: Devnet, path: str) -> None:
    assert _post(stack.enclave_url + path, {})[0] == 401
    status, body = _post(stack.enclave_url + path, {}, {"Authorization": "Bearer " + "00" * 32})
    assert status == 401 and "token" in body


def test_enclave_info_isPublic(stack: Devnet) -> None:
    with urllib.request.urlopen(stack.enclave_url + "/info", timeout=10) as response:
        assert json.loads(response.read())["address"] == stack.enclave().info()["address"]


def test_writeToken_ownerOnlyFileAndFreshEachStart(tmp_path: Path) -> None:
    path = tmp_path / "enclave.token"
    path.write_text("old")
    os.chmod(path, 0o644)
    first = write_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_token(path) == first and len(first) == 64
    assert write_token(path) != first


def test_enclaveClient_missingTokenFile_saysWhatToDo(tmp_path: Path) -> None:
    with pytest.raises(EnclaveError, match="--enclave-token-file"):
        EnclaveClient.with_token_file("http://127.0.0.1:1", tmp_path / "missing.token")


@pytest.mark.parametrize(("length", "code"), [("-1", 400), ("abc", 400), ("99999999", 413)])
def test_enclave_badContentLength_refusedWithoutReading(stack: Devnet, length: str, code: int) -> None:
    import http.client

    token = read_token(stack.enclave_token_file)
    port = urlparse(stack.enclave_url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest("POST", "/attest")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Length", length)
    connection.endheaders()
    response = connection.getresponse()  # answered at once: nothing waits for a body that never comes
    assert response.status == code and b"Content-Length" in response.read()
    connection.close()


def _raw_exchange(port: int, payload: bytes) -> bytes:
    """Sends `payload` on one fresh connection and reads until the enclave closes it (or 5 s pass)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received


def test_enclave_unauthenticatedBodyCarryingARequest_neverServedAsOne(stack: Devnet) -> None:
    # Kept-alive connections must not let an unread body be parsed as the next request: a refused
    # POST whose body is itself a well-formed request gets one answer, the 401, and the connection closes.
    port = urlparse(stack.enclave_url).port
    assert port is not None
    inner = b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n"
    outer = b"POST /rotate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner
    received = _raw_exchange(port, outer)
    assert received.count(b"HTTP/1.1 ") == 1 and received.startswith(b"HTTP/1.1 401"), received[:300]
    get_with_body = b"GET /info HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner
    received = _raw_exchange(port, get_with_body)
    assert received.count(b"HTTP/1.1 ") == 1 and received.startswith(b"HTTP/1.1 200"), received[:300]


def test_enclaveClient_keepsItsConnection_andReplacesOneTheEnclaveClosed(stack: Devnet) -> None:
    client = stack.enclave()
    client.info()
    first = client._http.connection()
    assert first is not None and first.sock is not None
    client.info()
    assert client._http.connection() is first, "a second call opened a new connection"
    first.sock.shutdown(2)  # as the enclave's idle close looks to the client: the next call meets a dead socket
    assert client.info()["address"]
    assert client._http.connection() is not first


def test_enclave_runMany_eachRunItsOwnOutcomeInOneCall(stack: Devnet) -> None:
    from eth_utils import keccak

    from coprocessor.errors import EnclaveUnreachable
    from coprocessor_enclave.enclave import SignedResult
    from coprocessor_enclave.protocol import Request, Status, coprocessor_domain, recover_signer, response_digest
    from coprocessor_enclave.template import encode_args

    median = stack.template("median-price")
    client = stack.enclave()

    def made_up(data: bytes, input_hash: bytes | None = None) -> tuple[Request, bytes]:
        request = Request(
            os.urandom(32), "0x" + "44" * 20, median.template_id, input_hash or keccak(data), 200_000, 0, 2**40, 1, b"\0" * 32
        )
        return request, data

    good = made_up(encode_args(median, [[100, 104, 98], 500]))
    mismatched = made_up(b"\x01", keccak(b"\x02"))  # input not the committed one: refused, never signed
    bad_input = made_up(b"\x00 not abi")  # committed, but not ABI: signed InvalidInput
    streamed = list(client.run_many([good, mismatched, bad_input]))
    assert sorted(i for i, _ in streamed) == [0, 1, 2]
    results = [outcome for _, outcome in sorted(streamed, key=lambda pair: pair[0])]
    assert isinstance(results[0], SignedResult) and results[0].status == Status.OK
    assert isinstance(results[1], EnclaveError) and not isinstance(results[1], EnclaveUnreachable)
    assert "inputHash" in str(results[1])
    assert isinstance(results[2], SignedResult) and results[2].status == Status.INVALID_INPUT
    domain = coprocessor_domain(stack.deployment.chain_id, stack.deployment.coprocessor)
    for (request, _), result in ((good, results[0]), (bad_input, results[2])):
        assert isinstance(result, SignedResult)
        assert recover_signer(response_digest(domain, request, result.status, result.output), result.signature) == result.signer
    with pytest.raises(EnclaveError, match="1-16 runs"):
        list(client.run_many([good] * 17))
    assert client.info()["address"], "the kept-alive connection still serves after a streamed answer and a refusal"


def test_enclave_runMany_aSlowRunHoldsBackNoOtherResult(stack: Devnet) -> None:
    import time

    from eth_abi import encode
    from eth_utils import keccak

    from coprocessor_enclave.protocol import Request

    echo = stack.template("slow-echo")

    def made_up(value: int, sleep_ms: int) -> tuple[Request, bytes]:
        data = encode(["uint256", "uint32"], [value, sleep_ms])
        return Request(os.urandom(32), "0x" + "44" * 20, echo.template_id, keccak(data), 200_000, 0, 2**40, 1, b"\0" * 32), data

    started = time.monotonic()
    arrivals = [(index, time.monotonic() - started) for index, _ in stack.enclave().run_many([made_up(1, 1500), made_up(2, 0)])]
    assert [index for index, _ in arrivals] == [1, 0], arrivals  # the quick run's answer first, streamed
    assert arrivals[0][1] < 1.0 <= arrivals[1][1], arrivals


@pytest.mark.parametrize(
    "headers",
    [
        [("Transfer-Encoding", "chunked")],
        [("Content-Length", "0"), ("Content-Length", "40")],
        [("Content-Length", "\u00b2")],
    ],
)
def test_enclave_ambiguousFraming_refusedAndClosed(stack: Devnet, headers: list[tuple[str, str]]) -> None:
    port = urlparse(stack.enclave_url).port
    assert port is not None
    token = read_token(stack.enclave_token_file)
    inner = b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n"
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
    payload = b"POST /rotate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n" + lines + b"\r\n" + inner
    received = _raw_exchange(port, payload)
    assert received.count(b"HTTP/1.1 ") == 1 and received.startswith(b"HTTP/1.1 400"), received[:300]
