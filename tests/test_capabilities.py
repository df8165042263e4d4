"""Template capabilities through the real enclave and workers: each allow and deny path.

HTTP goes to a real server on loopback; the enclave enforces the manifest of
tests/templates/capability-probe (hosts 127.0.0.1:*, 3 requests, 2000 bytes, 1 s).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode
from eth_utils import keccak

from coprocessor.errors import EnclaveUnreachable, ManifestError
from coprocessor.testing import LoopbackHttp, Reply, TemplateRunner
from coprocessor_enclave.capabilities import host_allowed, load_secrets
from coprocessor_enclave.enclave import QuoteRefused
from coprocessor_enclave.frames import FrameError, loads_bounded
from coprocessor_enclave.outbound import is_public
from coprocessor_enclave.protocol import Request, Status
from coprocessor_enclave.template import encode_args, load_template

TEST_TEMPLATES = Path(__file__).resolve().parent / "templates"
PROBE = TEST_TEMPLATES / "capability-probe"
API_KEY = "sk-test-" + "5" * 16


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackHttp]:
    with LoopbackHttp() as http:
        http.routes["/price"] = Reply.json({"price": "1234.5"})
        http.routes["/hop"] = Reply.redirect("/price")
        http.routes["/big"] = Reply(200, b"x" * 5000)
        http.routes["/slow"] = Reply(200, b"late", delay=2.0)
        http.routes["/echo"] = lambda seen: Reply.json({"auth": seen.headers.get("authorization"), "body": seen.body.decode()})
        yield http


@pytest.fixture(scope="module")
def runner() -> Iterator[TemplateRunner]:
    with TemplateRunner(PROBE, secrets={"API_KEY": API_KEY}) as runner:
        yield runner


def probe(runner: TemplateRunner, mode: str, argument: str = "") -> tuple[Status, str]:
    result = runner.run("capability-probe", [mode, argument])
    return result.status, result.values[0] if result.ok else result.reason


def test_http_declaredHost_fetches(runner: TemplateRunner, server: LoopbackHttp) -> None:
    assert probe(runner, "get", server.url("/price")) == (Status.OK, f'200 {server.url("/price")} {{"price": "1234.5"}}')


def test_http_undeclaredHost_refused(runner: TemplateRunner, server: LoopbackHttp) -> None:
    status, reason = probe(runner, "get", server.url("/price", host="localhost"))
    assert status == Status.TEMPLATE_ERROR
    assert f"http://localhost:{server.port} is not allowed by [http] hosts" in reason


def test_http_redirectToDeclaredHost_followed(runner: TemplateRunner, server: LoopbackHttp) -> None:
    assert probe(runner, "get", server.url("/hop")) == (Status.OK, f'200 {server.url("/price")} {{"price": "1234.5"}}')


def test_http_redirectToUndeclaredHost_refused(runner: TemplateRunner, server: LoopbackHttp) -> None:
    server.routes["/away"] = Reply.redirect(server.url("/price", host="localhost"))
    status, reason = probe(runner, "get", server.url("/away"))
    assert status == Status.TEMPLATE_ERROR and "is not allowed by [http] hosts" in reason


def test_http_responseOverSizeLimit_refused(runner: TemplateRunner, server: LoopbackHttp) -> None:
    status, reason = probe(runner, "get", server.url("/big"))
    assert status == Status.TEMPLATE_ERROR and "exceeds 2000 bytes" in reason


def test_http_slowerThanItsTimeout_refused(runner: TemplateRunner, server: LoopbackHttp) -> None:
    status, reason = probe(runner, "get", server.url("/slow"))
    assert status == Status.TEMPLATE_ERROR and "ReadTimeout" in reason


def test_http_moreRequestsThanDeclared_refused(runner: TemplateRunner, server: LoopbackHttp) -> None:
    before = len(server.seen)
    status, reason = probe(runner, "get-many", server.url("/price"))
    assert status == Status.TEMPLATE_ERROR and "more than 3 HTTP requests" in reason
    assert len(server.seen) - before == 3


def test_http_privateAddressRefusedUnlessOperatorAllows(server: LoopbackHttp) -> None:
    with TemplateRunner(PROBE, allow_private_hosts=False) as strict:
        status, reason = probe(strict, "get", server.url("/price"))
    assert status == Status.TEMPLATE_ERROR and "non-public address 127.0.0.1" in reason


def test_http_postWithSecretHeader_reachesServer(runner: TemplateRunner, server: LoopbackHttp) -> None:
    status, text = probe(runner, "post", server.url("/echo"))
    assert status == Status.OK
    assert json.loads(text) == {"auth": f"Bearer {API_KEY}", "body": '{"hello": "world"}'}


def test_hostAllowed_patterns() -> None:
    assert host_allowed(("api.example.com",), "api.example.com", 443, "https")
    assert not host_allowed(("api.example.com",), "api.example.com", 80, "http")  # plain HTTP needs a port named
    assert host_allowed(("api.example.com:80",), "api.example.com", 80, "http")
    assert not host_allowed(("api.example.com",), "api.example.com", 8443, "https")
    assert host_allowed(("*.example.com",), "eu.api.example.com", 443, "https")
    assert not host_allowed(("*.example.com",), "example.com.evil.org", 443, "https")
    assert host_allowed(("127.0.0.1:*",), "127.0.0.1", 5000, "http")
    assert host_allowed(("*",), "anything.org", 443, "https")
    assert not host_allowed(("*",), "anything.org", 80, "http")


def test_secret_declaredAndBound_returned(runner: TemplateRunner) -> None:
    assert probe(runner, "secret", "API_KEY") == (Status.OK, API_KEY)


def test_secret_undeclared_refused(runner: TemplateRunner) -> None:
    status, reason = probe(runner, "secret", "OTHER_KEY")
    assert status == Status.TEMPLATE_ERROR and "not declared in the manifest" in reason


def test_secret_declaredButNotBound_refused(runner: TemplateRunner) -> None:
    status, reason = probe(runner, "secret", "UNBOUND_KEY")
    assert status == Status.TEMPLATE_ERROR and "has not bound secret 'UNBOUND_KEY'" in reason


def test_loadSecrets_bindsToNamedTemplatesOnly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_KEY_FOR_TEST", "from-env")
    path = tmp_path / "secrets.toml"
    probe_template = load_template(PROBE)
    path.write_text(
        f'[API_KEY]\nenv = "PROBE_KEY_FOR_TEST"\ntemplates = ["{probe_template.id_hex}"]\n'
        '[OTHER]\nvalue = "v"\ntemplates = ["0x' + "ab" * 32 + '"]\n'
    )
    secrets = load_secrets(path)
    assert secrets["API_KEY"].value == "from-env" and secrets["API_KEY"].allows(probe_template)
    assert not secrets["OTHER"].allows(probe_template)
    path.write_text('[API_KEY]\nenv = "UNSET_VARIABLE_FOR_TEST"\ntemplates = ["*"]\n')
    with pytest.raises(ManifestError, match="UNSET_VARIABLE_FOR_TEST is not set"):
        load_secrets(path)
    path.write_text('[API_KEY]\nvalue = "v"\ntemplates = ["capability-probe"]\n')  # a name anyone can claim
    with pytest.raises(ManifestError, match="must be 0x template ids"):
        load_secrets(path)


def test_random_sameRequestSameBytesOtherRequestOther(runner: TemplateRunner) -> None:
    template = load_template(PROBE)
    data = encode_args(template, ["random", ""])

    def run(request_id: bytes) -> str:
        request = Request(request_id, "0x" + "44" * 20, template.template_id, keccak(data), 0, 0, 2**40, 0, b"\0" * 32)
        signed = runner.enclave.run(request, data)
        assert signed.status == Status.OK, signed.output
        return str(decode(["string"], signed.output)[0])

    first_id = os.urandom(32)
    first, again, other = run(first_id), run(first_id), run(os.urandom(32))
    assert first == again and first != other
    assert len(set(first.split())) == 2  # two calls in one run differ


def test_log_cappedPerRun(runner: TemplateRunner, capfd: pytest.CaptureFixture[str]) -> None:
    assert probe(runner, "log", "100") == (Status.OK, "logged")
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("template capability-probe 0x")]
    assert 10 <= len(lines) <= 20
    assert "log limit of 2000 bytes reached" in lines[-1]


def test_config_passedFromManifest(tmp_path: Path) -> None:
    folder = tmp_path / "probe"
    folder.mkdir()
    for path in PROBE.iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    with open(folder / "template.toml", "a") as manifest:
        manifest.write('\n[config]\nendpoint = "https://api.example.com/v1"\nmodel = "small"\n')
    with TemplateRunner(folder) as runner:
        assert json.loads(probe(runner, "config")[1]) == {"endpoint": "https://api.example.com/v1", "model": "small"}


def test_http_dnsRebinding_connectsOnlyToTheCheckedAddress(server: LoopbackHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first answer is public, any later one loopback (a rebinding DNS server): only the first is ever used."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: str, port: int, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        lookups.append(host)
        return real("8.8.8.8" if len(lookups) == 1 else "127.0.0.1", port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    folder = _probe_copy(Path(tempfile.mkdtemp()), 'hosts = ["rebind.test:*"]')
    before = len(server.seen)
    with TemplateRunner(folder, allow_private_hosts=False) as strict:
        status, reason = probe(strict, "get", f"http://rebind.test:{server.port}/price")
    assert status == Status.TEMPLATE_ERROR, reason  # 8.8.8.8 on that port does not answer (or is unreachable)
    assert len(server.seen) == before, "the loopback server was reached"
    assert lookups == ["rebind.test"], "resolved more than once"


def test_http_enclaveOwnPort_refusedEvenWithPrivateHostsAllowed(runner: TemplateRunner, server: LoopbackHttp) -> None:
    runner.enclave.capabilities = replace(runner.enclave.capabilities, reserved_ports=frozenset({server.port}))
    try:
        status, reason = probe(runner, "get", server.url("/price"))
    finally:
        runner.enclave.capabilities = replace(runner.enclave.capabilities, reserved_ports=frozenset())
    assert status == Status.TEMPLATE_ERROR and "is the enclave itself" in reason


def test_http_headersTrickledPastTheDeadline_endWithTheJob(runner: TemplateRunner) -> None:
    """A server that sends one header byte at a time cannot hold the job past its 3 s."""
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.5)

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    status, reason = probe(runner, "get", f"http://127.0.0.1:{listener.getsockname()[1]}/")
    listener.close()
    assert status in (Status.TEMPLATE_ERROR, Status.TIMEOUT), reason
    assert time.monotonic() - started < 4.5


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/a\x01b", "whitespace or control characters"),
        ("http://[::1/", "malformed"),
        ("ftp://127.0.0.1/", "must be http:// or https://"),
    ],
)
def test_http_malformedUrl_refusedNotCrashed(runner: TemplateRunner, url: str, message: str) -> None:
    status, reason = probe(runner, "get", url)
    assert status == Status.TEMPLATE_ERROR and message in reason


def test_chain_rpcErrorReply_isChainDataInvalidEvenWhenCaught(tmp_path: Path) -> None:
    """A host that refuses to supply chain data cannot turn that into a template's fallback answer."""
    with LoopbackHttp() as rpc:
        rpc.routes["/"] = lambda seen: Reply.json({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "no"}})
        with TemplateRunner(TEST_TEMPLATES / "chain-balance", chain_rpc=rpc.url("/")) as chain_runner:
            result = _ask_chain_balance(chain_runner)
    assert result.status == Status.CHAIN_DATA_INVALID, result.output


