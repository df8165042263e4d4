"""The node's client of the enclave RPC (`coprocessor_enclave.rpc`)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from coprocessor_enclave.attestation import Evidence
from coprocessor_enclave.enclave import QuoteRefused, SignedResult
from coprocessor_enclave.protocol import Request, SignedQuote, Status
from coprocessor_enclave.rpc import TOKEN_HEADER

from ..config import DEFAULT_TOKEN_FILE as DEFAULT_TOKEN_FILE  # re-exported
from ..errors import EnclaveError, EnclaveUnreachable
from ..keepalive import KeptAlive

# Well inside the enclave's idle close (`coprocessor_enclave.rpc.IDLE_SECONDS`): no request races it.
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
    """Talks to an enclave over its local RPC, for one of the chains it serves (`chain_id`; None: its home)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0, chain_id: int | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.chain_id = chain_id
        self._token = token
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

    def for_chain(self, chain_id: int) -> EnclaveClient:
        """A client of the same enclave whose runs, quotes, attestations and template keys are for `chain_id`'s
        deployment; a connection of its own."""
        return EnclaveClient(self.url, self._token, self.timeout, chain_id)

    def _chain(self, body: dict[str, Any]) -> dict[str, Any]:
        return body if self.chain_id is None else {**body, "chainId": self.chain_id}

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
        self._raise_for(status, reason, raw, path)

    @staticmethod
    def _raise_for(status: int, reason: str, raw: bytes, path: str) -> NoReturn:
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
        return Evidence.from_json(self._call("/attest", self._chain({"nonce": "0x" + nonce.hex(), "address": address})))

    def rotate(self) -> str:
        """See `Enclave.rotate`."""
        return str(self._call("/rotate", {})["address"])

    def activate(self, address: str) -> None:
        """See `Enclave.activate`."""
        self._call("/activate", {"address": address})

    # ------------------------------------------------------------------ the cluster's keys (see `Enclave`)

    def keys_genesis(self) -> int:
        """See `Enclave.keys_genesis`."""
        return int(self._call("/keys/genesis", {})["epoch"])

    def rotate_epoch(self) -> int:
        """See `Enclave.rotate_epoch`."""
        return int(self._call("/keys/rotate", {})["epoch"])

    def join_nonce(self) -> str:
        """See `Enclave.join_nonce` (hex)."""
        return str(self._call("/keys/join-nonce", {})["nonce"])

    def join_request(self, nonce: str) -> dict[str, Any]:
        """See `Enclave.join_request` (JSON: evidence and ephemeral public key)."""
        return self._call("/keys/join-request", {"nonce": nonce})

    def grant(self, request: dict[str, Any], nonce: str, collateral: dict[str, Any] | None = None) -> dict[str, Any]:
        """See `Enclave.grant` (JSON: the sealed epochs)."""
        return self._call("/keys/grant", {**request, "nonce": nonce, "collateral": collateral})

    def accept(self, grant: dict[str, Any]) -> int:
        """See `Enclave.accept`."""
        return int(self._call("/keys/accept", grant)["epoch"])

    def join(self, holder: EnclaveClient, collateral: dict[str, Any] | None = None) -> int:
        """Joins `holder`'s cluster: its nonce, this enclave's quote, its check and grant, this enclave's
        accept. The node only relays: the keys travel sealed to a key that never leaves this enclave."""
        nonce = holder.join_nonce()
        grant = holder.grant(self.join_request(nonce), nonce, collateral)
        return self.accept({**grant, "collateral": collateral})

    def template_keys(self, template_id: bytes) -> tuple[int, bytes, bytes, bytes]:
        """See `Enclave.template_keys`: (epoch, input key, secrets key, signature)."""
        body = self._call("/keys/template", self._chain({"templateId": "0x" + template_id.hex()}))
        return int(body["epoch"]), *(bytes.fromhex(str(body[k]).removeprefix("0x")) for k in ("inputKey", "secretsKey", "signature"))  # type: ignore[return-value]

    def put_sealed_secret(self, template_id: bytes, name: str, sealed: bytes) -> None:
        """See `Enclave.put_sealed_secret`."""
        self._call("/secrets", {"templateId": "0x" + template_id.hex(), "name": name, "sealed": "0x" + sealed.hex()})

    def run(self, request: Request, input_data: bytes) -> SignedResult:
        """See `Enclave.run`."""
        return _signed(self._call("/run", self._chain({"request": request.to_json(), "input": "0x" + input_data.hex()})))

    def run_many(self, runs: list[tuple[Request, bytes]]) -> Iterator[tuple[int, SignedResult | EnclaveError]]:
        """Several runs in one call, each its own job, run concurrently by the enclave: yields (index, outcome)
        as each ends: its signed result, or the error that run alone met (`EnclaveUnreachable`: try it again
        later). A failed call raises, before anything or after some; the runs not yielded did not end here.
        A single run raises its error instead, as `run` does."""
        if len(runs) == 1:  # the plain call: one answer with its length, the least work on both sides
            yield 0, self.run(*runs[0])
            return
        body = json.dumps(self._chain({"runs": [{"request": r.to_json(), "input": "0x" + data.hex()} for r, data in runs]})).encode()
        try:
            response = self._http.open("POST", self._base + "/run", body, self._headers)
        except (OSError, http.client.HTTPException) as exc:
            raise EnclaveUnreachable(f"enclave at {self.url} unreachable: {exc}") from None
        if response.status != 200:
            raw = response.read()
            self._http.finished(response)
            self._raise_for(response.status, response.reason, raw, "/run")
        try:
            while line := response.readline(1 << 22):
                item = json.loads(line)
                if "error" in item:
                    kind = EnclaveUnreachable if item.get("retry") else EnclaveError
                    yield (
                        int(item["index"]),
                        kind(f"enclave could not run it: {item['error']}" if item.get("retry") else f"enclave refused it: {item['error']}"),
                    )
                else:
                    yield int(item["index"]), _signed(item)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._http.drop()
            raise EnclaveUnreachable(f"enclave at {self.url} broke off its answer: {exc}") from None
        self._http.finished(response)

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
            self._chain(
                {
                    "templateId": "0x" + template_id.hex(),
                    "input": "0x" + input_data.hex(),
                    "consumer": consumer,
                    "deadline": deadline,
                    "anchorBlock": anchor_block,
                    "anchorHash": "0x" + anchor_hash.hex(),
                }
            ),
        )
        if body["status"] != Status.OK:
            raise QuoteRefused(Status(body["status"]), str(body.get("reason", "")))
        return SignedQuote.from_json(body)


def _signed(body: dict[str, Any]) -> SignedResult:
    return SignedResult(
        Status(body["status"]),
        bytes.fromhex(body["output"].removeprefix("0x")),
        bytes.fromhex(body["signature"].removeprefix("0x")),
        body["signer"],
        tuple(bytes.fromhex(str(c).removeprefix("0x")) for c in body.get("calls") or ()),
    )
