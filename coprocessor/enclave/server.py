"""The enclave's small local RPC: JSON over HTTP on loopback, and its client."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import CoprocessorError, EnclaveError, EnclaveUnreachable
from ..protocol import Request, SignedQuote, Status
from .attestation import Evidence
from .frames import FrameError, loads_bounded
from .service import Enclave, QuoteRefused, SignedResult

_MAX_BODY = 1024 * 1024


def make_server(enclave: Enclave, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for `enclave`: `GET /info`, `POST /attest`, `/rotate`, `/activate`, `/run` and `/quote`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            reply_json(self, code, body)

        def do_GET(self) -> None:
            if self.path != "/info":
                self._reply(404, {"error": f"no such endpoint {self.path}"})
                return
            try:
                self._reply(200, enclave.info())
            except CoprocessorError as exc:
                self._reply(503, {"error": f"{type(exc).__name__}: {exc}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._reply(413, {"error": "request body too large"})
                return
            try:
                body = loads_bounded(self.rfile.read(length))  # the node is untrusted too
                if self.path == "/attest":
                    nonce = bytes.fromhex(body["nonce"].removeprefix("0x"))
                    self._reply(200, enclave.attest(nonce, body.get("address")).to_json())
                elif self.path in ("/rotate", "/activate", "/quote") and not _loopback(self.client_address[0]):
                    self._reply(403, {"error": f"{self.path} is served to loopback clients only"})
                elif self.path == "/rotate":
                    self._reply(200, {"address": enclave.rotate()})
                elif self.path == "/activate":
                    enclave.activate(body["address"])
                    self._reply(200, {"address": enclave.address})
                elif self.path == "/run":
                    request = Request.from_json(body["request"])
                    result = enclave.run(request, bytes.fromhex(body["input"].removeprefix("0x")))
                    self._reply(
                        200,
                        {
                            "status": int(result.status),
                            "output": "0x" + result.output.hex(),
                            "signature": "0x" + result.signature.hex(),
                            "signer": result.signer,
                        },
                    )
                elif self.path == "/quote":
                    self._reply(200, _quote(enclave, body))
                else:
                    self._reply(404, {"error": f"no such endpoint {self.path}"})
            except EnclaveUnreachable as exc:  # something the enclave depends on is down: worth retrying
                self._reply(503, {"error": f"{type(exc).__name__}: {exc}"})
            except (CoprocessorError, FrameError, ValueError, KeyError, TypeError) as exc:
                self._reply(400, {"error": f"{type(exc).__name__}: {exc}"})
            except Exception as exc:  # never drop the connection: the node would read that as unreachable
                self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _quote(enclave: Enclave, body: dict[str, Any]) -> dict[str, Any]:
    """`/quote`: the signed quote's JSON, or `{status, reason}` when the run did not end Ok (nothing signed)."""
    try:
        signed = enclave.quote(
            _bytes(body["templateId"]),
            _bytes(body["input"]),
            str(body["consumer"]),
            int(body["deadline"]),
            int(body.get("anchorBlock") or 0),
            _bytes(body.get("anchorHash") or "0x" + "00" * 32),
        )
    except QuoteRefused as refused:
        return {"status": int(refused.status), "reason": refused.reason}
    return {"status": int(Status.OK), **signed.to_json()}


def _bytes(value: object) -> bytes:
    return bytes.fromhex(str(value).removeprefix("0x"))


def reply_json(handler: BaseHTTPRequestHandler, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Sends `body` as a JSON response with `code` (and any extra `headers`)."""
    data = json.dumps(body).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _loopback(host: str) -> bool:
    """Key management (rotate, activate) stays with the node on the same machine, even on a public bind."""
    return ipaddress.ip_address(host).is_loopback


class EnclaveClient:
    """Talks to an enclave over its local RPC."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail = json.loads(raw or b"{}").get("error", exc.reason)
            except (ValueError, AttributeError):  # not our JSON: a proxy's error page, say
                detail = f"HTTP {exc.code}: {raw[:200].decode(errors='replace')}"
            if exc.code >= 500:
                raise EnclaveUnreachable(f"enclave could not serve {path} now: {detail}") from None
            raise EnclaveError(f"enclave refused {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise EnclaveUnreachable(f"enclave at {self.url} unreachable: {exc}") from None

    def info(self) -> dict[str, Any]:
        """See `Enclave.info`."""
        return self._call("/info")

    def attest(self, nonce: bytes, address: str | None = None) -> Evidence:
        """See `Enclave.attest`."""
        return Evidence.from_json(self._call("/attest", {"nonce": "0x" + nonce.hex(), "address": address}))

    def rotate(self) -> str:
        """See `Enclave.rotate`."""
        return str(self._call("/rotate", {})["address"])

    def activate(self, address: str) -> None:
        """See `Enclave.activate`."""
        self._call("/activate", {"address": address})

    def run(self, request: Request, input_data: bytes) -> SignedResult:
        """See `Enclave.run`."""
        body = self._call("/run", {"request": request.to_json(), "input": "0x" + input_data.hex()})
        return SignedResult(
            Status(body["status"]),
            bytes.fromhex(body["output"].removeprefix("0x")),
            bytes.fromhex(body["signature"].removeprefix("0x")),
            body["signer"],
        )

    def quote(
        self,
        template_id: bytes,
        input_data: bytes,
        consumer: str,
        deadline: int,
        anchor_block: int = 0,
        anchor_hash: bytes = b"\0" * 32,
    ) -> SignedQuote:
        """See `Enclave.quote`; raises `QuoteRefused` when the run did not end Ok."""
        body = self._call(
            "/quote",
            {
                "templateId": "0x" + template_id.hex(),
                "input": "0x" + input_data.hex(),
                "consumer": consumer,
                "deadline": deadline,
                "anchorBlock": anchor_block,
                "anchorHash": "0x" + anchor_hash.hex(),
            },
        )
        if body["status"] != Status.OK:
            raise QuoteRefused(Status(body["status"]), str(body.get("reason", "")))
        return SignedQuote.from_json(body)
