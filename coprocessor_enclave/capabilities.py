"""The enclave's side of template capabilities: each call a worker makes is checked against the manifest here.

Workers have no network and no secrets. They ask the enclave over the job channel; the
enclave answers only what the template's manifest declares and the operator allows:
HTTP to declared hosts (each redirect hop re-checked, size, count and time capped), secrets
the operator bound to this template, randomness derived from the enclave key, a capped log,
and read-only chain RPC methods (whose answers the worker verifies against the anchor hash).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

from .errors import CapabilityError, EnclaveUnreachable, ManifestError
from .frames import FrameError, loads_bounded
from .keys import DecryptionFailed
from .outbound import guarded_pool
from .protocol import Request
from .template import Template
from .text import MAX_LINE, inert

HTTP_METHODS = frozenset({"GET", "POST", "HEAD"})
MAX_REDIRECTS = 5
MAX_RANDOM_BYTES = 1024
# Read-only methods a worker needs to prove state as of a block; nothing that sends or signs.
CHAIN_METHODS = frozenset({"eth_getBlockByNumber", "eth_getProof", "eth_getCode", "eth_chainId"})
MAX_PROOF_KEYS = 8
_MAX_LOG_MESSAGE = 64 * 1024
_LOG_CALL_BYTES = 16
MAX_CHAIN_REPLY_BYTES = 8 * 1024 * 1024
RPC_TIMEOUT_SECONDS = 10.0  # one chain RPC answer; the template's clock is stopped meanwhile
MAX_HOST_SECONDS = 60.0  # all of a run's chain RPC answers together
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ID = re.compile(r"^0x[0-9a-f]{64}$")


@dataclass(frozen=True)
class BoundSecret:
    """An operator-supplied secret and the template ids (or `*`, any template) allowed to read it.

    Ids, not names: a name is whatever a manifest says, so any folder could claim it.
    """

    value: str
    templates: tuple[str, ...]

    def allows(self, template: Template) -> bool:
        """True when `template` may read this secret."""
        return any(t in ("*", template.id_hex) for t in self.templates)


MAX_REMOTE_RPCS = 7  # RPCs asked about one block of another chain; each answer is the host's time
FUTURE_HORIZON_BLOCKS = 7200  # a block further than this past a quorum's heads is refused, not waited for


def _quantity(value: Any) -> int:
    """A JSON-RPC quantity ("0x1a"); ValueError for anything else (a decimal string is not one)."""
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{1,64}", value):
        raise ValueError(f"not a JSON-RPC quantity: {str(value)[:40]!r}")
    return int(value, 16)


@dataclass(frozen=True)
class RemoteChain:
    """Another chain templates may read (`ctx.chain(chain_id, block)`): a block's hash is trusted when `quorum`
    of these independent RPCs give it and each says the block is `finality_depth` blocks deep (docs/chains.md)."""

    chain_id: int
    rpcs: tuple[str, ...]
    quorum: int
    finality_depth: int


def load_remote_chains(path: Path | str) -> dict[int, RemoteChain]:
    """Reads the chains templates may read across (TOML), one `[[chains]]` table each:

    ```toml
    [[chains]]
    chain_id = 8453
    rpcs = ["https://a.example", "https://b.example", "https://c.example"]  # run by independent parties
    quorum = 2            # more than half of `rpcs`: two blocks can never both reach it
    finality_depth = 64   # blocks on top of the one read, as each RPC reports its head
    ```
    """
    path = Path(path)
    try:
        tables = tomllib.loads(path.read_text()).get("chains")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the chains file ({exc})") from None
    if not isinstance(tables, list) or not tables:
        raise ManifestError(f"{path}: list each chain in a [[chains]] table (chain_id, rpcs, quorum, finality_depth)")
    chains: dict[int, RemoteChain] = {}
    for table in tables:
        chain_id, rpcs, quorum, depth = (table.get(k) for k in ("chain_id", "rpcs", "quorum", "finality_depth"))
        where = f"{path}: chain {chain_id}"
        if not isinstance(chain_id, int) or chain_id <= 0 or chain_id in chains:
            raise ManifestError(f"{where}: `chain_id` must be a positive integer, each chain once")
        if not isinstance(rpcs, list) or not 1 <= len(rpcs) <= MAX_REMOTE_RPCS or not all(isinstance(u, str) for u in rpcs):
            raise ManifestError(f"{where}: `rpcs` must list 1-{MAX_REMOTE_RPCS} RPC URLs")
        if not isinstance(quorum, int) or not len(rpcs) // 2 < quorum <= len(rpcs):
            raise ManifestError(f"{where}: `quorum` must be more than half of the {len(rpcs)} RPCs, and at most all of them")
        if not isinstance(depth, int) or depth < 0:
            raise ManifestError(f"{where}: `finality_depth` must be a whole number of blocks")
        chains[chain_id] = RemoteChain(chain_id, tuple(rpcs), quorum, depth)
    return chains


class HostBudget:
    """The host's time in one request's run, shared by every template of its call tree: what the operator's
    services (chain RPCs) took, at most MAX_HOST_SECONDS in all, past which nothing is signed."""

    def __init__(self) -> None:
        self.spent = 0.0

    def spend(self, seconds: float) -> None:
        """Counts `seconds` of the host's; EnclaveUnreachable once the run's budget is gone."""
        self.spent += seconds
        if self.spent > MAX_HOST_SECONDS:
            raise EnclaveUnreachable(f"the chain RPC took over {MAX_HOST_SECONDS:g} s in this run: not signed")


@dataclass(frozen=True)
class CapabilitySettings:
    """What the operator grants templates in this enclave, fixed at start."""

    chain_rpc: str | None = None
    remote_chains: Mapping[int, RemoteChain] = field(default_factory=dict)  # other chains templates may read
    secrets: Mapping[str, BoundSecret] = field(default_factory=dict)
    allow_private_hosts: bool = False  # loopback, private and link-local addresses (local development only)
    reserved_ports: frozenset[int] = frozenset()  # the enclave's own ports, never reachable by templates


def load_secrets(path: Path | str) -> dict[str, BoundSecret]:
    """Reads an operator's secrets file (TOML), one table per secret:

    ```toml
    [OPENAI_API_KEY]
    env = "OPENAI_API_KEY"        # read from this environment variable (or: value = "...")
    templates = ["0x1f0c..."]     # template ids that may read it ("*": any template, local use only)
    ```
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the secrets file ({exc})") from None
    secrets = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("templates"), list):
            raise ManifestError(f"{path}: [{name}] needs `templates = [...]` and `value` or `env`")
        if "env" in entry:
            value = os.environ.get(str(entry["env"]))
            if value is None:
                raise ManifestError(f"{path}: [{name}] environment variable {entry['env']} is not set")
        elif isinstance(entry.get("value"), str):
            value = entry["value"]
        else:
            raise ManifestError(f'{path}: [{name}] needs `value = "..."` or `env = "VARIABLE"`')
        bound = tuple(str(t).lower() for t in entry["templates"])
        wrong = [t for t in bound if t != "*" and not _ID.match(t)]
        if wrong:
            raise ManifestError(f'{path}: [{name}] templates must be 0x template ids (or "*"), not {wrong}')
        secrets[name] = BoundSecret(value, bound)
    return secrets


