"""HTTP-triggered jobs: a web2 client asks the node to run a template and deliver the signed result on-chain,
paid from a sponsor's balance in the Sponsorships contract (docs/http-jobs.md).

`POST /jobs` authenticates the caller in one of two ways:
- an API key (`Authorization: Bearer <key>`), which the node knows only by its SHA-256 and maps to a
  sponsor's `Relayed` key whose relayer is this node's jobs account;
- an EIP-712 signature of the whole `Job` by a sponsor's `Signer` key, which the contract checks itself.

The job is simulated first, so a refusal (an unknown key, a spent allowance, a used nonce, a rate window
full) comes back at once as a clear HTTP error. The call answers once `submit` is mined: a job the node
accepted is a Coprocessor request on-chain, and from there it ends like any request (a signed response,
or expiry and a refund to the sponsor). A client that lost the answer retries with the same nonce, and
gets the job it already made. `GET /jobs/<requestId>` tells where a job stands.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from coprocessor_enclave.frames import loads_bounded
from coprocessor_enclave.status import Status

from ..chain import TxSender, contract
from ..errors import ChainError, ManifestError
from ..sponsorships import Job, job_digest, job_signer, relayed_key_id, signer_key_id, sponsorships_domain
from .endpoint import EndpointServer, HttpError, RateLimiter, bounded_body
from .journal import Entry, State

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_INPUT_BYTES = 16 * 1024  # the Coprocessor's default `maxInputBytes`
DEFAULT_CALLBACK_GAS = 200_000
DEFAULT_TIMEOUT = 600  # seconds until an unanswered job may be reclaimed
DEFAULT_DEADLINE = 600  # seconds a relayed job may wait to be submitted
RECEIPT_SECONDS = 60.0
MIN_DEADLINE_SECONDS = 60  # a job's deadline must leave this long: one that lapses while mined would cost us its gas
REVERT_PAUSE_SECONDS = 3600.0  # a sponsor whose simulated job reverted when mined is not relayed for this long
EARLIER_BLOCKS = 50_000  # how far back a retried nonce's first job is looked for (hosted RPCs cap log ranges)
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_JOB_SUBMITTED = keccak(b"JobSubmitted(bytes32,address,bytes32,address,bytes32,uint256,uint96)")
# The contract's refusals, by the HTTP code that says what to do about them.
_REFUSALS = {
    "UnknownKey": 403,
    "KeyExpired": 403,
    "NotRelayer": 403,
    "InvalidJobSignature": 403,
    "ConsumerNotAllowed": 403,
    "TemplateNotAllowed": 403,
    "FeeAboveKeyLimit": 402,
    "AllowanceExceeded": 402,
    "InsufficientBalance": 402,
    "NonceAlreadyUsed": 409,
    "RateLimited": 429,
}


@dataclass(frozen=True)
class ApiKey:
    """An API key the node accepts: the sponsor and `Relayed` key it spends, and its rate limit."""

    name: str
    sponsor: str
    key_id: bytes
    rate: float = 1.0  # jobs a second on average
    burst: int = 5


def new_api_key() -> tuple[str, str]:
    """A fresh API key and its SHA-256 (hex): the client keeps the key, the node's keys file only the hash."""
    key = "cpk_" + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()