def _probe_copy(parent: Path, hosts_line: str) -> Path:
    folder = parent / "probe"
    folder.mkdir()
    for path in PROBE.iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    manifest = folder / "template.toml"
    manifest.write_text(manifest.read_text().replace('hosts = ["127.0.0.1:*"]', hosts_line))
    return folder


def test_loadsBounded_linearOnAdversarialStrings() -> None:
    started = time.monotonic()
    for crafted in (b'\\"' * 500_000, b'"' + b"a" * 1_000_000, b'"\\"' * 300_000):
        with pytest.raises(FrameError):
            loads_bounded(crafted)
    assert time.monotonic() - started < 2.0
    with pytest.raises(FrameError, match="more than 256 arrays and objects"):
        loads_bounded(b"[" * 300 + b"]" * 300)
    with pytest.raises(FrameError, match="not JSON"):
        loads_bounded(b"1" * 5000)  # past Python's int-string conversion limit
    assert loads_bounded(b'{"a": "[[[{{{", "b": [1, {"c": "\\"]"}]}') == {"a": "[[[{{{", "b": [1, {"c": '"]'}]}


def _ask_chain_balance(chain_runner: TemplateRunner) -> Any:
    template = next(iter(chain_runner.templates.values()))
    data = encode_args(template, ["0x" + "7e" * 20, True])
    request = Request(os.urandom(32), "0x" + "44" * 20, template.template_id, keccak(data), 0, 0, 2**40, 5, b"\1" * 32)
    return chain_runner.enclave.run(request, data)


