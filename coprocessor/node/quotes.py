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
from typing import Any

from eth_utils import is_address, to_checksum_address
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from coprocessor.node.enclave_client import EnclaveClient
from coprocessor_enclave.enclave import QuoteRefused
from coprocessor_enclave.frames import loads_bounded
from coprocessor_enclave.protocol import SignedQuote

from ..errors import CoprocessorError, EnclaveError, EnclaveUnreachable
from .endpoint import EndpointServer, HttpError, RateLimiter, bounded_body

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_INPUT_BYTES = 16 * 1024  # the Coprocessor's default `maxInputBytes`
DEFAULT_LIFETIME_SECONDS = 300

Anchor = Callable[[], tuple[int, bytes]]


class QuoteError(HttpError):
    """A quote request the endpoint answers with an HTTP error (`code`)."""


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


def make_quote_server(service: QuoteService, host: str = "127.0.0.1", port: int = 0) -> EndpointServer:
    """The endpoint for `service`: `POST /quote`, `GET /info`. Errors are JSON `{error, ...}`."""
    cors = {"Access-Control-Allow-Origin": "*"}  # quotes are public; browsers may ask

    def reply(code: int, body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(body, status_code=code, headers=cors)

    async def info(request: Request) -> JSONResponse:
        try:
            return reply(200, await run_in_threadpool(service.info))
        except CoprocessorError as exc:
            return reply(503, {"error": str(exc)})

    async def quote(request: Request) -> JSONResponse:
        try:
            body = await bounded_body(request, MAX_BODY_BYTES)
            try:
                parsed = loads_bounded(body)  # a public endpoint: no absurd nesting
            except ValueError as exc:
                raise QuoteError(400, f"the body is not usable JSON: {exc}") from None
            client = request.client.host if request.client else ""
            signed = await run_in_threadpool(service.quote, parsed, client)  # the enclave call blocks
            return reply(200, signed.to_json())
        except HttpError as exc:  # QuoteError, and a body refused before it was parsed
            return reply(exc.code, {"error": str(exc), **exc.extra})
        except Exception as exc:  # an answer, never a dropped connection
            log.exception("quote endpoint failed")
            return reply(500, {"error": f"{type(exc).__name__}: {exc}"})

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return reply(404, {"error": f"no such endpoint {request.url.path}"})

    async def wrong_method(request: Request, exc: Exception) -> JSONResponse:
        return reply(405, {"error": f"{request.method} is not served at {request.url.path}"})

    app = Starlette(
        routes=[Route("/info", info, methods=["GET"]), Route("/quote", quote, methods=["POST"])],
        exception_handlers={404: not_found, 405: wrong_method},
    )
    return EndpointServer(app, host, port)


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


def start_quote_server(enclave: EnclaveClient, w3: Any, host: str, port: int) -> EndpointServer:
    """Serves quotes for `enclave`, anchored on `w3`'s chain, in a daemon thread; `shutdown()` stops it.

    Each client address gets 5 quotes a second on average (bursts of 20), and at most two quotes
    run at once, so the public endpoint cannot starve the node's on-chain requests.
    """
    service = QuoteService(enclave, web3_anchor(w3), max_concurrency=2, rate=RateLimiter(rate=5.0, burst=20))
    return make_quote_server(service, host, port).start()
