"""Template text made inert: escaped for terminals and logs, and cut only between characters."""

from __future__ import annotations

MAX_LINE = 4096  # characters of one log line or capability error a template can make the enclave write


def inert(text: str) -> str:
    """`text` with every character a terminal or log could act on escaped (`\\x1b`, `\\n`, `\\u202e`, ...).

    Control characters (ESC starts OSC title and clipboard sequences), line breaks (forged log
    lines), bidirectional overrides and other invisible format characters are shown as Python
    escapes; a backslash is doubled, so an escape in the text cannot pass for one of ours.
    """
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def utf8_prefix(text: str, limit: int) -> bytes:
    """At most `limit` bytes of `text` as valid UTF-8, cut between characters (lone surrogates become `?`)."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= limit:
        return encoded
    return encoded[:limit].decode("utf-8", errors="ignore").encode()