def test_chain_deeplyNestedRpcReply_isChainDataInvalidNotACrash() -> None:
    with LoopbackHttp() as rpc:
        rpc.routes["/"] = Reply(200, b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 99_000 + b"]" * 99_000 + b"}")
        with TemplateRunner(TEST_TEMPLATES / "chain-balance", chain_rpc=rpc.url("/")) as chain_runner:
            result = _ask_chain_balance(chain_runner)
    assert result.status == Status.CHAIN_DATA_INVALID and b"arrays and objects" in result.output


def test_chain_rpcUnreachable_enclaveSignsNothing() -> None:
    """Not provably the host's choice: nothing is signed, so the node retries (with backoff) until the deadline."""
    with LoopbackHttp() as rpc:
        url = rpc.url("/")  # closed once this block ends
    with TemplateRunner(TEST_TEMPLATES / "chain-balance", chain_rpc=url) as chain_runner:
        with pytest.raises(EnclaveUnreachable, match="chain RPC unavailable"):
            _ask_chain_balance(chain_runner)


def test_chain_rpcAnswersHttpError_enclaveSignsNothing() -> None:
    with LoopbackHttp() as rpc:
        rpc.routes["/"] = Reply(502, b"<html>bad gateway</html>")
        with TemplateRunner(TEST_TEMPLATES / "chain-balance", chain_rpc=rpc.url("/")) as chain_runner:
            with pytest.raises(EnclaveUnreachable, match="HTTP 502"):
                _ask_chain_balance(chain_runner)


