"""The node's client of the enclave RPC (`coprocessor_enclave.server`)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path
from typing import Any

from coprocessor_enclave.attestation import Evidence
from coprocessor_enclave.protocol import Request, SignedQuote, Status
from coprocessor_enclave.server import TOKEN_HEADER
from coprocessor_enclave.service import QuoteRefused, SignedResult

from .errors import EnclaveError, EnclaveUnreachable
from .keepalive import KeptAlive

DEFAULT_TOKEN_FILE = Path(".coprocessor/enclave.token")
# Well inside the enclave's idle close (`coprocessor_enclave.server.IDLE_SECONDS`): no request races it.
_REUSE_SECONDS = 10.0


def read_token(path: Path | str) -> str:
    """The token an enclave wrote at start (`enclave serve --token-file`)."""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise EnclaveError(
            f"cannot read the enclave token at {path} ({exc.strerror}): pass --enclave-token-file, "
            "the file `enclave serve --token-file` wrote"
        ) from None


class EnclaveClient:
    """Talks to an enclave over its local RPC."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise EnclaveError(f"enclave URL {url!r} is not http://host:port (the enclave RPC is local HTTP)")
        self._host, self._port, self._base = parsed.hostname, parsed.port or 80, parsed.path
        self._headers = {"Content-Type": "application/json"}
        self._http = KeptAlive(self._host, self._port, timeout=timeout, reuse_seconds=_REUSE_SECONDS)
        if token is not None:
            self._headers[TOKEN_HEADER] = f"Bearer {token}"

    @classmethod
    def with_token_file(cls, url: str, token_file: Path | str, timeout: float = 120.0) -> EnclaveClient:
        """A client presenting the token in `token_file`."""
        return cls(url, read_token(token_file), timeout)

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # http.client on a kept-alive connection per thread: a connection (and an enclave thread) per
        # run, or urllib's opener machinery, cost more CPU than the run's own HTTP.
        data = None if body is None else json.dumps(body).encode()
        try:
            status, reason, raw = self._http.request("GET" if data is None else "POST", self._base + path, data, self._headers)
        except (OSError, http.client.HTTPException) as exc:
            raise EnclaveUnreachable(f"enclave at {self.url} unreachable: {exc}") from None
        if status == 200:
            return json.loads(raw)  # type: ignore[no-any-return]
        try:
            detail = json.loads(raw or b"{}").get("error", reason)
        except (ValueError, AttributeError):  # not our JSON: a proxy's error page, say
            detail = f"HTTP {status}: {raw[:200].decode(errors='replace')}"
        if status >= 500:
            raise EnclaveUnreachable(f"enclave could not serve {path} now: {detail}")
        raise EnclaveError(f"enclave refused {path}: {detail}")

    def info(self) -> dict[str, Any]:
        """See `Enclave.info`."""
        return self._call("/info")

    def attest(self, nonce: bytes, address: str | None = None) -> Evidence:
        """See `Enclave.attest`."""
        return Evidence.from_json(self._call("/attest", {"nonce": "0x" + nonce.hex(), "address": address}))

    def rotate(self) -> str:
        """See `Enclave.rotate`."""
        return str(self._call("/rotate", {})["address"])

    def activate(self, address: str) -> None:
        """See `Enclave.activate`."""
        self._call("/activate", {"address": address})

    def run(self, request: Request, input_data: bytes) -> SignedResult:
        """See `Enclave.run`."""
        body = self._call("/run", {"request": request.to_json(), "input": "0x" + input_data.hex()})
        return SignedResult(
            Status(body["status"]),
            bytes.fromhex(body["output"].removeprefix("0x")),
            bytes.fromhex(body["signature"].removeprefix("0x")),
            body["signer"],
        )

    def quote(
        self,
        template_id: bytes,
        input_data: bytes,
        consumer: str,
        deadline: int,
        anchor_block: int = 0,
        anchor_hash: bytes = b"\0" * 32,
    ) -> SignedQuote:
        """See `Enclave.quote`; raises `QuoteRefused` when the run did not end Ok."""
        body = self._call(
            "/quote",
            {
                "templateId": "0x" + template_id.hex(),
                "input": "0x" + input_data.hex(),
                "consumer": consumer,
                "deadline": deadline,
                "anchorBlock": anchor_block,
                "anchorHash": "0x" + anchor_hash.hex(),
            },
        )
        if body["status"] != Status.OK:
            raise QuoteRefused(Status(body["status"]), str(body.get("reason", "")))
        return SignedQuote.from_json(body)
