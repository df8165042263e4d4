"""What template code sees: the `Context` of a run, its capabilities, and the errors a template may raise.

A template runs in a worker without network, files or secrets of its own. Every capability
here is a call to the enclave over the job channel, which enforces the manifest: HTTP only to
declared hosts and within limits, only declared secrets the operator bound to this template,
chain reads verified against the request's anchor block hash.
"""

from __future__ import annotations

import base64
import json as jsonlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import CapabilityError, ChainDataError
from .text import MAX_LINE

__all__ = ["CapabilityError", "ChainDataError", "Context", "Http", "HttpResponse", "InvalidInput"]

# Sends one capability call to the enclave and returns its answer (raises CapabilityError on refusal).
Caller = Callable[[str, dict[str, Any]], Any]


class InvalidInput(Exception):
    """Raise from a template when the input is well-formed ABI but makes no sense (status InvalidInput)."""


def _no_capabilities(call: str, args: dict[str, Any]) -> Any:
    raise CapabilityError(f"capability {call!r} is not available outside the enclave")


@dataclass(frozen=True)
class HttpResponse:
    """A fetched HTTP response (the body is already complete and within the template's size limit)."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)

    def raise_for_status(self) -> HttpResponse:
        """Raises `CapabilityError` unless the status is 2xx; returns self for chaining."""
        if not 200 <= self.status < 300:
            raise CapabilityError(f"HTTP {self.status} from {self.url}")
        return self


class Http:
    """HTTP through the enclave, to the hosts the manifest declares under `[http] hosts`."""

    def __init__(self, caller: Caller) -> None:
        self._call = caller

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Sends one request; redirects are followed only to declared hosts."""
        headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json)
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        answer = self._call(
            "http",
            {
                "method": method.upper(),
                "url": url,
                "headers": headers,
                "body": base64.b64encode(body).decode() if body else "",
            },
        )
        return HttpResponse(answer["status"], answer["headers"], base64.b64decode(answer["body"]), answer["url"])

    def get(self, url: str, *, headers: dict[str, str] | None = None) -> HttpResponse:
        """A GET request."""
        return self.request("GET", url, headers=headers)

    def post(self, url: str, *, json: Any = None, body: bytes | str | None = None, headers: dict[str, str] | None = None) -> HttpResponse:
        """A POST request with a JSON or raw body."""
        return self.request("POST", url, headers=headers, body=body, json=json)


class _Checked:
    """Wraps a `VerifiedState` so the context remembers any verification failure."""

    def __init__(self, state: Any, context: Context) -> None:
        self._state = state
        self._context = context

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._state, name)
        if not callable(attribute):
            return attribute

        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except ChainDataError as exc:
                self._context.chain_error = self._context.chain_error or str(exc)
                raise

        return checked


@dataclass
class Context:
    """The request a template runs for, and its capabilities."""

    request_id: bytes
    consumer: str
    template_id: bytes
    anchor_block: int
    deadline: int
    anchor_hash: bytes = b"\0" * 32
    chain_id: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    caller: Caller = _no_capabilities
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # the bundle, as the id pins it

    def __post_init__(self) -> None:
        self.http = Http(self.caller)
        self.chain_error: str | None = None  # set once the host's chain data failed verification
        self._chain: _Checked | None = None

    @property
    def chain(self) -> Any:
        """Chain state as of the anchor block, every value verified against `anchor_hash`.

        Methods: `balance`, `nonce`, `code`, `storage`, `account`, `header`, `call`
        (see `coprocessor.chainread.VerifiedState`). Data that fails verification raises
        `ChainDataError`, and the run ends with status ChainDataInvalid even if the template
        catches it: a lying host must never turn into a wrong answer.
        """
        if self._chain is None:
            from .chainread import VerifiedState  # imported on first use: most templates never read the chain

            state = VerifiedState(self._rpc, self.anchor_block, self.anchor_hash, chain_id=self.chain_id)
            self._chain = _Checked(state, self)
        return self._chain

    def _rpc(self, method: str, params: list[Any]) -> Any:
        try:
            return self.caller("chain", {"method": method, "params": params})
        except Exception as exc:
            # The host did not supply the data: as untrustworthy an answer as a lie, and handled the same way.
            raise ChainDataError(f"chain RPC {method}: {exc}") from None

    def file(self, path: str) -> bytes:
        """A file of this template's own folder (`"data/prices.json"`): the bytes the template id pins.

        Workers cannot read the folder itself; this is the way to ship data with a template.
        """
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(f"no file {path!r} in this template's bundle") from None

    def secret(self, name: str) -> str:
        """A secret the manifest declares under `secrets` and the operator bound to this template."""
        return str(self.caller("secret", {"name": name}))

    def random(self, size: int = 32) -> bytes:
        """`size` bytes derived inside the enclave from its key and this request: unpredictable to the
        node, and the same on every re-run of the same request by the same enclave key."""
        return bytes.fromhex(self.caller("random", {"size": size}))

    def log(self, message: str) -> None:
        """Writes a line to the enclave's log; the enclave caps each line and the total per run."""
        self.caller("log", {"message": str(message)[:MAX_LINE]})
