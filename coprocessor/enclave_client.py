"""The node's client of the enclave RPC (`coprocessor_enclave.server`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from coprocessor_enclave.attestation import Evidence
from coprocessor_enclave.protocol import Request, SignedQuote, Status
from coprocessor_enclave.server import TOKEN_HEADER
from coprocessor_enclave.service import QuoteRefused, SignedResult

from .errors import EnclaveError, EnclaveUnreachable

DEFAULT_TOKEN_FILE = Path(".coprocessor/enclave.token")


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
        self._headers = {"Content-Type": "application/json"}
        if token is not None:
            self._headers[TOKEN_HEADER] = f"Bearer {token}"

    @classmethod
    def with_token_file(cls, url: str, token_file: Path | str, timeout: float = 120.0) -> EnclaveClient:
        """A client presenting the token in `token_file`."""
        return cls(url, read_token(token_file), timeout)

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers=self._headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail = json.loads(raw or b"{}").get("error", exc.reason)
            except (ValueError, AttributeError):  # not our JSON: a proxy's error page, say
                detail = f"HTTP {exc.code}: {raw[:200].decode(errors='replace')}"
            if exc.code >= 500:
                raise EnclaveUnreachable(f"enclave could not serve {path} now: {detail}") from None
            raise EnclaveError(f"enclave refused {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise EnclaveUnreachable(f"enclave at {self.url} unreachable: {exc}") from None

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