def host_allowed(patterns: tuple[str, ...], host: str, port: int, scheme: str) -> bool:
    """Whether `host:port` matches a manifest pattern.

    `host` means HTTPS on 443 only: plain HTTP can be rewritten by the operator's network, so
    a template gets it only by naming a port (`host:80`, `host:*`), a visible choice.
    """
    for pattern in patterns:
        name, _, wanted = pattern.partition(":")
        if wanted == "":
            port_ok = scheme == "https" and port == 443
        else:
            port_ok = wanted == "*" or int(wanted) == port
        if port_ok and (name == "*" or fnmatchcase(host, name)):
            return True
    return False


class JobCapabilities:
    """Answers the capability calls of one template run (a `workers.CallHandler`)."""

    def __init__(
        self,
        template: Template,
        request: Request,
        settings: CapabilitySettings,
        random_seed: bytes,
        deadline: float,
        sealed_secret: Callable[[str], str | None] = lambda name: None,
        call_template: Callable[[bytes, bytes, float], tuple[int, bytes]] | None = None,
        host_budget: HostBudget | None = None,
    ) -> None:
        self.template = template
        self._call_template = call_template  # runs a declared template for `ctx.call`: (id, input, seconds left)
        self._sealed_secret = sealed_secret  # a secret uploaded sealed to the template's key, opened by the enclave
        self.request = request
        self.settings = settings
        self._random_seed = random_seed
        self._deadline = deadline  # time.monotonic() by which the job ends
        # Per job, made on first use: no connection, cookie or TLS session outlives the run or
        # crosses to another template. The operator's chain RPC may be private.
        self._pools: dict[str, httpcore.ConnectionPool] = {}
        self._http_requests = 0
        self._random_calls = 0
        self._log_bytes = 0
        self._log_spent = False
        self._chain_deadline = 0.0  # when the chain read in flight must have its answer
        self.host_seconds = 0.0  # time spent on the operator's chain RPC: the host's, added to the job's deadline
        self._host_budget = host_budget or HostBudget()  # shared by the whole call tree
        self._remote_rpcs: dict[tuple[int, int], str] = {}  # (another chain, block) -> the RPC of its quorum reads go to

    def __call__(self, call: str, args: dict[str, Any]) -> Any:
        handlers = {
            "http": self._http,
            "secret": self._secret,
            "random": self._random,
            "log": self._log,
            "chain": self._chain,
            "remote_block": self._remote_block,
            "call": self._call,
        }
        if call not in handlers:
            raise CapabilityError(f"unknown capability {call!r}")
        return handlers[call](args)

    def close(self) -> None:
        """Drops the job's HTTP connections."""
        for pool in self._pools.values():
            pool.close()

    def _pool(self, purpose: str) -> httpcore.ConnectionPool:
        if purpose not in self._pools:
            chain = purpose == "chain"
            allow_private = chain or self.settings.allow_private_hosts
            reserved = frozenset() if chain else self.settings.reserved_ports
            # Template HTTP ends by the job's deadline (which moves while the host answers chain reads);
            # a chain read by its own RPC_TIMEOUT_SECONDS.
            deadline = (lambda: self._chain_deadline) if chain else (lambda: self._deadline)
            self._pools[purpose] = guarded_pool(deadline, allow_private, reserved)
        return self._pools[purpose]

    # ------------------------------------------------------------------ HTTP

    def _http(self, args: dict[str, Any]) -> dict[str, Any]:
        policy = self.template.http
        method = str(args.get("method", "GET")).upper()
        if method not in HTTP_METHODS:
            raise CapabilityError(f"HTTP method {method} is not allowed (only {sorted(HTTP_METHODS)})")
        raw_headers = args.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise CapabilityError("headers must be a mapping of names to values")
        headers = {str(k): str(v) for k, v in raw_headers.items() if str(k).lower() not in ("host", "accept-encoding")}
        headers["Accept-Encoding"] = "identity"  # sizes are capped on the wire: no decompression bombs
        body = base64.b64decode(str(args.get("body") or ""))
        url = str(args.get("url", ""))
        for _ in range(MAX_REDIRECTS + 1):
            if self._http_requests >= policy.max_requests:
                raise CapabilityError(f"more than {policy.max_requests} HTTP requests ([http] max_requests)")
            self._http_requests += 1
            scheme, host = self._check_url(url)
            timeout = min(policy.timeout_seconds, self._deadline - time.monotonic())
            if timeout <= 0:
                raise CapabilityError("no time left for an HTTP request")
            try:
                answer = self._fetch(method, url, headers, body, timeout, policy.max_response_bytes)
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
                raise CapabilityError(f"HTTP {method} {url} failed: {type(exc).__name__}: {exc}") from None
            if isinstance(answer, dict):
                return answer
            status, location = answer
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, body = "GET", b""
            next_url = urljoin(url, location)
            next_parts = urlsplit(next_url)
            if scheme == "https" and next_parts.scheme != "https":
                raise CapabilityError(f"refusing a redirect from https to {next_parts.scheme}: {next_url}")
            if next_parts.hostname != host:
                headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
            url = next_url
        raise CapabilityError(f"more than {MAX_REDIRECTS} redirects")

    def _check_url(self, url: str) -> tuple[str, str]:
        """Refuses URLs outside the manifest's hosts; returns (scheme, host). Addresses are checked on connect."""
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
            raise CapabilityError(f"URL {url!r} contains whitespace or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise CapabilityError(f"URL {url!r} is malformed: {exc}") from None
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise CapabilityError(f"URL {url!r} must be http:// or https:// with a host")
        host = parts.hostname.lower()
        port = port or _DEFAULT_PORTS[parts.scheme]
        if not host_allowed(self.template.http.hosts, host, port, parts.scheme):
            declared = list(self.template.http.hosts) or "none"
            raise CapabilityError(f"{parts.scheme}://{host}:{port} is not allowed by [http] hosts (declared: {declared})")
        return parts.scheme, host

    def _fetch(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float, limit: int
    ) -> dict[str, Any] | tuple[int, str]:
        """One request: the answer for the worker, or (status, location) of a redirect."""
        try:
            encoded = [(k.encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
        except UnicodeEncodeError:
            raise CapabilityError("HTTP header names and values must be ASCII") from None
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        with self._pool("http").stream(method, url, headers=encoded, content=body or None, extensions={"timeout": limits}) as response:
            found = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
            if response.status in (301, 302, 303, 307, 308) and "location" in found:
                return response.status, found["location"]
            received = bytearray()
            for chunk in response.iter_stream():
                received += chunk
                if len(received) > limit:
                    raise CapabilityError(f"response from {url} exceeds {limit} bytes ([http] max_response_bytes)")
            return {
                "status": response.status,
                "headers": found,
                "body": base64.b64encode(bytes(received)).decode(),
                "url": url,
            }

    # ------------------------------------------------------------------ secrets, randomness, log

    def _secret(self, args: dict[str, Any]) -> str:
        name = str(args.get("name", ""))
        if name not in self.template.secrets:
            raise CapabilityError(f"secret {name!r} is not declared in the manifest's `secrets`")
        try:
            sealed = self._sealed_secret(name)
        except DecryptionFailed as exc:  # sealed in an epoch since retired, or damaged (a newer epoch: EnclaveUnreachable)
            raise CapabilityError(f"secret {name!r} does not open: {exc}") from None
        if sealed is not None:
            return sealed
        bound = self.settings.secrets.get(name)  # the operator's plaintext file: development only
        if bound is None or not bound.allows(self.template):
            raise CapabilityError(f"the operator has not bound secret {name!r} to template {self.template.name}")
        return bound.value

    def _random(self, args: dict[str, Any]) -> str:
        size = args.get("size", 32)
        if not isinstance(size, int) or not 0 < size <= MAX_RANDOM_BYTES:
            raise CapabilityError(f"random size must be 1-{MAX_RANDOM_BYTES} bytes")
        self._random_calls += 1
        # Bound to the request's commitment, so re-running a request cannot grind for another value.
        label = self.request.commitment() + self._random_calls.to_bytes(4, "big")
        stream = b"".join(
            hmac.new(self._random_seed, label + block.to_bytes(4, "big"), hashlib.sha256).digest() for block in range((size + 31) // 32)
        )
        return stream[:size].hex()

    def _log(self, args: dict[str, Any]) -> int:
        """Writes the message's lines to the enclave log, escaped and capped; returns the bytes left in the run's budget."""
        limit = self.template.limits.log_bytes
        self._log_bytes += _LOG_CALL_BYTES  # even an empty call costs: the budget bounds the calls too
        for line in str(args.get("message", ""))[:_MAX_LOG_MESSAGE].split("\n"):
            line = inert(line)[:MAX_LINE]  # no terminal escapes, no forged log lines
            if self._log_bytes + len(line) + 1 > limit:
                break
            self._log_bytes += len(line) + 1
            self._write_log(line)
        else:
            return max(0, limit - self._log_bytes)
        if not self._log_spent:  # the first refusal: say so once, then stay silent
            self._log_spent = True
            self._write_log(f"[log limit of {limit} bytes reached; further lines of this run are dropped]")
        return 0

    def _write_log(self, line: str) -> None:
        sys.stderr.write(f"template {self.template.name} 0x{self.request.request_id.hex()[:12]}: {line}\n")

    # ------------------------------------------------------------------ chain

    def _chain(self, args: dict[str, Any]) -> Any:
        """Relays one read-only call to the request's chain, or (`chainId`) to the RPC of another chain that
        agreed with the quorum on the block being read (`_remote_block`)."""
        remote = args.get("chainId")
        if remote is None:
            rpc_url = self.settings.chain_rpc
            if rpc_url is None:
                raise CapabilityError("this enclave has no chain RPC configured (enclave serve --chain-rpc)")
        else:
            block = args.get("block")
            rpc_url = self._remote_rpcs.get((remote, block)) if isinstance(remote, int) and isinstance(block, int) else None
            if rpc_url is None:
                raise CapabilityError(f"chain {remote!r}: read a block of it first (ctx.chain(chain_id, block))")
        method, params = args.get("method"), args.get("params")
        if method not in CHAIN_METHODS or not isinstance(params, list) or len(params) > 3:
            raise CapabilityError(f"chain method {method!r} is not allowed (only {sorted(CHAIN_METHODS)})")
        if method == "eth_getProof" and (len(params) < 2 or not isinstance(params[1], list) or len(params[1]) > MAX_PROOF_KEYS):
            raise CapabilityError(f"eth_getProof takes at most {MAX_PROOF_KEYS} storage keys")
        if method == "eth_getBlockByNumber" and params[1:] != [False]:
            raise CapabilityError("eth_getBlockByNumber is relayed with transaction hashes only (second parameter false)")
        if remote is None:
            return self._timed_call(rpc_url, str(method), params)
        try:
            return self._timed_call(rpc_url, str(method), params)
        except CapabilityError as exc:
            # An RPC of the quorum that errs (a rate limit, an oversized reply) has proven no lie: sign nothing and
            # let the node try again; only data that fails verification against the agreed hash is ChainDataInvalid.
            raise EnclaveUnreachable(f"chain {remote} RPC did not answer {method} usably: {exc}") from None

    def _timed_call(self, rpc_url: str, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call, its time the host's: the job's deadline moves by it, up to MAX_HOST_SECONDS a run."""
        try:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        except (TypeError, ValueError) as exc:  # e.g. a lone surrogate: the template's fault, not the RPC's
            raise CapabilityError(f"chain parameters do not encode: {exc}") from None
        started = time.monotonic()
        try:
            return self._relay_chain(method, body, rpc_url)
        finally:
            # The template's clock stops while the host answers (and while we read its answer): how fast
            # the operator's RPC is must never decide a signed Timeout. Past a total, nothing is signed.
            spent = time.monotonic() - started
            self.host_seconds += spent
            self._deadline += spent
            self._host_budget.spend(spent)

    # ------------------------------------------------------------------ templates calling templates

    def _call(self, args: dict[str, Any]) -> dict[str, Any]:
        """`ctx.call(template_id, input)`: runs a template this one declares in `calls`, in a worker of its own
        under its own limits (and at most the time this run has left); its status and output."""
        if self._call_template is None:
            raise CapabilityError("ctx.call is not offered here (sync quotes run one template)")
        try:
            template_id = bytes.fromhex(str(args.get("templateId", "")).removeprefix("0x"))
            input_data = bytes.fromhex(str(args.get("input", "")).removeprefix("0x"))
        except ValueError:
            raise CapabilityError("ctx.call takes a template id and input bytes") from None
        if len(template_id) != 32:
            raise CapabilityError("a template id is 32 bytes")
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise CapabilityError("no time left in this run for a call")
        host_before = self._host_budget.spent
        try:
            status, output = self._call_template(template_id, input_data, left)
        finally:
            # The host's time inside the callee is not this template's either: its clock (and the pool's wall
            # clock, which reads `host_seconds`) moves by it, so a slow RPC cannot turn into a signed Timeout here.
            callee_host = self._host_budget.spent - host_before
            self.host_seconds += callee_host
            self._deadline += callee_host
        return {"status": int(status), "output": output.hex()}

    def _remote_block(self, args: dict[str, Any]) -> str:
        """The hash of block `block` of chain `chainId`, trusted because a quorum of that chain's independent RPCs
        give it and each reports it `finality_depth` deep. The template verifies everything it then reads
        against this hash; reads go to an RPC of the quorum.

        No quorum because the RPCs disagree: `CapabilityError` (the run ends ChainDataInvalid, never a wrong
        Ok). No quorum yet because the block is not deep enough, or RPCs did not answer: `EnclaveUnreachable`,
        nothing is signed and the node tries again (the host may delay work, never decide it)."""
        chain_id, block = args.get("chainId"), args.get("block")
        if not isinstance(chain_id, int) or not isinstance(block, int) or isinstance(block, bool) or block < 0:
            raise CapabilityError("ctx.chain(chain_id, block) takes two integers")
        remote = self.settings.remote_chains.get(chain_id)
        if remote is None:
            raise CapabilityError(f"this enclave reads no chain {chain_id} (enclave serve --read-chains)")
        votes: dict[str, list[str]] = {}
        undecided = 0  # RPCs that did not answer, or not yet this deep: they may still join a quorum
        beyond = 0  # RPCs whose head is far before the block
        for rpc_url in remote.rpcs:
            try:
                head = _quantity(self._timed_call(rpc_url, "eth_blockNumber", []))
                if head + FUTURE_HORIZON_BLOCKS < block:
                    beyond += 1  # the block is far in this RPC's future: it may never come
                    continue
                if head < block + remote.finality_depth:
                    undecided += 1  # not final here yet: it may be soon
                    continue
                found = self._timed_call(rpc_url, "eth_getBlockByNumber", [hex(block), False])
                block_hash = str(found["hash"]).lower() if isinstance(found, dict) else ""
                numbered = isinstance(found, dict) and _quantity(found.get("number")) == block
            except (EnclaveUnreachable, CapabilityError, KeyError, ValueError):
                undecided += 1
                continue
            if not numbered or not re.fullmatch(r"0x[0-9a-f]{64}", block_hash):
                continue  # another block, or none it claims is final: a wrong answer, which can join no quorum
            agreeing = votes.setdefault(block_hash, [])
            agreeing.append(rpc_url)
            if len(agreeing) >= remote.quorum:  # more than half: no other hash can reach it
                self._remote_rpcs[(chain_id, block)] = agreeing[0]
                return block_hash
        if beyond >= remote.quorum:  # a quorum says the block is far off: waiting for it would hold the request for days
            raise CapabilityError(f"block {block} of chain {chain_id} is over {FUTURE_HORIZON_BLOCKS} blocks past its head")
        best = max((len(v) for v in votes.values()), default=0)
        if best + undecided >= remote.quorum:
            raise EnclaveUnreachable(f"block {block} of chain {chain_id} is not yet final on {remote.quorum} of its RPCs")
        raise CapabilityError(f"the RPCs of chain {chain_id} disagree on block {block}: no {remote.quorum} of them agree")

    def _relay_chain(self, method: str, body: bytes, rpc_url: str) -> Any:
        """One JSON-RPC call to one of the operator's chain RPCs; its `result`, or why there is none."""
        timeout = RPC_TIMEOUT_SECONDS
        self._chain_deadline = time.monotonic() + timeout
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        headers = [(b"Content-Type", b"application/json")]
        try:
            with self._pool("chain").stream("POST", rpc_url, headers=headers, content=body, extensions={"timeout": limits}) as response:
                status = response.status
                reply = bytearray()
                for chunk in response.iter_stream():
                    reply += chunk
                    if len(reply) > MAX_CHAIN_REPLY_BYTES:
                        break
        except httpcore.TimeoutException:
            # A host that stalls must not be able to force an error status (the trust model lets it
            # delay or drop work, nothing more): sign nothing, and the node retries.
            raise EnclaveUnreachable(f"chain RPC did not answer {method} within {timeout:.1f} s") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, CapabilityError) as exc:
            # Cannot connect or resolve: not the template's fault and not provably a lie. Sign
            # nothing, so the node retries later.
            raise EnclaveUnreachable(f"chain RPC unavailable: {type(exc).__name__}: {exc}") from None
        if len(reply) > MAX_CHAIN_REPLY_BYTES:
            raise CapabilityError(f"chain RPC reply to {method} exceeds {MAX_CHAIN_REPLY_BYTES} bytes")
        if status != 200:
            raise EnclaveUnreachable(f"chain RPC answered HTTP {status} to {method}")
        try:
            decoded = loads_bounded(bytes(reply))
        except FrameError as exc:
            raise CapabilityError(f"chain RPC reply to {method} refused: {exc}") from None
        if not isinstance(decoded, dict) or "error" in decoded:
            detail = decoded.get("error") if isinstance(decoded, dict) else decoded
            raise CapabilityError(f"chain RPC {method} failed: {str(detail)[:200]}")
        return decoded.get("result")
