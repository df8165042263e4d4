"""The node's public quote endpoint (sync mode): users fetch enclave-signed quotes to pass to contracts inline.

`POST /quote {templateId, input, consumer, deadline?}` relays to the node's enclave (whose own API
stays on loopback) and answers the signed quote as JSON, with `quoteData` = `abi.encode(SignedQuote)`
ready for `hookData`. The node anchors every quote to its chain's latest block's parent, so chain-reading
templates work too; the verifying contract checks `blockhash(anchorBlock) == anchorHash`, so the
node cannot anchor to a chain of its own making. `GET /info` tells what is served.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth_utils import is_address, to_checksum_address

from coprocessor.node.enclave_client import EnclaveClient
from coprocessor_enclave.frames import loads_bounded
from coprocessor_enclave.protocol import SignedQuote
from coprocessor_enclave.server import reply_json
from coprocessor_enclave.service import QuoteRefused

from ..errors import CoprocessorError, EnclaveError, EnclaveUnreachable

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_INPUT_BYTES = 16 * 1024  # the Coprocessor's default `maxInputBytes`
DEFAULT_LIFETIME_SECONDS = 300

Anchor = Callable[[], tuple[int, bytes]]


class QuoteError(CoprocessorError, ValueError):
    """A quote request the endpoint answers with an HTTP error (`code`)."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


class RateLimiter:
    """A token bucket per client address: `rate` quotes a second on average, bursts of `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Takes one token for `client` if it has one."""
        now = self._clock()
        with self._lock:
            if len(self._buckets) > 10_000:  # forget idle clients rather than grow without bound
                self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < self.burst / self.rate}
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                return False
            self._buckets[client] = (tokens - 1, now)
            return True


class QuoteService:
    """Checks a quote request, resolves the template, anchors it and asks the enclave."""

    def __init__(
        self,
        enclave: EnclaveClient,
        anchor: Anchor | None = None,
        max_concurrency: int = 2,
        rate: RateLimiter | None = None,
    ) -> None:
        self.enclave = enclave
        self.anchor = anchor
        self.rate = rate
        # Quotes share the enclave's run slots with on-chain requests: never let them take every slot.
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._templates: dict[str, bytes] = {}

    def info(self) -> dict[str, Any]:
        """The enclave's signer, chain, Coprocessor and templates."""
        info = self.enclave.info()
        return {k: info[k] for k in ("address", "chainId", "coprocessor", "registry", "templates")}

    def quote(self, body: Any, client: str = "") -> SignedQuote:
        """Answers one `POST /quote` body, or raises `QuoteError`."""
        if self.rate is not None and not self.rate.allow(client):
            raise QuoteError(429, "too many quote requests; slow down")
        if not isinstance(body, dict):
            raise QuoteError(400, "the body must be a JSON object")
        template_id = self._template_id(body.get("templateId"))
        input_data = _hex(body.get("input", "0x"), "input")
        if len(input_data) > MAX_INPUT_BYTES:
            raise QuoteError(413, f"input of {len(input_data)} bytes exceeds {MAX_INPUT_BYTES}")
        consumer = body.get("consumer")
        if not isinstance(consumer, str) or not is_address(consumer):
            raise QuoteError(400, "consumer must be the address of the contract that will verify the quote")
        deadline = body.get("deadline", int(time.time()) + DEFAULT_LIFETIME_SECONDS)
        if not isinstance(deadline, int) or isinstance(deadline, bool):
            raise QuoteError(400, "deadline must be a unix time in seconds")
        try:
            anchor_block, anchor_hash = self.anchor() if self.anchor is not None else (0, b"\0" * 32)
        except Exception as exc:
            raise QuoteError(503, f"cannot read the chain's latest block to anchor the quote: {exc}") from None
        if not self._slots.acquire(blocking=False):
            raise QuoteError(503, "busy: every quote slot is in use; retry shortly")
        try:
            return self.enclave.quote(template_id, input_data, to_checksum_address(consumer), deadline, anchor_block, anchor_hash)
        except QuoteRefused as refused:
            raise QuoteError(
                422,
                f"the template answered {refused.status.name} ({refused.reason}); only Ok answers are quoted",
                status=int(refused.status),
                statusName=refused.status.name,
                reason=refused.reason,
            ) from None
        except EnclaveUnreachable as exc:
            raise QuoteError(503, str(exc)) from None
        except EnclaveError as exc:
            raise QuoteError(400, str(exc).removeprefix("enclave refused /quote: ")) from None
        finally:
            self._slots.release()

    def _template_id(self, value: Any) -> bytes:
        if not isinstance(value, str) or not value:
            raise QuoteError(400, "templateId must be a 0x template id or a template name")
        if value.startswith("0x"):
            raw = _hex(value, "templateId")
            if len(raw) != 32:
                raise QuoteError(400, "templateId must be 32 bytes")
            return raw
        if value not in self._templates:
            self._templates = {t["name"]: _hex(t["id"], "id") for t in self.enclave.info()["templates"]}
        if value not in self._templates:
            raise QuoteError(404, f"no template named {value!r} here")
        return self._templates[value]


