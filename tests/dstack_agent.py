"""A loopback server that speaks dstack's guest-agent HTTP API (`POST /Info`, `POST /GetQuote`).

No dstack simulator is available from the registries we can reach, so the dstack backend
is tested against this. It serves quotes from a `QuoteSource`:
- `FixtureQuotes`: the real Intel TDX quote from tests/data/dcap, whatever the report data
  (it was made for someone else, so an honest verifier must refuse to bind it to our key);
- `DevPkiQuotes`: quotes minted by the development PKI over the requested report data,
  with a dstack-shaped RTMR3 event log (compose hash, instance id), so the whole backend
  and verifier path runs.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from coprocessor_enclave import tdx
from coprocessor_enclave.devpki import DevPki
from coprocessor_enclave.tdx import TdMeasurements

DCAP_DATA = Path(__file__).resolve().parent / "data" / "dcap"


class QuoteSource(Protocol):
    """What the agent reports about its TD."""

    measurements: TdMeasurements
    event_log: list[dict[str, Any]]
    compose_hash: bytes

    def quote(self, report_data: bytes) -> bytes:
        """A quote over `report_data` (64 bytes)."""
        ...


class FixtureQuotes:
    """The recorded Intel TDX quote: measurements from its body, an empty RTMR3 log (its RTMR3 is zero)."""

    def __init__(self) -> None:
        self.raw = (DCAP_DATA / "tdx_quote").read_bytes()
        body = self.raw[48 : 48 + 584]
        offsets = {"mr_td": 136, "rt_mr0": 328, "rt_mr1": 376, "rt_mr2": 424, "rt_mr3": 472}
        self.measurements = TdMeasurements.from_report({k: body[o : o + 48].hex() for k, o in offsets.items()})
        self.event_log: list[dict[str, Any]] = []
        self.compose_hash = b""

    def quote(self, report_data: bytes) -> bytes:
        """The same recorded quote for any report data."""
        return self.raw


class DevPkiQuotes:
    """Dev-PKI quotes over the requested report data, from a TD with a dstack-like RTMR3."""

    def __init__(self, pki: DevPki, compose_file: bytes = b'{"manifest_version": 2, "name": "coprocessor"}') -> None:
        import hashlib

        self.pki = pki
        self.compose_hash = hashlib.sha256(compose_file).digest()
        self.event_log = [
            tdx.runtime_event("app-id", secrets.token_bytes(20)),
            tdx.runtime_event(tdx.COMPOSE_HASH_EVENT, self.compose_hash),
            tdx.runtime_event("instance-id", secrets.token_bytes(20)),
        ]
        rtmr3 = tdx.replay_rtmr([bytes.fromhex(e["digest"]) for e in self.event_log])
        boot = [secrets.token_bytes(48) for _ in range(4)]
        self.measurements = TdMeasurements(*boot, rtmr3)

    def quote(self, report_data: bytes) -> bytes:
        """A fresh dev-PKI quote."""
        return self.pki.quote(report_data, self.measurements)


@dataclass
class GuestAgent:
    """A running loopback agent."""

    server: ThreadingHTTPServer
    source: QuoteSource
    calls: list[str]

    @property
    def url(self) -> str:
        """Its base URL, for `DstackClient(endpoint)`."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        """Shuts it down."""
        self.server.shutdown()
        self.server.server_close()


def start_agent(source: QuoteSource) -> GuestAgent:
    """Serves `source` on a free loopback port, in a thread."""
    calls: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            calls.append(self.path)
            if self.path == "/GetQuote":
                report_data = bytes.fromhex(body["report_data"])
                if len(report_data) > 64:
                    self._reply(400, {"error": "report data longer than 64 bytes"})
                    return
                quote = source.quote(report_data.ljust(64, b"\0"))
                self._reply(200, {"quote": quote.hex(), "event_log": json.dumps(source.event_log), "report_data": body["report_data"]})
            elif self.path == "/Info":
                self._reply(200, _info(source))
            else:
                self._reply(404, {"error": f"no such method {self.path}"})

        def _reply(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return GuestAgent(server, source, calls)


def _info(source: QuoteSource) -> dict[str, Any]:
    """An `Info` reply in dstack 0.5's shape (tcb_info is a JSON string)."""
    m = source.measurements
    tcb_info = {
        "mrtd": m.mr_td.hex(),
        "rtmr0": m.rtmr0.hex(),
        "rtmr1": m.rtmr1.hex(),
        "rtmr2": m.rtmr2.hex(),
        "rtmr3": m.rtmr3.hex(),
        "app_compose": "{}",
        "event_log": source.event_log,
        "mr_aggregated": "",
        "os_image_hash": "",
        "compose_hash": source.compose_hash.hex(),
        "device_id": "",
    }
    return {
        "app_id": "00" * 20,
        "instance_id": "00" * 20,
        "app_cert": "",
        "tcb_info": json.dumps(tcb_info),
        "app_name": "coprocessor",
        "device_id": "",
        "key_provider_info": "",
        "compose_hash": source.compose_hash.hex(),
    }
