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

__all__ = ["CallResult", "CapabilityError", "ChainDataError", "Context", "Http", "HttpResponse", "InvalidInput"]

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


@dataclass(frozen=True)
class CallResult:
    """What `ctx.call` returns: the called template's status (0 is Ok) and output (its ABI outputs, or a reason)."""

    status: int
    output: bytes

    @property
    def ok(self) -> bool:
        """Whether the call ended Ok."""
        return self.status == 0


class _Chains:
    """`ctx.chain`: the request's own chain as of its anchor (attributes), or another chain's block (called)."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._own: _Checked | None = None
        self._others: dict[tuple[int, int], _Checked] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._own is None:
            from .chainread import VerifiedState  # imported on first use: most templates never read the chain

            c = self._context
            self._own = _Checked(VerifiedState(c._rpc, c.anchor_block, c.anchor_hash, chain_id=c.chain_id), c)
        return getattr(self._own, name)

    def __call__(self, chain_id: int, block: int) -> Any:
        if not isinstance(chain_id, int) or not isinstance(block, int) or isinstance(block, bool) or block < 0:
            raise TypeError("ctx.chain(chain_id, block) takes two integers (block from the request's input)")
        key = (chain_id, block)
        if key not in self._others:
            from .chainread import VerifiedState

            c = self._context
            block_hash = c._remote_block(chain_id, block)
            state = VerifiedState(lambda method, params: c._rpc(method, params, chain_id, block), block, block_hash, chain_id=chain_id)
            self._others[key] = _Checked(state, c)
        return self._others[key]


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
        self._chain: _Chains | None = None

    @property
    def chain(self) -> Any:
        """Verified chain state: the request's own chain as of its anchor block, or, called as
        `ctx.chain(chain_id, block)`, block `block` of another chain the enclave is set to read.

        Methods: `balance`, `nonce`, `code`, `storage`, `account`, `header`, `call`
        (see `coprocessor.chainread.VerifiedState`). Another chain's block is trusted because a
        quorum of its independent RPCs agree on its hash at its finality depth (docs/chains.md);
        take `block` from the request's input, so the request commits to it and the answer can be
        reproduced. Data that fails verification raises `ChainDataError`, and the run ends with
        status ChainDataInvalid even if the template catches it: a lying host must never turn
        into a wrong answer.
        """
        if self._chain is None:
            self._chain = _Chains(self)
        return self._chain

    def _rpc(self, method: str, params: list[Any], chain_id: int | None = None, block: int | None = None) -> Any:
        args: dict[str, Any] = {"method": method, "params": params}
        if chain_id is not None:  # another chain's block, read from an RPC of the quorum that agreed on it
            args["chainId"], args["block"] = chain_id, block
        try:
            return self.caller("chain", args)
        except Exception as exc:
            # The host did not supply the data: as untrustworthy an answer as a lie, and handled the same way.
            raise ChainDataError(f"chain RPC {method}: {exc}") from None

    def _remote_block(self, chain_id: int, block: int) -> bytes:
        """The hash of another chain's block, as the enclave's quorum of that chain's RPCs gives it."""
        try:
            return bytes.fromhex(str(self.caller("remote_block", {"chainId": chain_id, "block": block})).removeprefix("0x"))
        except Exception as exc:
            self.chain_error = self.chain_error or f"chain {chain_id} block {block}: {exc}"
            raise ChainDataError(f"chain {chain_id} block {block}: {exc}") from None

    def call(self, template_id: bytes | str, input_data: bytes) -> CallResult:
        """Runs another template, one this template declares in its manifest's `calls`, on `input_data` (ABI-encoded
        as its `inputs` say), for the same request, in a worker of its own under its own limits.

        Returns its status and output; an Ok call's template id goes into the signed response, and on an Ok
        response its author is credited its fee out of this template's (docs/templates.md). Calls nest at most
        3 deep and 16 per request; a call to an undeclared template or back into the tree raises CapabilityError.
        """
        tid = template_id if isinstance(template_id, str) else "0x" + bytes(template_id).hex()
        reply = self.caller("call", {"templateId": tid, "input": bytes(input_data).hex()})
        return CallResult(int(reply["status"]), bytes.fromhex(reply["output"]))

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
