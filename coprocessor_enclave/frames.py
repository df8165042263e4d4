"""Length-prefixed JSON frames: the job channel between the enclave and a template worker.

The enclave sends the job; the worker sends capability calls (`{"call": ..., "args": ...}`),
each answered by one reply (`{"ok": ...}` or `{"error": ...}`), and finally its result
(`{"result": ...}`). A frame is a 4-byte big-endian length and that many bytes of JSON.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

MAX_FRAME_BYTES = 16 * 1024 * 1024
# Arrays and objects per message. Frames need a handful; the cap keeps json's C recursion shallow,
# which matters because importing py_ecc raises Python's recursion limit to 100,000 process-wide,
# so a deeply nested message would overflow the C stack of an enclave thread instead of raising.
MAX_CONTAINERS = 256
# A JSON string, or an unterminated one up to the end. Possessive quantifiers keep it linear on
# adversarial input (a backtracking `"(?:[^"\\]|\\.)*"` took seconds on 64 KiB of `\"`).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)')


class FrameError(ValueError):
    """The peer closed the channel or sent something that is not a frame."""


class FrameTooLarge(FrameError):
    """The peer announced a frame above the reader's limit."""


def send_frame(conn: socket.socket, message: Any) -> None:
    """Writes one frame."""
    body = json.dumps(message, separators=(",", ":")).encode()
    conn.sendall(len(body).to_bytes(4, "big") + body)


def _read_exactly(conn: socket.socket, size: int, deadline: float | None) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        if deadline is not None:  # re-armed before every recv: a trickling peer cannot stretch the deadline
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline passed while reading a frame")
            conn.settimeout(left)
        chunk = conn.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise FrameError("channel closed mid-frame" if chunks else "channel closed")
        chunks += chunk
    return bytes(chunks)


def recv_frame(conn: socket.socket, max_bytes: int = MAX_FRAME_BYTES, deadline: float | None = None, bounded: bool = True) -> Any:
    """Reads one frame by `deadline` (a time.monotonic(); TimeoutError after it).

    Raises `FrameError` on a closed channel, an oversized length or bad JSON; with `bounded`
    (for frames from an untrusted peer) also on more than `MAX_CONTAINERS` arrays and objects.
    """
    return recv_frame_sized(conn, max_bytes, deadline, bounded)[0]


def recv_frame_sized(
    conn: socket.socket, max_bytes: int = MAX_FRAME_BYTES, deadline: float | None = None, bounded: bool = True
) -> tuple[Any, int]:
    """`recv_frame`, and the bytes the frame took on the channel."""
    size = int.from_bytes(_read_exactly(conn, 4, deadline), "big")
    if size > max_bytes:
        raise FrameTooLarge(f"frame of {size} bytes exceeds {max_bytes}")
    data = _read_exactly(conn, size, deadline)
    return (loads_bounded(data) if bounded else _loads(data)), 4 + size


def loads_bounded(data: bytes) -> Any:
    """`json.loads` for untrusted input: at most `MAX_CONTAINERS` arrays and objects, else `FrameError`."""
    outside_strings = _STRING.sub(b"", data)
    if outside_strings.count(b"[") + outside_strings.count(b"{") > MAX_CONTAINERS:
        raise FrameError(f"message has more than {MAX_CONTAINERS} arrays and objects")
    return _loads(data)


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8, a 5,000-digit number
        raise FrameError(f"message is not JSON: {type(exc).__name__}") from None