def test_https_trustsMozillaRootsNotACaFromTheEnclaveEnvironment(
    tmp_path: Path, runner: TemplateRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator who sets SSL_CERT_FILE to their own CA must not be able to intercept template HTTPS."""
    import datetime
    import ipaddress
    import ssl
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "operator CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        status, reason = probe(runner, "get", url)
        assert status == Status.TEMPLATE_ERROR and "CERTIFICATE_VERIFY_FAILED" in reason, reason
        # Control: a client that trusts that CA gets through, so only the enclave's choice of roots refused it.
        trusting = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with urllib.request.urlopen(url, context=trusting, timeout=5) as answer:
            assert answer.read() == b"hi"
    finally:
        server.shutdown()
        server.server_close()


def test_isPublic_looksThroughEmbeddedIpv4() -> None:
    import ipaddress

    assert is_public(ipaddress.ip_address("8.8.8.8"))
    for hidden_loopback in ("::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::7f00:1", "64:ff9b::a00:1"):
        assert not is_public(ipaddress.ip_address(hidden_loopback)), hidden_loopback
    assert is_public(ipaddress.ip_address("64:ff9b::808:808"))  # NAT64 of 8.8.8.8


def test_quote_neverGetsOperatorSecrets(runner: TemplateRunner) -> None:
    """Sync quotes are free to ask for: the operator's keys stay out of them (on-chain requests still get them)."""
    template = load_template(PROBE)
    data = encode_args(template, ["secret", "API_KEY"])
    with pytest.raises(QuoteRefused, match="operator secrets are not offered in sync quotes"):
        runner.enclave.quote(template.template_id, data, "0x" + "44" * 20, int(time.time()) + 60)
    assert probe(runner, "secret", "API_KEY") == (Status.OK, API_KEY)


@pytest.mark.parametrize("keep_reading", [False, True], ids=["sleeps", "fast-reads"])
def test_chain_templateOverrunsItsOwnTime_signedTimeout(keep_reading: bool) -> None:
    """The clock stops only while the host answers: a template cannot make its own overrun unsigned."""
    with LoopbackHttp() as rpc:
        rpc.routes["/"] = lambda seen: Reply.json({"jsonrpc": "2.0", "id": 1, "result": "0x7a69"})
        with TemplateRunner(TEST_TEMPLATES / "chain-then-overrun", chain_rpc=rpc.url("/")) as chain_runner:
            template = next(iter(chain_runner.templates.values()))
            data = encode_args(template, [keep_reading])
            request = Request(os.urandom(32), "0x" + "44" * 20, template.template_id, keccak(data), 0, 0, 2**40, 5, b"\1" * 32)
            signed = chain_runner.enclave.run(request, data)
    assert signed.status == Status.TIMEOUT, signed.output
