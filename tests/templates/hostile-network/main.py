"""Tries every way out: TCP to loopback (the given port, e.g. the enclave's, and usual ones)
and to outside addresses, UDP, DNS, listening, and bringing the loopback up.

Returns what worked (a leak); raises with every refusal otherwise.
"""

import fcntl
import socket
import struct

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def run(ctx, port):
    got, failures = [], []

    def attempt(what, action):
        try:
            result = action()
            got.append(f"{what}: {result}")
        except OSError as exc:
            failures.append(f"{what}: {exc.strerror or exc}")

    def tcp(host, p, family=socket.AF_INET):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            s.connect((host, p))
            return "connected"

    def udp(host, p):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00" * 12, (host, p))
            return "sent"

    def listen():
        with socket.socket() as s:
            s.bind(("0.0.0.0", 0))
            s.listen()
            return s.getsockname()

    def loopback_up():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", IFF_UP))
            return "lo up"

    def abstract_unix():
        with socket.socket(socket.AF_UNIX) as s:
            s.connect("\0/tmp/.X11-unix/X0")
            return "connected"

    def other_interfaces():
        others = [name for _, name in socket.if_nameindex() if name != "lo"]
        if not others:
            raise OSError("only lo")
        return others

    for p in sorted({port, 8545, 7001, 80, 443, 22, 5432} - {0}):
        attempt(f"tcp 127.0.0.1:{p}", lambda p=p: tcp("127.0.0.1", p))
    attempt("tcp [::1]:80", lambda: tcp("::1", 80, socket.AF_INET6))
    attempt("tcp 1.1.1.1:80", lambda: tcp("1.1.1.1", 80))
    attempt("udp 8.8.8.8:53", lambda: udp("8.8.8.8", 53))
    attempt("dns example.com", lambda: socket.getaddrinfo("example.com", 80))
    attempt("listen", listen)
    attempt("loopback up", loopback_up)
    attempt("abstract unix socket", abstract_unix)
    attempt("an interface besides lo", other_interfaces)
    if got:
        return "\n".join(got)
    raise PermissionError("; ".join(failures))
