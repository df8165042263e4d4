"""The enclave: holds the signing key, runs templates in workers, signs responses."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import coincurve
from eth_abi import decode, encode
from eth_keys import keys
from eth_utils import to_checksum_address

from . import bundles
from .abi import NonCanonicalAbi, check_canonical
from .abicodec import keccak  # pycryptodome directly, as protocol.py
from .attestation import AttestationBackend, Evidence
from .capabilities import CapabilitySettings, JobCapabilities
from .errors import CapabilityError, EnclaveError
from .pool import DEFAULT_WARM_TEMPLATES, TemplateImage, WorkerPool
from .protocol import (
    Quote,
    Request,
    SignedQuote,
    Status,
    coprocessor_domain,
    quote_digest,
    report_data,
    response_digest,
    sign_digest,
)
from .sandbox import protect_enclave
from .template import Template

# Template runs at once. Each is mostly a process's start and teardown, which the kernel does while
# other runs compute, so 8 keep two cores busy where 2 left them a third idle (docs/node.md). The
# worst case in memory is this many times a template's `memory_mb`.
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class EnclaveConfig:
    """What the enclave is bound to. Fixed at start: the node cannot change it per request."""

    chain_id: int
    coprocessor: str
    registry: str
    payee: str
    max_output_bytes: int = 16 * 1024
    max_quote_seconds: int = 3600  # the longest life a sync-mode quote may be signed for


@dataclass(frozen=True)
class SignedResult:
    """A response signed by the enclave key."""

    status: Status
    output: bytes
    signature: bytes
    signer: str


class QuoteRefused(EnclaveError):
    """The template's run ended in an error status: quotes are signed for Ok outputs only."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(f"{status.name}: {reason}")
        self.status = status
        self.reason = reason


_NO_ANCHOR = b"\0" * 32