def load_api_keys(path: Path | str) -> dict[str, ApiKey]:
    """Reads the node's API keys file (TOML), one table per key, by the SHA-256 (hex) of the key:

    ```toml
    [keys.partner-a]
    sha256 = "5f1c..."       # of the API key; the key itself is never stored
    sponsor = "0x..."        # whose balance pays
    key_id = "0x..."         # the sponsor's Relayed key (default: keccak256 of the table's name)
    rate = 2.0               # jobs a second on average (default 1)
    burst = 5                # at most this many at once (default 5)
    ```
    """
    path = Path(path)
    try:
        tables = tomllib.loads(path.read_text()).get("keys")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the API keys file ({exc})") from None
    if not isinstance(tables, dict) or not tables:
        raise ManifestError(f"{path}: list each key in a [keys.<name>] table (sha256, sponsor)")
    keys: dict[str, ApiKey] = {}
    for name, table in tables.items():
        digest, sponsor = table.get("sha256"), table.get("sponsor")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ManifestError(f"{path}: [keys.{name}] `sha256` must be the key's SHA-256 in 64 lowercase hex digits")
        if not isinstance(sponsor, str) or not is_address(sponsor):
            raise ManifestError(f"{path}: [keys.{name}] `sponsor` must be an address")
        key_id = table.get("key_id")
        if key_id is not None and (not isinstance(key_id, str) or not _HEX32.match(key_id)):
            raise ManifestError(f"{path}: [keys.{name}] `key_id` must be 0x and 64 hex digits")
        rate, burst = table.get("rate", 1.0), table.get("burst", 5)
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1000 or not isinstance(burst, int) or not 1 <= burst <= 1000:
            raise ManifestError(f"{path}: [keys.{name}] `rate` must be in (0, 1000] jobs a second and `burst` in 1-1000")
        keys[digest] = ApiKey(
            name,
            to_checksum_address(sponsor),
            bytes.fromhex(key_id[2:]) if key_id else relayed_key_id(name),
            float(rate),
            burst,
        )
    return keys


def watch_api_keys(path: Path | str) -> Callable[[], dict[str, ApiKey]]:
    """The keys in `path`, read again whenever the file changes (`sponsor add-key` appends while the node runs);
    none while it does not exist; the last good set, with a warning, while it does not parse."""
    path = Path(path)
    seen: dict[str, Any] = {"stamp": None, "keys": {}}

    def current() -> dict[str, ApiKey]:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != seen["stamp"]:
            seen["stamp"] = stamp
            try:
                seen["keys"] = load_api_keys(path)
            except ManifestError as exc:
                log.warning("API keys file not reloaded, keeping the keys read before: %s", exc)
        return dict(seen["keys"])

    return current


