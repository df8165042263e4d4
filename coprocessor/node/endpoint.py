"""What the node's public HTTP endpoints share (quotes, HTTP jobs): uvicorn serving, bounded bodies, rate limits."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request

from ..errors import CoprocessorError


class HttpError(CoprocessorError, ValueError):
    """A request an endpoint answers with an HTTP error (`code`) and a JSON body `{error, **extra}`."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


class RateLimiter:
    """A token bucket per client (an address, a key): `rate` calls a second on average, bursts of `burst`."""

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


class EndpointServer:
    """A public endpoint of the node (quotes, HTTP jobs) served by uvicorn (an ASGI server built for the open internet: HTTP parsing by
    h11, timeouts, graceful shutdown) on a socket bound at creation, so its port is known at once."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self._socket = socket.create_server((host, port))
        self.server_address: tuple[str, int] = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            app, http="h11", ws="none", lifespan="off", log_level="warning", timeout_keep_alive=30, limit_concurrency=256
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._serving = False

    def serve_forever(self) -> None:
        """Serves until `shutdown`; blocks (run it in a thread)."""
        self._serving = True
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._stopped.set()

    def start(self) -> EndpointServer:
        """Serves in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"endpoint-{self.server_address[1]}", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stops serving: open connections are finished, new ones refused."""
        self._server.should_exit = True
        if self._serving:
            self._stopped.wait(10)  # uvicorn finishes its connections before the socket goes
        self._socket.close()


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request's body, refused past `limit` bytes before it is all read (the declared length first)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or not 0 < int(declared) <= limit):
        raise HttpError(413 if declared.isdigit() and int(declared) else 411, f"the body must be 1-{limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpError(413, f"the body must be 1-{limit} bytes")
    if not body:
        raise HttpError(411, f"the body must be 1-{limit} bytes")
    return bytes(body)
