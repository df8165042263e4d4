"""Run templates locally through the real enclave and worker path, without a chain: for `template run`,
`template test` and template authors' own tests.

```python
from coprocessor.testing import TemplateRunner

with TemplateRunner("templates/median-price") as runner:
    result = runner.run("median-price", [[100, 101, 250], 500])
    assert result.values == (100, 2)
```

`LoopbackHttp` is a real HTTP server on 127.0.0.1 with routes a test sets up, for templates
that fetch data (`TemplateRunner` lets templates reach loopback by default).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from eth_abi import decode
from eth_utils import keccak

from coprocessor_enclave.attestation import DevBackend
from coprocessor_enclave.capabilities import BoundSecret, CapabilitySettings
from coprocessor_enclave.enclave import Enclave, EnclaveConfig
from coprocessor_enclave.protocol import Request, Status
from coprocessor_enclave.template import Template, encode_args, find_template, load_templates

from ..errors import ManifestError

_ZERO = "0x" + "00" * 19
LOCAL_CONSUMER = "0x" + "c0" * 20


@dataclass(frozen=True)
class RunResult:
    """The outcome of one local run."""

    template: Template
    status: Status
    output: bytes
    seconds: float

    @property
    def ok(self) -> bool:
        """True for status Ok."""
        return self.status == Status.OK

    @property
    def values(self) -> tuple[Any, ...]:
        """The decoded outputs (raises unless the status is Ok)."""
        if not self.ok:
            raise AssertionError(f"{self.template.name} ended {self.status.name}: {self.reason}")
        return tuple(decode(list(self.template.outputs), self.output))

    @property
    def reason(self) -> str:
        """The error reason for a non-Ok status ("" for Ok)."""
        return "" if self.ok else self.output.decode(errors="replace")


class TemplateRunner:
    """An in-process enclave (dev attestation, real workers and capabilities) over some template folders."""

    def __init__(
        self,
        *folders: Path | str,
        secrets: dict[str, str] | None = None,
        chain_rpc: str | None = None,
        allow_private_hosts: bool = True,
    ) -> None:
        self.templates = load_templates([Path(f) for f in folders])
        if not self.templates:
            raise ManifestError(f"no templates found in {[str(f) for f in folders]}")
        self.chain_rpc = chain_rpc
        settings = CapabilitySettings(
            chain_rpc=chain_rpc,
            secrets={name: BoundSecret(value, ("*",)) for name, value in (secrets or {}).items()},
            allow_private_hosts=allow_private_hosts,
        )
        self._state = tempfile.TemporaryDirectory(prefix="coprocessor-run-")
        config = EnclaveConfig(31337, _ZERO + "01", _ZERO + "02", _ZERO + "03")
        backend = DevBackend(Path(self._state.name) / "dev-pki")
        self.enclave = Enclave(config, self.templates, backend, capabilities=settings)

    def run(
        self,
        template: str | None = None,
        args: list[Any] | None = None,
        *,
        input_data: bytes | None = None,
        anchor_block: int | None = None,
        consumer: str = LOCAL_CONSUMER,
    ) -> RunResult:
        """Runs `template` (name or id; may be omitted when there is one) on JSON-style `args` or raw `input_data`.

        With a chain RPC, the anchor is `anchor_block` (default: the latest block) and its hash as
        that RPC reports it: locally the RPC is trusted for the anchor, on-chain the request commits it.
        """
        chosen = self._pick(template)
        data = input_data if input_data is not None else encode_args(chosen, list(args or []))
        anchor, anchor_hash = self._anchor(anchor_block)
        request = Request(os.urandom(32), consumer, chosen.template_id, keccak(data), 0, 0, 2**40, anchor, anchor_hash)
        started = time.perf_counter()
        signed = self.enclave.run(request, data)
        return RunResult(chosen, signed.status, signed.output, time.perf_counter() - started)

    def _pick(self, key: str | None) -> Template:
        if key is None:
            if len(self.templates) != 1:
                raise ManifestError(f"{len(self.templates)} templates loaded: name the one to run")
            return next(iter(self.templates.values()))
        return find_template(self.templates, key)

    def _anchor(self, block: int | None) -> tuple[int, bytes]:
        if self.chain_rpc is None:
            return block or 0, b"\0" * 32
        tag = "latest" if block is None else hex(block)
        reply = httpx.post(
            self.chain_rpc, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": [tag, False]}
        ).json()
        header = reply.get("result")
        if not header:
            raise ManifestError(f"chain RPC {self.chain_rpc} has no block {tag}")
        return int(header["number"], 16), bytes.fromhex(header["hash"][2:])

    def close(self) -> None:
        """Stops the enclave's workers and removes its temporary state."""
        self.enclave.close()
        self._state.cleanup()

    def __enter__(self) -> TemplateRunner:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def run_template(
    folder: Path | str,
    args: list[Any],
    *,
    secrets: dict[str, str] | None = None,
    chain_rpc: str | None = None,
    anchor_block: int | None = None,
) -> RunResult:
    """Runs the template in `folder` once (see `TemplateRunner`)."""
    with TemplateRunner(folder, secrets=secrets, chain_rpc=chain_rpc) as runner:
        return runner.run(None, args, anchor_block=anchor_block)


@dataclass(frozen=True)
class Reply:
    """What a route answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the body is sent

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        """A JSON reply."""
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        """A redirect."""
        return cls(status, b"", {"Location": location})


@dataclass(frozen=True)
class Seen:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Route = Callable[[Seen], Reply]


class LoopbackHttp:
    """`with LoopbackHttp() as server: server.routes["/x"] = Reply.json(...); server.url("/x")`."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply | Route] = {}
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                outer.seen.append(seen)
                route = outer.routes.get(self.path.split("?")[0])
                reply = Reply(404, b"no such route") if route is None else route if isinstance(route, Reply) else route(seen)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                time.sleep(reply.delay)
                self.wfile.write(reply.body)

            do_GET = do_POST = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of `path` on this server."""
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> LoopbackHttp:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def loopback_copy(folder: Path, parent: Path, server: LoopbackHttp, source_paths: Sequence[str] = ()) -> Path:
    """A copy of the template in `folder`, under `parent`, whose HTTP goes to `server` instead.

    The manifest's `[http] hosts` becomes the loopback server, a `[config] endpoint` its
    `/v1/chat/completions`, and each `[[config.sources]]` `url`/`path` pair the next of
    `source_paths` with path `price`. Tests are left out. The copy is a different bundle, so
    it has a different template id: it tests the same code against data you control.
    """
    copy = Path(parent) / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    manifest = copy / "template.toml"
    text = re.sub(r"(?m)^hosts = .*$", 'hosts = ["127.0.0.1:*"]', manifest.read_text())
    text = re.sub(r"(?m)^endpoint = .*$", f'endpoint = "{server.url("/v1/chat/completions")}"', text)
    sources = iter(source_paths)
    text = re.sub(r'(?m)^url = ".*"$', lambda _: f'url = "{server.url(next(sources))}"', text)
    text = re.sub(r'(?m)^path = ".*"$', 'path = "price"', text)
    manifest.write_text(text)
    return copy
