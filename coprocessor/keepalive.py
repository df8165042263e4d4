"""HTTP on one kept-alive connection per thread, for the node's hot paths (JSON-RPC, the enclave RPC)."""

from __future__ import annotations

import http.client
import threading
import time

# What a kept-alive connection the server has closed fails with before any reply.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class KeptAlive:
    """Requests to one server, each calling thread on a connection of its own that it keeps.

    A connection idle longer than `reuse_seconds` is replaced before use rather than racing the
    server's idle close. One the server closed anyway fails before any reply; it is replaced and
    the request sent once more, if it may be. Transport failures raise OSError or
    http.client.HTTPException.
    """

    def __init__(self, host: str, port: int | None, https: bool = False, timeout: float = 30.0, reuse_seconds: float = 4.0) -> None:
        self._host, self._port, self._https = host, port, https
        self.timeout = timeout
        self._reuse_seconds = reuse_seconds
        self._local = threading.local()

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str], retry: bool = True) -> tuple[int, str, bytes]:
        """(status, reason, body) of one request; `retry=False` for a request that must not be sent twice."""
        response = self.open(method, path, body, headers, retry)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.drop()
            raise
        self.finished(response)
        return response.status, response.reason, raw

    def open(self, method: str, path: str, body: bytes | None, headers: dict[str, str], retry: bool = True) -> http.client.HTTPResponse:
        """Sends a request and returns its response once the headers are in; read it, then call `finished`.

        A server may close a kept connection after reading a request and before answering it (it
        crashed, say), so only a request that may be sent twice is sent again (`retry`).
        """
        for attempt in range(2):
            connection, reused = self._connection()
            try:
                connection.request(method, path, body, headers)
                return connection.getresponse()
            except _STALE:
                self.drop()
                if retry and reused and not attempt:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self.drop()
                raise
        raise AssertionError("unreachable")

    def finished(self, response: http.client.HTTPResponse) -> None:
        """After a response is read to its end: keeps the connection for the next request, unless the server closes it."""
        if response.will_close or not response.isclosed():
            self.drop()
        else:
            self._local.used = time.monotonic()

    def connection(self) -> http.client.HTTPConnection | None:
        """This thread's kept connection, if it has one."""
        return getattr(self._local, "connection", None)

    def drop(self) -> None:
        """Closes this thread's connection; its next request opens a new one."""
        connection = self.connection()
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = self.connection()
        if connection is not None and time.monotonic() - self._local.used < self._reuse_seconds:
            return connection, True
        self.drop()
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        self._local.connection = kind(self._host, self._port, timeout=self.timeout)
        return self._local.connection, False