class JobService:
    """Checks, authenticates, simulates and submits jobs with the node's jobs account; reports where they stand."""

    def __init__(
        self,
        sender: TxSender,
        sponsorships: str,
        api_keys: Callable[[], dict[str, ApiKey]],
        lookup: Callable[[bytes], Entry | None] = lambda request_id: None,
        signed_rate: RateLimiter | None = None,
        start_block: int = 0,
    ) -> None:
        self.sender = sender
        self.contract = contract(sender.w3, "Sponsorships", sponsorships)
        self.domain = sponsorships_domain(sender.chain_id, sponsorships)
        self.api_keys = api_keys  # by SHA-256 (hex) of the key, read anew as the file changes (`watch_api_keys`)
        self.lookup = lookup
        self._key_rates: dict[str, RateLimiter] = {}
        self._signed_rate = signed_rate or RateLimiter(rate=1.0, burst=5)  # per Signer key
        self.start_block = start_block  # where the contract's logs begin
        self._send = threading.Lock()  # one estimate-and-send at a time: nonces go out in order
        self._paused: dict[str, float] = {}  # sponsor -> until when its jobs are not relayed (one reverted when mined)

    # ------------------------------------------------------------------ POST /jobs

    def submit(self, body: Any, authorization: str | None) -> dict[str, Any]:
        """Answers one `POST /jobs`: the mined job (`requestId`, `jobId`, `tx`), or raises HttpError."""
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        if authorization:
            job, signature = self._relayed_job(body, authorization), b""
        elif "signature" in body:
            job, signature = self._signed_job(body), _hex(body["signature"], "signature")
        else:
            raise HttpError(
                401,
                "authenticate: an API key (Authorization: Bearer <key>), or the job signed by a sponsor's Signer key "
                "(EIP-712 Job, docs/http-jobs.md)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        paused_until = self._paused.get(job.sponsor, 0.0)
        if paused_until > time.monotonic():
            raise HttpError(403, f"sponsor {job.sponsor}: a job of theirs reverted when mined; not relayed for now", reason="SponsorPaused")
        now = int(self.sender.w3.eth.get_block("latest")["timestamp"])
        if job.deadline < now + MIN_DEADLINE_SECONDS:
            raise HttpError(400, f"deadline must be at least {MIN_DEADLINE_SECONDS} s after the chain's time ({now})")
        data = bytes.fromhex(self.contract.encode_abi("submit", args=[job.as_tuple(), signature]).removeprefix("0x"))
        job_id = "0x" + job_digest(job, self.domain).hex()
        refused: ChainError | None = None
        with self._send:  # held for the estimate and the send only, never while a receipt is awaited
            try:
                gas = self.sender.estimate(self.contract.address, data, block="pending")
            except ChainError as exc:
                refused = exc
            else:
                tx_hash = self.sender.send(self.contract.address, data, gas=gas * 6 // 5 + 10_000)
        if refused is not None:
            raise self._refusal(refused, job, job_id)
        tx = "0x" + tx_hash.hex()
        pending = {"jobId": job_id, "tx": tx, "nonce": str(job.nonce)}
        try:
            receipt = self.sender.wait(tx_hash, RECEIPT_SECONDS)
        except ChainError:  # not mined yet: it may still be; the client follows it, and retries with this nonce
            raise HttpError(
                202, f"sent in {tx}, not mined within {RECEIPT_SECONDS:g} s: retry with nonce {job.nonce}", state="sent", **pending
            ) from None
        if receipt["status"] != 1:
            self._paused[job.sponsor] = time.monotonic() + REVERT_PAUSE_SECONDS
            log.warning("job %s of sponsor %s reverted when mined (%s): sponsor paused", job_id[:14], job.sponsor, tx[:14])
            raise HttpError(409, f"the job's transaction {tx} reverted (the sponsor's state changed since it was checked)", **pending)
        request_id = self._request_of(receipt)
        log.info("job %s from sponsor %s: request 0x%s in %s", job_id[:14], job.sponsor, request_id.hex()[:12], tx[:14])
        return {**pending, "requestId": "0x" + request_id.hex(), "state": "requested"}

    def _relayed_job(self, body: dict[str, Any], authorization: str) -> Job:
        scheme, _, key = authorization.partition(" ")
        digest = hashlib.sha256(key.strip().encode()).hexdigest()
        known = next((k for d, k in self.api_keys().items() if hmac.compare_digest(d, digest)), None)
        if scheme.lower() != "bearer" or known is None:
            raise HttpError(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
        rate = self._key_rates.get(digest)
        if rate is None or (rate.rate, rate.burst) != (known.rate, known.burst):
            rate = self._key_rates[digest] = RateLimiter(known.rate, known.burst)
        if not rate.allow(known.name):
            raise HttpError(429, f"API key {known.name}: more than {known.rate:g} jobs a second; slow down", headers={"Retry-After": "1"})
        nonce = _int(body.get("nonce", secrets.randbits(255)), "nonce", 2**256 - 1)
        if "deadline" in body:
            deadline = _int(body["deadline"], "deadline", 2**64 - 1)
        else:  # by the chain's clock, which a local chain may have moved ahead of ours
            deadline = int(self.sender.w3.eth.get_block("latest")["timestamp"]) + DEFAULT_DEADLINE
        return self._job(body, known.sponsor, known.key_id, nonce, deadline)

    def _signed_job(self, body: dict[str, Any]) -> Job:
        sponsor = body.get("sponsor")
        if not isinstance(sponsor, str) or not is_address(sponsor):
            raise HttpError(400, "a signed job names its sponsor (an address)")
        signer = body.get("signer")
        if not isinstance(signer, str) or not is_address(signer):
            raise HttpError(400, "a signed job names its signer (the address of the sponsor's Signer key)")
        nonce = _int(body.get("nonce"), "nonce", 2**256 - 1)
        deadline = _int(body.get("deadline"), "deadline", 2**64 - 1)
        job = self._job(body, to_checksum_address(sponsor), signer_key_id(signer), nonce, deadline)
        # Checked here, before anything costs an RPC call or a signer's rate: only the signer itself spends its rate.
        try:
            recovered = job_signer(job, self.domain, _hex(body.get("signature"), "signature"))
        except ValueError:
            recovered = ""
        if recovered.lower() != signer.lower():
            raise HttpError(
                403, f"the signature is not {signer}'s over this job (EIP-712 Job, docs/http-jobs.md)", reason="InvalidJobSignature"
            )
        if not self._signed_rate.allow(signer.lower()):
            raise HttpError(429, f"signer {signer}: too many jobs; slow down", headers={"Retry-After": "1"})
        return job

    def _job(self, body: dict[str, Any], sponsor: str, key_id: bytes, nonce: int, deadline: int) -> Job:
        template_id = _hex(body.get("templateId"), "templateId")
        if len(template_id) != 32:
            raise HttpError(400, "templateId must be a 0x template id (32 bytes)")
        input_data = _hex(body.get("input", "0x"), "input")
        if len(input_data) > MAX_INPUT_BYTES:
            raise HttpError(413, f"input of {len(input_data)} bytes exceeds {MAX_INPUT_BYTES}")
        consumer = body.get("consumer")
        if not isinstance(consumer, str) or not is_address(consumer):
            raise HttpError(400, "consumer must be the address of the contract the result goes to (an ISponsoredConsumer)")
        callback_gas = _int(body.get("callbackGas", DEFAULT_CALLBACK_GAS), "callbackGas", 2**32 - 1)
        timeout = _int(body.get("timeout", DEFAULT_TIMEOUT), "timeout", 2**64 - 1)
        return Job(sponsor, key_id, to_checksum_address(consumer), template_id, input_data, callback_gas, timeout, nonce, deadline)

    def _refusal(self, exc: ChainError, job: Job, job_id: str) -> HttpError:
        """The HTTP answer to a job the contract refuses: its error, and the code that says what to do."""
        reason = str(exc)
        name = reason.split("(", 1)[0].split(":")[-1].strip()
        code = _REFUSALS.get(name, 400)
        extra: dict[str, Any] = {"reason": name or reason, "jobId": job_id}
        if name == "NonceAlreadyUsed":  # a retry of a job already made: say which
            earlier = self._earlier(job)
            if earlier is not None:
                extra["requestId"] = "0x" + earlier.hex()
        return HttpError(code, f"the Sponsorships contract refuses this job: {reason}", **extra)

    def _earlier(self, job: Job) -> bytes | None:
        """The request a job with `job`'s sponsor, key and nonce made, from the contract's `JobSubmitted` logs."""
        topics = ["0x" + _JOB_SUBMITTED.hex(), None, "0x" + bytes(12).hex() + job.sponsor[2:].lower(), "0x" + job.key_id.hex()]
        try:
            latest = int(self.sender.w3.eth.block_number)
            since = max(self.start_block, latest - EARLIER_BLOCKS)
            logs = self.sender.w3.eth.get_logs({"address": self.contract.address, "fromBlock": since, "topics": topics})
        except Exception as exc:  # a provider's cap on log ranges, say: the refusal stands without the id
            log.info("could not look up the first job of nonce %d: %s", job.nonce, exc)
            return None
        for entry in logs:
            if int.from_bytes(bytes(entry["data"])[64:96], "big") == job.nonce:
                return bytes(entry["topics"][1])
        return None

    def _request_of(self, receipt: Any) -> bytes:
        for entry in receipt["logs"]:
            if entry["address"] == self.contract.address and entry["topics"] and bytes(entry["topics"][0]) == _JOB_SUBMITTED:
                return bytes(entry["topics"][1])
        raise HttpError(500, "the job's transaction emitted no JobSubmitted event")

    # ------------------------------------------------------------------ GET /jobs/<requestId>

    def status(self, reference: str) -> dict[str, Any]:
        """Where the job of request `reference` stands, as this node's journal has it."""
        if not _HEX32.match(reference):
            raise HttpError(400, "a job is named by its requestId: 0x and 64 hex digits")
        request_id = bytes.fromhex(reference[2:])
        entry = self.lookup(request_id)
        if entry is None or entry.request.consumer.lower() != self.contract.address.lower():
            if entry is None and int(self.contract.functions.jobOf(request_id).call()[0], 16) != 0:
                return {"requestId": reference, "state": "requested"}  # on-chain, not yet seen by this node
            raise HttpError(404, f"no job {reference} here (not a request of this node's Sponsorships jobs)")
        answer: dict[str, Any] = {"requestId": reference, "state": entry.state.value}
        if entry.state == State.SETTLED and entry.status is not None:  # before that, the output is not public yet
            answer.update(status=int(entry.status), statusName=Status(entry.status).name)
            if entry.output is not None:
                answer["output"] = "0x" + entry.output.hex()
        return answer


def _hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise HttpError(400, f"{name} must be 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise HttpError(400, f"{name} is not valid hex") from None


def _int(value: Any, name: str, maximum: int) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise HttpError(400, f"{name} must be a whole number from 0 to {maximum}")
    return value


def start_jobs_server(
    w3: Any,
    jobs_key: str,
    sponsorships: str,
    keys_file: Path | str,
    lookup: Callable[[bytes], Entry | None],
    host: str,
    port: int,
    start_block: int = 0,
) -> EndpointServer:
    """Serves HTTP jobs for the Sponsorships contract at `sponsorships`, submitted by the jobs account `jobs_key`,
    with the API keys in `keys_file`, in a daemon thread; `shutdown()` stops it."""
    service = JobService(TxSender(w3, jobs_key), sponsorships, watch_api_keys(keys_file), lookup, start_block=start_block)
    return make_jobs_server(service, host, port).start()


def make_jobs_server(service: JobService, host: str = "127.0.0.1", port: int = 0) -> EndpointServer:
    """The endpoint for `service`: `POST /jobs`, `GET /jobs/<requestId>`. Errors are JSON `{error, ...}`."""
    polls = RateLimiter(rate=10.0, burst=50)  # status requests per client address

    def reply(code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, status_code=code, headers=headers)

    async def submit(request: Request) -> JSONResponse:
        try:
            raw = await bounded_body(request, MAX_BODY_BYTES)
            try:
                parsed = loads_bounded(raw)
            except ValueError as exc:
                raise HttpError(400, f"the body is not usable JSON: {exc}") from None
            answer = await run_in_threadpool(service.submit, parsed, request.headers.get("authorization"))
            return reply(201, answer)
        except HttpError as exc:
            headers = exc.extra.pop("headers", None)
            return reply(exc.code, {"error": str(exc), **exc.extra}, headers)
        except Exception:  # an answer, never a dropped connection; the details (an RPC URL, say) stay in the log
            log.exception("jobs endpoint failed")
            return reply(503, {"error": "the node could not take the job now; try again shortly"})

    async def status(request: Request) -> JSONResponse:
        try:
            if not polls.allow(request.client.host if request.client else ""):
                raise HttpError(429, "too many status requests; slow down", headers={"Retry-After": "1"})
            return reply(200, await run_in_threadpool(service.status, request.path_params["reference"]))
        except HttpError as exc:
            headers = exc.extra.pop("headers", None)
            return reply(exc.code, {"error": str(exc), **exc.extra}, headers)
        except Exception:
            log.exception("jobs status failed")
            return reply(503, {"error": "the node could not look the job up now; try again shortly"})

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return reply(404, {"error": f"no such endpoint {request.url.path}"})

    async def wrong_method(request: Request, exc: Exception) -> JSONResponse:
        return reply(405, {"error": f"{request.method} is not served at {request.url.path}"})

    app = Starlette(
        routes=[Route("/jobs", submit, methods=["POST"]), Route("/jobs/{reference}", status, methods=["GET"])],
        exception_handlers={404: not_found, 405: wrong_method},
    )
    return EndpointServer(app, host, port)
