"""Length-prefixed JSON frames: the job channel between the enclave and a template worker.

The enclave sends the job; the worker sends capability calls (`{"call": ..., "args": ...}`),
each answered by one reply (`{"ok": ...}` or `{"error": ...}`), and finally its result
(`{"result": ...}`). A frame is a 4-byte big-endian length and that many bytes of JSON.
"""

from __future__ import annotations

import json
import socket
from typing import Any

MAX_FRAME_BYTES = 16 * 1024 * 1024


class FrameError(ValueError):
    """The peer closed the channel or sent something that is not a frame."""


class FrameTooLarge(FrameError):
    """The peer announced a frame above the reader's limit."""


def send_frame(conn: socket.socket, message: Any) -> None:
    """Writes one frame."""
    body = json.dumps(message, separators=(",", ":")).encode()
    conn.sendall(len(body).to_bytes(4, "big") + body)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise FrameError("channel closed mid-frame" if chunks else "channel closed")
        chunks += chunk
    return bytes(chunks)


def recv_frame(conn: socket.socket, max_bytes: int = MAX_FRAME_BYTES) -> Any:
    """Reads one frame; raises `FrameError` on a closed channel, an oversized length or bad JSON."""
    size = int.from_bytes(_read_exactly(conn, 4), "big")
    if size > max_bytes:
        raise FrameTooLarge(f"frame of {size} bytes exceeds {max_bytes}")
    try:
        return json.loads(_read_exactly(conn, size))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"frame is not JSON: {exc}") from None