def _hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise QuoteError(400, f"{name} must be 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise QuoteError(400, f"{name} is not valid hex") from None


def web3_anchor(w3: Any) -> Anchor:
    """Anchors quotes to the parent of the latest block `w3` reports (checked on-chain by `blockhash`, not trusted).

    The parent, as `Coprocessor.request` does: a call simulated on the latest block (a wallet's gas
    estimate) runs with `block.number` = latest, where `blockhash(latest)` is still zero.
    """

    def anchor() -> tuple[int, bytes]:
        number = max(1, int(w3.eth.block_number) - 1)
        return number, bytes(w3.eth.get_block(number)["hash"])

    return anchor


def make_quote_server(service: QuoteService, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for `service`: `POST /quote`, `GET /info`. Errors are JSON `{error, ...}`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # a client that stops sending does not hold a thread for ever

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            reply_json(self, code, body, {"Access-Control-Allow-Origin": "*"})  # quotes are public; browsers may ask

        def do_GET(self) -> None:
            if self.path != "/info":
                self._reply(404, {"error": f"no such endpoint {self.path}"})
                return
            try:
                self._reply(200, service.info())
            except CoprocessorError as exc:
                self._reply(503, {"error": str(exc)})

        def do_POST(self) -> None:
            try:
                if self.path != "/quote":
                    raise QuoteError(404, f"no such endpoint {self.path}")
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    raise QuoteError(400, "bad Content-Length") from None
                if not 0 < length <= MAX_BODY_BYTES:
                    self.close_connection = True  # the unread body must not be parsed as the next request
                    raise QuoteError(413 if length else 411, f"the body must be 1-{MAX_BODY_BYTES} bytes")
                try:
                    body = loads_bounded(self.rfile.read(length))  # a public endpoint: no absurd nesting
                except ValueError as exc:
                    raise QuoteError(400, f"the body is not usable JSON: {exc}") from None
                signed = service.quote(body, self.client_address[0])
                self._reply(200, signed.to_json())
            except QuoteError as exc:
                self._reply(exc.code, {"error": str(exc), **exc.extra})
            except Exception as exc:  # an answer, never a dropped connection
                log.exception("quote endpoint failed")
                self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def fetch_quote(url: str, body: dict[str, Any], timeout: float = 60.0) -> SignedQuote:
    """POSTs `body` to a node's quote endpoint (`url` ending in `/quote` or the server's root)."""
    import urllib.error
    import urllib.request

    target = url.rstrip("/") if url.rstrip("/").endswith("/quote") else url.rstrip("/") + "/quote"
    req = urllib.request.Request(target, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return SignedQuote.from_json(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        except (ValueError, AttributeError):
            detail = f"HTTP {exc.code}"
        raise QuoteError(exc.code, f"quote refused: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise EnclaveUnreachable(f"no quote endpoint answers at {target}: {exc}") from None


def start_quote_server(enclave: EnclaveClient, w3: Any, host: str, port: int) -> ThreadingHTTPServer:
    """Serves quotes for `enclave`, anchored on `w3`'s chain, in a daemon thread; `shutdown()` stops it.

    Each client address gets 5 quotes a second on average (bursts of 20), and at most two quotes
    run at once, so the public endpoint cannot starve the node's on-chain requests.
    """
    service = QuoteService(enclave, web3_anchor(w3), max_concurrency=2, rate=RateLimiter(rate=5.0, burst=20))
    server = make_quote_server(service, host, port)
    threading.Thread(target=server.serve_forever, name="quotes", daemon=True).start()
    return server