class Enclave:
    """Generates its key inside, never exports it, and signs only what its workers computed."""

    def __init__(
        self,
        config: EnclaveConfig,
        templates: dict[bytes, Template],
        backend: AttestationBackend,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        capabilities: CapabilitySettings | None = None,
        warm_templates: int = DEFAULT_WARM_TEMPLATES,
    ) -> None:
        self.config = config
        self.templates = templates
        self.backend = backend
        self.capabilities = capabilities or CapabilitySettings()
        protect_enclave()  # not dumpable, and no start at all where workers cannot be confined
        # The fork server starts first: it is a fresh interpreter, and no copy of the key ever existed in it.
        self._pool = WorkerPool(warm_templates)  # a zygote per template, for the `warm_templates` most recently run
        # What a template's zygote loads once (the bundle the id was computed from); job frames carry no code.
        self._images = {
            t.template_id: TemplateImage(
                t.id_hex,
                bundles.pack(t.files),
                t.inputs,
                t.outputs,
                t.limits.memory_mb,
                t.limits.timeout_seconds,
                bundles.preloads(t.files, [*t.inputs, *t.outputs]),
            )
            for t in templates.values()
        }
        self._keys: dict[str, bytes] = {}  # address -> key: the active one, and at most one pending rotation
        address = self._new_key()
        # (address, key, its signer), replaced as one tuple, so a reader never sees a mix
        self._active = (address, self._keys[address], coincurve.PrivateKey(self._keys[address]))
        self._domain = coprocessor_domain(config.chain_id, config.coprocessor)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._quote_slots = threading.BoundedSemaphore(max(1, max_concurrency - 1))
        self._rotation = threading.Lock()

    @property
    def address(self) -> str:
        """The active key's address."""
        return self._active[0]

    @property
    def _key(self) -> bytes:
        return self._active[1]

    def info(self) -> dict[str, Any]:
        """Public facts: address, binding, measurement and the templates it can run."""
        return {
            "address": self.address,
            "chainId": self.config.chain_id,
            "coprocessor": to_checksum_address(self.config.coprocessor),
            "registry": to_checksum_address(self.config.registry),
            "payee": to_checksum_address(self.config.payee),
            "teeType": int(self.backend.tee_type),
            "imageId": "0x" + self.backend.image_id().hex(),
            "templates": [{"id": t.id_hex, "name": t.name, "version": t.version} for t in self.templates.values()],
        }

    def attest(self, nonce: bytes, address: str | None = None) -> Evidence:
        """Evidence whose report data binds a key of ours (default: the active one), the payee, the chain,
        the registry and `nonce`."""
        if len(nonce) != 32:
            raise EnclaveError("nonce must be 32 bytes")
        address = self._known(address or self.address)
        c = self.config
        return self.backend.attest(report_data(address, c.payee, c.chain_id, c.registry, nonce))

    def rotate(self) -> str:
        """Generates a fresh key beside the active one and returns its address; `activate` switches to it.

        The old key keeps signing until then, so requests keep being answered while the new
        key is attested and registered.
        """
        with self._rotation:
            for address in [a for a in self._keys if a != self.address]:
                del self._keys[address]  # an earlier rotation that never got activated
            return self._new_key()

    def activate(self, address: str) -> None:
        """Signs with `address` from now on and forgets every other key."""
        with self._rotation:
            address = self._known(address)
            self._active = (address, self._keys[address], coincurve.PrivateKey(self._keys[address]))
            self._keys = {address: self._keys[address]}

    def _new_key(self) -> str:
        key = secrets.token_bytes(32)
        address = keys.PrivateKey(key).public_key.to_checksum_address()
        self._keys[address] = key
        return address

    def _known(self, address: str) -> str:
        checksummed = to_checksum_address(address)
        if checksummed not in self._keys:
            raise EnclaveError(f"no key {checksummed} in this enclave")
        return checksummed

    def run(self, request: Request, input_data: bytes) -> SignedResult:
        """Runs the request's template on `input_data` and signs the outcome.

        Refuses (raises) rather than signs when the input is not the one the request committed
        to: a signature must only ever speak about the request the chain holds.
        """
        if keccak(input_data) != request.input_hash:
            raise EnclaveError("input does not match the request's inputHash")
        template = self.templates.get(request.template_id)
        if template is None:
            status, output = Status.INVALID_INPUT, f"unknown template 0x{request.template_id.hex()}".encode()
        else:
            with self._slots:
                status, output = self._execute(template, request, input_data)
        address, _, signer = self._active
        digest = response_digest(self._domain, request, status, output)
        return SignedResult(status, output, sign_digest(signer, digest), address)

    def quote(
        self,
        template_id: bytes,
        input_data: bytes,
        consumer: str,
        deadline: int,
        anchor_block: int = 0,
        anchor_hash: bytes = _NO_ANCHOR,
    ) -> SignedQuote:
        """Runs a template now, outside any on-chain request, and signs a `Quote` of its Ok output.

        Raises `QuoteRefused` for any other status (nothing is signed). Chain reads are verified
        against `anchor_hash`, which the caller chooses and the verifying contract checks with
        `blockhash(anchorBlock)`; without an anchor the template may not read the chain.
        Randomness is refused: a caller could ask again until it liked the value.
        """
        now = int(time.time())
        if not now < deadline <= now + self.config.max_quote_seconds:
            raise EnclaveError(f"deadline must be within the next {self.config.max_quote_seconds} s")
        if len(anchor_hash) != 32 or (anchor_hash == _NO_ANCHOR) != (anchor_block == 0):
            raise EnclaveError("anchorBlock and anchorHash are given together (or both zero)")
        template = self.templates.get(template_id)
        if template is None:
            raise EnclaveError(f"unknown template 0x{template_id.hex()}")
        nonce = secrets.token_bytes(32)
        # The job sees a request-shaped context: the nonce stands in for the request id.
        request = Request(nonce, to_checksum_address(consumer), template_id, keccak(input_data), 0, 0, deadline, anchor_block, anchor_hash)
        # Quotes are free to ask for: they never take the last slot, which on-chain requests keep.
        with self._quote_slots, self._slots:
            status, output = self._execute(template, request, input_data, sync=True)
        if status != Status.OK:
            raise QuoteRefused(status, output.decode(errors="replace"))
        quote = Quote(
            template_id,
            request.input_hash,
            keccak(output),
            request.consumer,
            self.config.chain_id,
            deadline,
            anchor_block,
            anchor_hash,
            nonce,
        )
        address, _, signer = self._active
        return SignedQuote(quote, output, address, sign_digest(signer, quote_digest(self._domain, quote)))

    def _execute(self, template: Template, request: Request, input_data: bytes, sync: bool = False) -> tuple[Status, bytes]:
        limit = min(template.limits.output_bytes, self.config.max_output_bytes)
        job = {
            "template_id": template.id_hex,
            "entry": template.entry,
            "inputs": list(template.inputs),
            "outputs": list(template.outputs),
            "input": input_data.hex(),
            "limits": {
                "memory_mb": template.limits.memory_mb,
                "timeout_seconds": template.limits.timeout_seconds,
                "output_bytes": limit,
            },
            "context": {
                "request_id": request.request_id.hex(),
                "consumer": request.consumer,
                "template_id": request.template_id.hex(),
                "anchor_block": request.anchor_block,
                "anchor_hash": request.anchor_hash.hex(),
                "chain_id": self.config.chain_id,
                "deadline": request.deadline,
                "config": template.config,
            },
        }
        timeout = template.limits.timeout_seconds
        random_seed = keccak(b"coprocessor/random" + self._key)
        capabilities = _QuoteCapabilities if sync else JobCapabilities
        handler = capabilities(template, request, self.capabilities, random_seed, time.monotonic() + timeout)
        try:
            result = self._pool.run(self._images[template.template_id], job, timeout=timeout, handler=handler)
        finally:
            handler.close()
        status, output = result.status, result.output
        if len(output) > limit:
            return Status.RESOURCE_LIMIT, f"output of {len(output)} bytes exceeds the limit of {limit}".encode()
        if status == Status.OK:
            # Trusted re-check of what untrusted code produced: it must be canonical ABI of the declared types.
            # The layout first, in linear time: a decoder would follow aliased offsets into billions of elements.
            try:
                check_canonical(template.outputs, output)
            except NonCanonicalAbi as exc:
                return Status.TEMPLATE_ERROR, f"output is not canonical ABI of the declared types: {exc}".encode()
            try:  # then the values (ranges, padding, UTF-8), in time bounded by the output's size
                canonical = encode(list(template.outputs), list(decode(list(template.outputs), output)))
            except Exception:
                canonical = b""
            if canonical != output:
                return Status.TEMPLATE_ERROR, b"output is not canonical ABI of the declared types"
        return status, output

    def close(self) -> None:
        """Stops the template zygotes, their spare workers and the fork server."""
        self._pool.close()


class _QuoteCapabilities(JobCapabilities):
    """Capabilities of a sync-mode quote: no randomness, no operator secrets, and chain reads only with an anchor."""

    def _random(self, args: dict[str, Any]) -> str:
        raise CapabilityError("randomness is not offered in sync quotes: the caller could ask again for another value")

    def _secret(self, args: dict[str, Any]) -> str:
        # Anyone may ask for quotes, without a fee: they must not spend the operator's API keys.
        raise CapabilityError("operator secrets are not offered in sync quotes, which anyone may ask for free")

    def _chain(self, args: dict[str, Any]) -> Any:
        if self.request.anchor_hash == _NO_ANCHOR:
            raise CapabilityError("this quote has no anchor block, so it cannot read the chain")
        return super()._chain(args)
