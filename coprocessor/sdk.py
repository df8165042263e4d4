"""What template code sees: the `Context` of a run and the errors a template may raise."""

from __future__ import annotations

import sys
from dataclasses import dataclass


class InvalidInput(Exception):
    """Raise from a template when the input is well-formed ABI but makes no sense (status InvalidInput)."""


@dataclass(frozen=True)
class Context:
    """The request a template is running for. Capabilities (HTTP, chain reads) arrive here later."""

    request_id: bytes
    consumer: str
    template_id: bytes
    anchor_block: int
    deadline: int
    log_limit: int = 4096

    def log(self, message: str) -> None:
        """Writes a line to the enclave's log (capped in size)."""
        print(str(message)[: self.log_limit], file=sys.stderr, flush=True)
