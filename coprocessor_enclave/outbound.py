"""Outbound connections for template HTTP: one DNS answer, checked, then connected to, all within the job's deadline.

An httpcore network backend rather than a check before the request: resolving once and
connecting to exactly the address that was checked leaves no room for DNS rebinding, and
capping every socket operation at the job's remaining time means a server that trickles
bytes cannot hold the enclave past the deadline.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import certifi
import httpcore

from .errors import CapabilityError

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` is a public address, looking through IPv6 forms that embed an IPv4 one
    (mapped, 6to4, NAT64), which Python 3.11's `is_global` takes at face value."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return embedded.is_global
    return ip.is_global


def _resolve(host: str, port: int, deadline: Deadline) -> list[Any]:
    """getaddrinfo, given at most the job's remaining time. It has no timeout of its own, so it runs
    in a thread of its own: a slow name holds that thread, never another job's lookups."""
    outcome: list[Any] = []

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=lookup, name="template-dns", daemon=True)
    thread.start()
    thread.join(_remaining(deadline))
    if not outcome:
        raise CapabilityError(f"resolving {host} took longer than the template's time")
    if isinstance(outcome[0], OSError):
        raise CapabilityError(f"cannot resolve {host}: {outcome[0]}")
    addresses: list[Any] = outcome[0]
    return addresses


# A time.monotonic() by which work must end, or a callable giving it: a job's deadline moves
# while its clock is stopped for the host's chain RPC.
Deadline = float | Callable[[], float]


def _remaining(deadline: Deadline) -> float:
    left = (deadline() if callable(deadline) else deadline) - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the template's time is up")
    return left


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read and write ends by the job's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline) -> None:
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

    def __init__(self, deadline: Deadline, allow_private: bool, reserved_ports: frozenset[int] = frozenset()) -> None:
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
        # httpcore's own backend connects to exactly the checked address (and sets TCP_NODELAY: without
        # it a request written as headers then body waits ~40 ms for a delayed ACK).
        stream = self._sync.connect_tcp(
            address, port, timeout=left if timeout is None else min(timeout, left), socket_options=socket_options
        )
        return _DeadlineStream(stream, self._deadline)

    def _checked_address(self, host: str, port: int) -> str:
        """The one address this connection will use, after the operator's rules."""
        infos = _resolve(host, port, self._deadline)
        address = str(infos[0][4][0])
        ip = ipaddress.ip_address(address.split("%")[0])
        if not is_public(ip) and port in self._reserved_ports:
            raise CapabilityError(f"{host}:{port} is the enclave itself")
        if not is_public(ip) and not self._allow_private:
            raise CapabilityError(f"host {host} resolves to non-public address {ip}; this enclave refuses those")
        return address

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise CapabilityError("templates cannot reach UNIX sockets")

    def sleep(self, seconds: float) -> None:
        try:
            time.sleep(min(seconds, _remaining(self._deadline)))
        except httpcore.ReadTimeout:
            pass


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Mozilla's CA set, never one named in the enclave's environment (SSL_CERT_FILE, which the
    operator controls). Built once (~18 ms); a client context is safe to share between threads."""
    return ssl.create_default_context(cafile=certifi.where())


def guarded_pool(deadline: Deadline, allow_private: bool, reserved_ports: frozenset[int] = frozenset()) -> httpcore.ConnectionPool:
    """A connection pool for one job: guarded connections, verified TLS, no cookies, nothing shared."""
    return httpcore.ConnectionPool(
        ssl_context=_tls_context(),
        network_backend=GuardedBackend(deadline, allow_private, reserved_ports),
        max_connections=4,
    )
