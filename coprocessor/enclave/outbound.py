"""Outbound connections for template HTTP: one DNS answer, checked, then connected to, all within the job's deadline.

An httpcore network backend rather than a check before the request: resolving once and
connecting to exactly the address that was checked leaves no room for DNS rebinding, and
capping every socket operation at the job's remaining time means a server that trickles
bytes cannot hold the enclave past the deadline.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpcore

from ..errors import CapabilityError

# getaddrinfo has no timeout of its own: it runs here and the job waits at most its remaining time.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="template-dns")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the template's time is up")
    return left


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read and write ends by the job's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def _timeout(self, timeout: float | None) -> float:
        left = _remaining(self._deadline)
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._timeout(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._timeout(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, self._timeout(timeout)), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the operator allows, and never past `deadline` (a time.monotonic())."""

    def __init__(self, deadline: float, allow_private: bool, reserved_ports: frozenset[int] = frozenset()) -> None:
        self._deadline = deadline
        self._allow_private = allow_private
        self._reserved_ports = reserved_ports  # the enclave's own ports: never reachable from a template
        self._sync = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        address = self._checked_address(host, port)
        left = _remaining(self._deadline)
        try:
            sock = socket.create_connection((address, port), timeout=left if timeout is None else min(timeout, left))
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot connect to {host} ({address}:{port}): {exc}") from None
        return _DeadlineStream(httpcore._backends.sync.SyncStream(sock), self._deadline)

    def _checked_address(self, host: str, port: int) -> str:
        """The one address this connection will use, after the operator's rules."""
        future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=_remaining(self._deadline))
        except FutureTimeout:
            raise CapabilityError(f"resolving {host} took longer than the template's time") from None
        except OSError as exc:
            raise CapabilityError(f"cannot resolve {host}: {exc}") from None
        address = str(infos[0][4][0])
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global and port in self._reserved_ports:
            raise CapabilityError(f"{host}:{port} is the enclave itself")
        if not ip.is_global and not self._allow_private:
            raise CapabilityError(f"host {host} resolves to non-public address {ip}; this enclave refuses those")
        return address

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise CapabilityError("templates cannot reach UNIX sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(self._deadline - time.monotonic(), 0)))
