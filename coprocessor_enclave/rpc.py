"""The enclave's small RPC: JSON over HTTP, every call but `/info` authenticated by the owner's token.

Loopback is not authentication: another enclave's template, or any local process, can reach a
loopback port. The token is made here at start and written to a file only its owner can read.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .attestation import Evidence
from .enclave import Enclave, QuoteRefused, SignedResult
from .errors import CoprocessorError, EnclaveUnreachable
from .frames import FrameError, loads_bounded
from .keyring import MAX_LIVE_EPOCHS
from .protocol import Request, Status
from .provisioning import JoinRequest

_MAX_BODY = 1024 * 1024
# A connection is kept alive between requests (the node keeps one per enclave thread) and closed
# after this long without one, so idle connections do not hold a thread each for ever.
IDLE_SECONDS = 30.0
# Runs one `/run` call may carry (the node sends what it has claimed, a few at a time): each is a
# job of its own, run concurrently within the enclave's slots, answered together.
MAX_RUNS_PER_CALL = 16


TOKEN_HEADER = "Authorization"


def write_token(path: Path | str) -> str:
    """A fresh token for this enclave's owner, written to `path` readable by our uid only; returns it."""
    token = secrets.token_hex(32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode on open
        os.write(fd, token.encode() + b"\n")
    finally:
        os.close(fd)
    return token


def make_server(enclave: Enclave, token: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for `enclave`: public `GET /info`; `POST /attest`, `/rotate`, `/activate`, `/run` and
    `/quote` for callers that send `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()
    # Threads that wait on the enclave's slots for the runs of batched calls (never more run at once than the slots).
    runners = ThreadPoolExecutor(max_workers=2 * MAX_RUNS_PER_CALL, thread_name_prefix="enclave-run")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept alive: every reply has a Content-Length (or is chunked)
        timeout = IDLE_SECONDS
        disable_nagle_algorithm = True  # a streamed answer is several small writes: none may wait for an ACK

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            reply_json(self, code, body)

        def _stream(self, runs: dict[Future[SignedResult], int]) -> None:
            """Each run's line as it ends (NDJSON, chunked): a slow run holds back no other run's result."""
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for future in as_completed(runs):
                line = json.dumps({"index": runs[future], **_run_outcome(future)}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")

        def _framing_is_plain(self) -> bool:
            """One Content-Length at most, and no Transfer-Encoding: anything else could make a body we
            do not read look like the next request on a kept-alive connection."""
            return "Transfer-Encoding" not in self.headers and len(self.headers.get_all("Content-Length") or []) <= 1

        def do_GET(self) -> None:
            if self.headers.get("Content-Length", "0") != "0" or not self._framing_is_plain():
                self.close_connection = True  # a body we do not read is never taken for the next request
            if self.path != "/info":
                self._reply(404, {"error": f"no such endpoint {self.path}"})
                return
            try:
                self._reply(200, enclave.info())
            except CoprocessorError as exc:
                self._reply(503, {"error": f"{type(exc).__name__}: {exc}"})

        def do_POST(self) -> None:
            presented = (self.headers.get(TOKEN_HEADER) or "").encode(errors="replace")
            if not hmac.compare_digest(presented, expected):
                self.close_connection = True  # its body is not read: it must never be taken for a request
                self._reply(401, {"error": f"{self.path} needs the enclave owner's token (enclave serve --token-file)"})
                return
            length = self.headers.get("Content-Length") or "0"
            digits = length.isascii() and length.isdigit()  # no sign, no junk: "-1" would read to EOF
            if not digits or int(length) > _MAX_BODY or not self._framing_is_plain():
                self.close_connection = True
                too_long = digits and int(length) > _MAX_BODY
                self._reply(413 if too_long else 400, {"error": f"one Content-Length of 0-{_MAX_BODY}, and no Transfer-Encoding"})
                return
            try:
                body = loads_bounded(self.rfile.read(int(length)))  # the node is untrusted too
                if self.path == "/attest":
                    nonce = bytes.fromhex(body["nonce"].removeprefix("0x"))
                    self._reply(200, enclave.attest(nonce, body.get("address"), _chain(body)).to_json())
                elif self.path == "/rotate":
                    self._reply(200, {"address": enclave.rotate()})
                elif self.path == "/activate":
                    enclave.activate(body["address"])
                    self._reply(200, {"address": enclave.address})
                elif self.path == "/run" and "runs" in body:
                    self._stream(_start_runs(enclave, runners, body))
                elif self.path == "/run":
                    request, input_data = _run_args(body)
                    self._reply(200, _signed_json(enclave.run(request, input_data, _chain(body))))
                elif self.path == "/quote":
                    self._reply(200, _quote(enclave, body))
                elif self.path.startswith("/keys/") or self.path == "/secrets":
                    self._reply(200, _keys(enclave, self.path, body))
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


def _run_args(body: Any) -> tuple[Request, bytes]:
    return Request.from_json(body["request"]), bytes.fromhex(body["input"].removeprefix("0x"))


def _chain(body: dict[str, Any]) -> int | None:
    """The chain a call is for (`chainId`); None, the enclave's home chain, when it names none."""
    chain = body.get("chainId")
    if chain is None:
        return None
    if not isinstance(chain, int) or isinstance(chain, bool):
        raise ValueError("chainId must be an integer")
    return chain


def _signed_json(result: SignedResult) -> dict[str, Any]:
    return {
        "status": int(result.status),
        "output": "0x" + result.output.hex(),
        "signature": "0x" + result.signature.hex(),
        "signer": result.signer,
        "calls": ["0x" + c.hex() for c in result.calls],
    }


def _start_runs(enclave: Enclave, runners: ThreadPoolExecutor, body: dict[str, Any]) -> dict[Future[SignedResult], int]:
    """`/run` with `runs`: starts each (a job of its own, within the enclave's slots); their futures by index.

    A malformed call is refused whole (400) before anything runs.
    """
    runs = body["runs"]
    if not isinstance(runs, list) or not 1 <= len(runs) <= MAX_RUNS_PER_CALL:
        raise ValueError(f"runs must be a list of 1-{MAX_RUNS_PER_CALL} runs")
    calls = [_run_args(run) for run in runs]
    chain = _chain(body)
    return {runners.submit(enclave.run, request, input_data, chain): i for i, (request, input_data) in enumerate(calls)}


def _run_outcome(future: Future[SignedResult]) -> dict[str, Any]:
    """A run's signed result, or `{error, retry}`: `retry` if the node should try it again later (something
    the enclave depends on was down), not if the enclave refuses to sign it (e.g. the input is not the
    request's)."""
    try:
        return _signed_json(future.result())
    except EnclaveUnreachable as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "retry": True}
    except (CoprocessorError, FrameError, ValueError, KeyError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "retry": False}
    except Exception as exc:  # as a 500 for a single run: worth retrying
        return {"error": f"{type(exc).__name__}: {exc}", "retry": True}


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
            _chain(body),
        )
    except QuoteRefused as refused:
        return {"status": int(refused.status), "reason": refused.reason}
    return {"status": int(Status.OK), **signed.to_json()}


def _keys(enclave: Enclave, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The cluster keys' calls: genesis, rotation, a join (nonce, request, grant, accept), a template's
    public keys signed for the KeyRegistry, and secrets sealed to a template (`/secrets`)."""
    if path == "/keys/genesis":
        return {"epoch": enclave.keys_genesis()}
    if path == "/keys/rotate":
        return {"epoch": enclave.rotate_epoch()}
    if path == "/keys/join-nonce":
        return {"nonce": "0x" + enclave.join_nonce().hex()}
    if path == "/keys/join-request":
        request = enclave.join_request(_bytes(body["nonce"]))
        return {"evidence": request.evidence.to_json(), "ephemeralPublic": "0x" + request.ephemeral_public.hex()}
    if path == "/keys/grant":
        request = JoinRequest(Evidence.from_json(body["evidence"]), _bytes(body["ephemeralPublic"]))
        sealed, evidence = enclave.grant(request, _bytes(body["nonce"]), body.get("collateral"))
        return {
            "epochs": [{"sealed": "0x" + envelope.hex(), "retireAt": retire_at} for envelope, retire_at in sealed],
            "evidence": evidence.to_json(),
        }
    if path == "/keys/accept":
        epochs = body["epochs"]
        if not isinstance(epochs, list) or len(epochs) > MAX_LIVE_EPOCHS:
            raise ValueError(f"epochs must be a list of at most {MAX_LIVE_EPOCHS}")
        granted = [(_bytes(e["sealed"]), None if e.get("retireAt") is None else float(e["retireAt"])) for e in epochs]
        return {"epoch": enclave.accept(granted, Evidence.from_json(body["evidence"]), body.get("collateral"))}
    if path == "/keys/template":
        epoch, input_key, secrets_key, signature = enclave.template_keys(_bytes(body["templateId"]), _chain(body))
        return {
            "epoch": epoch,
            "inputKey": "0x" + input_key.hex(),
            "secretsKey": "0x" + secrets_key.hex(),
            "signature": "0x" + signature.hex(),
        }
    if path == "/secrets":
        enclave.put_sealed_secret(_bytes(body["templateId"]), str(body["name"]), _bytes(body["sealed"]))
        return {}
    raise KeyError(f"no such endpoint {path}")


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
