"""The enclave: holds the signing key and the cluster's keys, runs templates in workers, signs responses."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import coincurve
from eth_abi import decode, encode
from eth_keys import keys
from eth_utils import to_checksum_address

from . import bundles
from .abi import NonCanonicalAbi, check_canonical
from .abicodec import keccak  # pycryptodome directly, as protocol.py
from .attestation import AttestationBackend, Evidence, pad_report_data
from .capabilities import CapabilitySettings, HostBudget, JobCapabilities
from .dcap import QuotePolicy, verify_bound_evidence
from .errors import CapabilityError, EnclaveError, EnclaveUnreachable
from .keyring import MAX_LIVE_EPOCHS, EpochRoot, Keyring
from .keys import ENVELOPE_VERSION, DecryptionFailed, decrypt_input, decrypt_secret, seal_root
from .pool import DEFAULT_WARM_TEMPLATES, TemplateImage, WorkerPool
from .protocol import (
    Domain,
    Quote,
    Request,
    SignedQuote,
    Status,
    TeeType,
    coprocessor_domain,
    quote_digest,
    report_data,
    response_digest,
    sign_digest,
    template_keys_digest,
)
from .provisioning import Cluster, JoinRequest, Newcomer, check_newcomer, new_nonce
from .sandbox import protect_enclave
from .template import Template

# Template runs at once. Each is mostly a process's start and teardown, which the kernel does while
# other runs compute, so 8 keep two cores busy where 2 left them a third idle (docs/node.md). The
# worst case in memory is this many times a template's `memory_mb`.
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class Binding:
    """One deployment the enclave signs for: a Coprocessor (the EIP-712 verifying contract) and the
    EnclaveRegistry its key is registered in, on one chain."""

    chain_id: int
    coprocessor: str
    registry: str
    chain_rpc: str | None = None  # where templates answering this chain's requests read it (untrusted, verified)
    # Contracts that request for others (Subscriptions, Sponsorships): an input sealed to one of them is sealed to
    # everyone who uses it, so the enclave opens none (docs/keys.md).
    forwarders: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EnclaveConfig:
    """What the enclave is bound to. Fixed at start: the node cannot change it per request.

    The home deployment (`chain_id`, `coprocessor`, `registry`) holds the cluster's keys; `others` are
    deployments on further chains, one per chain, that the same key answers (design §12).
    """

    chain_id: int
    coprocessor: str
    registry: str
    payee: str
    max_output_bytes: int = 16 * 1024
    max_quote_seconds: int = 3600  # the longest life a sync-mode quote may be signed for
    # Measurements, beyond this enclave's own, whose enclaves may receive the cluster's keys. Fixed at
    # start, so in production part of the measured configuration (dstack's compose hash).
    cluster_images: frozenset[bytes] = frozenset()
    key_grace_seconds: float = 24 * 3600  # how long a rotated-out epoch still opens inputs and secrets
    others: tuple[Binding, ...] = ()
    forwarders: tuple[tuple[int, str], ...] = ()  # (chain id, address) of each chain's forwarding contracts

    def bindings(self, home_rpc: str | None = None) -> dict[int, Binding]:
        """Every deployment by chain id, home first, each with its forwarders; two on one chain are refused."""
        found = {self.chain_id: Binding(self.chain_id, self.coprocessor, self.registry, home_rpc)}
        for binding in self.others:
            if binding.chain_id in found:
                raise EnclaveError(f"chain {binding.chain_id} is served twice: one Coprocessor per chain")
            found[binding.chain_id] = binding
        for chain, address in self.forwarders:
            if chain not in found:
                raise EnclaveError(f"forwarder {address} is on chain {chain}, which this enclave does not serve")
            found[chain] = replace(found[chain], forwarders=found[chain].forwarders | {address.lower()})
        return found


@dataclass(frozen=True)
class SignedResult:
    """A response signed by the enclave key."""

    status: Status
    output: bytes
    signature: bytes
    signer: str
    calls: tuple[bytes, ...] = ()  # the templates `ctx.call` ran to Ok, in the order they ended: the signed call tree


MAX_CALL_DEPTH = 3  # levels of `ctx.call` below the requested template
MAX_CALLS_PER_RUN = 16  # `ctx.call`s in one request's whole tree


@dataclass
class _CallTree:
    """One request's nested calls: the templates running now (outermost first) and those that ended Ok."""

    stack: list[bytes]
    ended_ok: list[bytes] = field(default_factory=list)
    count: int = 0
    host: HostBudget = field(default_factory=HostBudget)  # the host's time, for the whole tree
    chain_error: str | None = None  # a callee's chain data failed verification: the root cannot end Ok on it


class QuoteRefused(EnclaveError):
    """The template's run ended in an error status: quotes are signed for Ok outputs only."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(f"{status.name}: {reason}")
        self.status = status
        self.reason = reason


_NO_ANCHOR = b"\0" * 32
_JOIN_NONCE_SECONDS = 300.0
_MAX_JOIN_NONCES = 64
_MAX_REMEMBERED_INPUTS = 1 << 17  # encrypted inputs remembered with their request (64 bytes each: ~8 MB at most)
_MAX_SEALED_SECRETS = 4096
_GRANT_LABEL = b"coprocessor/v1/grant"


def _grant_digest(binding: bytes, sealed: list[tuple[bytes, float | None]]) -> bytes:
    """What a granting enclave's quote binds: the join, and every sealed root with its retirement time."""
    parts = [_GRANT_LABEL, binding]
    for envelope, retire_at in sealed:
        retire = (2**64 - 1) if retire_at is None else int(retire_at * 1000)
        parts += [len(envelope).to_bytes(4, "big"), envelope, retire.to_bytes(8, "big")]
    return hashlib.sha256(b"".join(parts)).digest()


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
        self._bindings = config.bindings(self.capabilities.chain_rpc)
        self._domains = {chain: coprocessor_domain(chain, b.coprocessor) for chain, b in self._bindings.items()}
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._quote_slots = threading.BoundedSemaphore(max(1, max_concurrency - 1))
        self._rotation = threading.Lock()
        self.keyring = Keyring(config.key_grace_seconds)
        self._join_nonces: dict[bytes, float] = {}  # issued for joins: each accepted once, within _JOIN_NONCE_SECONDS
        self._newcomer: Newcomer | None = None  # this enclave's own join in progress
        self._sealed_secrets: dict[tuple[bytes, str], bytes] = {}  # (template id, name) -> envelope: opened at use only
        self._runs_of_input: OrderedDict[bytes, bytes] = OrderedDict()  # encrypted input's hash -> the request it ran for

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
            "chains": [
                {
                    "chainId": b.chain_id,
                    "coprocessor": to_checksum_address(b.coprocessor),
                    "registry": to_checksum_address(b.registry),
                    "forwarders": sorted(to_checksum_address(f) for f in b.forwarders),
                }
                for b in self._bindings.values()
            ],
            # Other chains templates may read, and what makes a block of each trusted (docs/chains.md).
            "readChains": [
                {"chainId": r.chain_id, "rpcs": len(r.rpcs), "quorum": r.quorum, "finalityDepth": r.finality_depth}
                for r in self.capabilities.remote_chains.values()
            ],
            "teeType": int(self.backend.tee_type),
            "imageId": "0x" + self.backend.image_id().hex(),
            "templates": [{"id": t.id_hex, "name": t.name, "version": t.version} for t in self.templates.values()],
        }

    def attest(self, nonce: bytes, address: str | None = None, chain_id: int | None = None) -> Evidence:
        """Evidence whose report data binds a key of ours (default: the active one), the payee, the chain
        (default: home), its registry and `nonce`."""
        if len(nonce) != 32:
            raise EnclaveError("nonce must be 32 bytes")
        address = self._known(address or self.address)
        binding = self._binding(chain_id)
        return self.backend.attest(report_data(address, self.config.payee, binding.chain_id, binding.registry, nonce))

    def domain(self, chain_id: int | None = None) -> Domain:
        """The EIP-712 domain this enclave signs responses and quotes in for `chain_id` (default: home)."""
        return self._domains[self._binding(chain_id).chain_id]

    def _binding(self, chain_id: int | None) -> Binding:
        """The deployment a call is for: `chain_id`'s, or home's when it is None."""
        binding = self._bindings.get(self.config.chain_id if chain_id is None else chain_id)
        if binding is None:
            raise EnclaveError(f"this enclave does not serve chain {chain_id} (it serves {sorted(self._bindings)})")
        return binding

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

    # ------------------------------------------------------------------ the cluster's keys

    @property
    def cluster(self) -> Cluster:
        """The cluster this enclave's keys belong to: its chain and registry, production unless it is a DEV enclave."""
        return Cluster(self.config.chain_id, self.config.registry, production=self.backend.tee_type != TeeType.DEV)

    def keys_genesis(self) -> int:
        """Makes the cluster's first epoch in this enclave; returns it."""
        return self.keyring.genesis()

    def rotate_epoch(self) -> int:
        """Starts a new epoch (fresh root); the previous one still opens for the grace window. Enclaves that
        should keep serving must join again to receive it: a revoked one is simply not let in."""
        return self.keyring.rotate()

    def join_nonce(self) -> bytes:
        """A nonce for one enclave's join, valid for one grant within a few minutes."""
        if self.keyring.current is None:
            raise EnclaveError("this enclave holds no cluster keys to share")
        now = time.monotonic()
        with self._rotation:
            for nonce in [n for n, issued in self._join_nonces.items() if now - issued > _JOIN_NONCE_SECONDS]:
                del self._join_nonces[nonce]
            if len(self._join_nonces) >= _MAX_JOIN_NONCES:
                raise EnclaveError("too many joins in progress: try again in a few minutes")
            nonce = new_nonce()
            self._join_nonces[nonce] = now
        return nonce

    def join_request(self, nonce: bytes) -> JoinRequest:
        """This enclave's request to join the cluster of the enclave that issued `nonce`: a quote binding a
        fresh ephemeral key. Its private half stays here until `accept`."""
        newcomer = Newcomer(self.cluster, nonce)
        self._newcomer = newcomer
        return newcomer.join_request(self.backend)

    def _cluster_policy(self) -> QuotePolicy:
        """Whose quotes this enclave trusts as the cluster's: its own measurement and the configured cluster
        images; a dev cluster trusts its dev PKI's root, a production one no development root at all."""
        return QuotePolicy(
            allowed_images=frozenset({self.backend.image_id(), *self.config.cluster_images}),
            dev_root_ca_der=None if self.cluster.production else getattr(self.backend, "dev_root_ca_der", None),
        )

    def grant(
        self, request: JoinRequest, nonce: bytes, collateral: dict[str, Any] | None = None
    ) -> tuple[list[tuple[bytes, float | None]], Evidence]:
        """Each live epoch's root sealed to a newcomer, with its retirement time, after checking its quote
        with the attestor's code: measurement on the allowlist (this enclave's own, and the configured
        cluster images), report data binding its ephemeral key and `nonce`, and no DEV enclave in a
        production cluster. The nonce is spent either way. With it, this enclave's own quote over the
        grant, so the newcomer installs keys from an attested member of its cluster only, never from the
        node relaying them."""
        with self._rotation:
            issued = self._join_nonces.pop(nonce, None)
        if issued is None or time.monotonic() - issued > _JOIN_NONCE_SECONDS:
            raise EnclaveError("unknown or expired join nonce: ask this enclave for a new one")
        check_newcomer(request, nonce, self.cluster, self._cluster_policy(), collateral)
        binding = self.cluster.binding(nonce, request.ephemeral_public)
        sealed = [(seal_root(request.ephemeral_public, e.root, e.epoch, binding), e.retire_at) for e in self.keyring.live()]
        return sealed, self.backend.attest(_grant_digest(binding, sealed))

    def accept(self, sealed: list[tuple[bytes, float | None]], evidence: Evidence, collateral: dict[str, Any] | None = None) -> int:
        """Opens the epochs a running enclave granted to this one's join, once its quote over exactly this grant
        (roots and retirement times, for this join) checked out under the cluster's policy; returns the current epoch."""
        newcomer, self._newcomer = self._newcomer, None
        if newcomer is None:
            raise EnclaveError("no join in progress: ask for a join request first")
        if not sealed or len(sealed) > MAX_LIVE_EPOCHS:
            raise EnclaveError(f"a grant holds 1 to {MAX_LIVE_EPOCHS} epochs")
        expected = pad_report_data(_grant_digest(newcomer.binding, sealed))
        verify_bound_evidence(evidence, expected, "(the grant sealed for this join)", self._cluster_policy(), collateral)
        epochs = []
        for envelope, retire_at in sealed:
            root, epoch = newcomer.open_root(envelope)
            epochs.append(EpochRoot(epoch, root, retire_at))
        self.keyring.install(epochs)
        return max(e.epoch for e in epochs)

    def template_keys(self, template_id: bytes, chain_id: int | None = None) -> tuple[int, bytes, bytes, bytes]:
        """(epoch, input public key, secrets public key, signature) of a template in the current epoch, signed
        with this enclave's key for a chain's KeyRegistry (default: home's), which accepts them only from a
        registered, active enclave."""
        if template_id not in self.templates:
            raise EnclaveError(f"unknown template 0x{template_id.hex()}")
        epoch, derived = self.keyring.template_keys(template_id)
        input_key, secrets_key = derived.input_public, derived.secrets_public
        _, _, signer = self._active
        digest = template_keys_digest(self._domains[self._binding(chain_id).chain_id], template_id, epoch, input_key, secrets_key)
        return epoch, input_key, secrets_key, sign_digest(signer, digest)

    def put_sealed_secret(self, template_id: bytes, name: str, envelope: bytes) -> None:
        """Keeps a secret sealed to a template's secrets key; it is opened only when that template asks for it."""
        template = self.templates.get(template_id)
        if template is None:
            raise EnclaveError(f"unknown template 0x{template_id.hex()}")
        if name not in template.secrets:
            raise EnclaveError(f"template {template.name} declares no secret {name!r}")
        try:  # refused now, not at use; an epoch this enclave has yet to receive is worth handing over again later
            decrypt_secret(self.keyring.epoch_secret, envelope, name, self.config.chain_id, template_id)
        except DecryptionFailed:
            self._unless_epoch_held(envelope)
            raise
        with self._rotation:
            if (template_id, name) not in self._sealed_secrets and len(self._sealed_secrets) >= _MAX_SEALED_SECRETS:
                raise EnclaveError(f"this enclave keeps at most {_MAX_SEALED_SECRETS} sealed secrets")
            self._sealed_secrets[(template_id, name)] = envelope

    def _open_secret(self, template: Template, name: str) -> str | None:
        envelope = self._sealed_secrets.get((template.template_id, name))
        if envelope is None:
            return None
        try:
            value = decrypt_secret(self.keyring.epoch_secret, envelope, name, self.config.chain_id, template.template_id)
        except DecryptionFailed:
            self._unless_epoch_held(envelope)
            raise
        return value.decode("utf-8", errors="replace")

    def _open_input(self, template: Template, request: Request, input_data: bytes, binding: Binding) -> bytes:
        """The plaintext of an encrypted input; DecryptionFailed if it was not sealed for this template,
        consumer, Coprocessor and chain, or to a retired epoch. A newer epoch than this enclave holds is
        `EnclaveUnreachable`: not the input's fault, so nothing is signed and the run is retried (by this
        node once its enclave joined again, or by another node's)."""
        b = binding
        if request.consumer.lower() in b.forwarders:
            raise DecryptionFailed(
                f"{request.consumer} requests for others: an input sealed to it is anyone's to copy, so none is opened"
                " (seal to your own consumer contract)"
            )
        try:
            return decrypt_input(self.keyring.epoch_secret, input_data, b.chain_id, b.coprocessor, request.consumer, template.template_id)
        except DecryptionFailed:
            self._unless_epoch_held(input_data)
            raise

    def _unless_epoch_held(self, envelope: bytes) -> None:
        """`EnclaveUnreachable` when `envelope` names an epoch newer than any this enclave holds."""
        if len(envelope) < 9 or envelope[0] != ENVELOPE_VERSION:
            return
        epoch, current = int.from_bytes(envelope[1:9], "big"), self.keyring.current
        if current is None or epoch > current:
            raise EnclaveUnreachable(f"this enclave does not hold key epoch {epoch}: have it join the cluster (`coprocessor keys join`)")

    def _first_run_of(self, input_data: bytes, commitment: bytes) -> bool:
        """Whether an encrypted input runs for this request only: the node chooses the requests it asks the
        enclave to run, so without this it could run one sealed input under invented requests (other
        randomness, other anchor blocks) and learn more from their outputs than the chain will."""
        key = keccak(input_data)
        with self._rotation:
            first = self._runs_of_input.setdefault(key, commitment)
            self._runs_of_input.move_to_end(key)
            while len(self._runs_of_input) > _MAX_REMEMBERED_INPUTS:
                self._runs_of_input.popitem(last=False)
        return first == commitment

    def run(self, request: Request, input_data: bytes, chain_id: int | None = None) -> SignedResult:
        """Runs the request's template on `input_data` and signs the outcome for `chain_id`'s Coprocessor
        (default: home's).

        Refuses (raises) rather than signs when the input is not the one the request committed
        to: a signature must only ever speak about the request the chain holds.
        """
        if keccak(input_data) != request.input_hash:
            raise EnclaveError("input does not match the request's inputHash")
        binding = self._binding(chain_id)
        calls: tuple[bytes, ...] = ()
        template = self.templates.get(request.template_id)
        if template is None:
            status, output = Status.INVALID_INPUT, f"unknown template 0x{request.template_id.hex()}".encode()
        else:
            try:
                plaintext = self._open_input(template, request, input_data, binding) if template.encrypted_input else input_data
            except DecryptionFailed as exc:
                status, output = Status.INVALID_INPUT, f"encrypted input: {exc}".encode()
            else:
                if template.encrypted_input and not self._first_run_of(input_data, request.commitment()):
                    raise EnclaveError("this encrypted input was already run for another request: refused, nothing signed")
                tree = _CallTree([template.template_id])
                with self._slots:  # calls run inside this slot: a tree never waits on slots its own root holds
                    status, output = self._execute(template, request, plaintext, binding, tree)
                if tree.chain_error is not None and status != Status.CHAIN_DATA_INVALID:
                    # A lying host must never turn into an answer, however a caller handled its callee's status.
                    status, output = Status.CHAIN_DATA_INVALID, f"a called template's chain data: {tree.chain_error}"[:256].encode()
                calls = tuple(tree.ended_ok)  # the callees did their work, whatever the caller made of it: they are paid
        address, _, signer = self._active
        digest = response_digest(self._domains[binding.chain_id], request, status, output, calls)
        return SignedResult(status, output, sign_digest(signer, digest), address, calls)

    def quote(
        self,
        template_id: bytes,
        input_data: bytes,
        consumer: str,
        deadline: int,
        anchor_block: int = 0,
        anchor_hash: bytes = _NO_ANCHOR,
        chain_id: int | None = None,
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
        binding = self._binding(chain_id)
        template = self.templates.get(template_id)
        if template is None:
            raise EnclaveError(f"unknown template 0x{template_id.hex()}")
        if template.encrypted_input:  # a signed quote names its input's hash: that would publish a guessable plaintext's
            raise EnclaveError(f"template {template.name} takes encrypted inputs: ask for it on-chain, not as a quote")
        nonce = secrets.token_bytes(32)
        # The job sees a request-shaped context: the nonce stands in for the request id.
        request = Request(nonce, to_checksum_address(consumer), template_id, keccak(input_data), 0, 0, deadline, anchor_block, anchor_hash)
        # Quotes are free to ask for: they never take the last slot, which on-chain requests keep.
        with self._quote_slots, self._slots:
            status, output = self._execute(template, request, input_data, binding, None, sync=True)
        if status != Status.OK:
            raise QuoteRefused(status, output.decode(errors="replace"))
        quote = Quote(
            template_id,
            request.input_hash,
            keccak(output),
            request.consumer,
            binding.chain_id,
            deadline,
            anchor_block,
            anchor_hash,
            nonce,
        )
        address, _, signer = self._active
        return SignedQuote(quote, output, address, sign_digest(signer, quote_digest(self._domains[binding.chain_id], quote)))

    def _execute(
        self,
        template: Template,
        request: Request,
        input_data: bytes,
        binding: Binding,
        tree: _CallTree | None = None,
        sync: bool = False,
        time_left: float | None = None,
    ) -> tuple[Status, bytes]:
        """Runs one template in a worker; `tree` (None in sync quotes) lets it `ctx.call` the templates it declares,
        `time_left` caps a called template's timeout at what its caller has left."""
        limit = min(template.limits.output_bytes, self.config.max_output_bytes)
        timeout = template.limits.timeout_seconds if time_left is None else min(template.limits.timeout_seconds, time_left)
        job = {
            "template_id": template.id_hex,
            "entry": template.entry,
            "inputs": list(template.inputs),
            "outputs": list(template.outputs),
            "input": input_data.hex(),
            "limits": {
                "memory_mb": template.limits.memory_mb,
                "timeout_seconds": template.limits.timeout_seconds,  # the zygote's own; a call's shorter wall time is the pool's
                "output_bytes": limit,
            },
            "context": {
                "request_id": request.request_id.hex(),
                "consumer": request.consumer,
                "template_id": template.id_hex.removeprefix("0x"),  # the running template's, a callee's own
                "anchor_block": request.anchor_block,
                "anchor_hash": request.anchor_hash.hex(),
                "chain_id": binding.chain_id,
                "deadline": request.deadline,
                "config": template.config,
            },
        }
        random_seed = self._random_seed(template)
        capabilities = _QuoteCapabilities if sync else JobCapabilities
        handler = capabilities(
            template,
            request,
            self.capabilities if binding.chain_id == self.config.chain_id else replace(self.capabilities, chain_rpc=binding.chain_rpc),
            random_seed,
            time.monotonic() + timeout,
            sealed_secret=lambda name: self._open_secret(template, name),
            call_template=None if tree is None else lambda callee, data, left: self._call(tree, callee, data, left, request, binding),
            host_budget=None if tree is None else tree.host,
        )
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

    def _call(
        self, tree: _CallTree, callee_id: bytes, input_data: bytes, time_left: float, request: Request, binding: Binding
    ) -> tuple[Status, bytes]:
        """`ctx.call` from the template on top of `tree.stack`: runs a template it declares, under the callee's own
        limits, for the same request. Refused (the caller gets CapabilityError): an undeclared callee, a cycle, a
        tree deeper than MAX_CALL_DEPTH or larger than MAX_CALLS_PER_RUN, a callee taking encrypted input."""
        caller = self.templates[tree.stack[-1]]
        if callee_id in tree.stack:
            raise CapabilityError(f"call cycle: template 0x{callee_id.hex()[:12]}… is already running in this call tree")
        if callee_id not in caller.calls:
            raise CapabilityError(f"template {caller.name} does not declare 0x{callee_id.hex()[:12]}… in `calls`")
        if len(tree.stack) > MAX_CALL_DEPTH:
            raise CapabilityError(f"calls nest at most {MAX_CALL_DEPTH} deep")
        if tree.count >= MAX_CALLS_PER_RUN:
            raise CapabilityError(f"at most {MAX_CALLS_PER_RUN} calls in one request")
        callee = self.templates.get(callee_id)
        if callee is None:
            raise EnclaveUnreachable(f"this enclave does not hold template 0x{callee_id.hex()}: another enclave may")
        if not callee.callable:
            raise CapabilityError(f"template {callee.name} is not callable (its manifest has no `callable = true`)")
        if callee.encrypted_input:
            raise CapabilityError(f"template {callee.name} takes encrypted input: it cannot be called")
        tree.count += 1
        tree.stack.append(callee_id)
        try:
            status, output = self._execute(callee, request, input_data, binding, tree, time_left=time_left)
        finally:
            tree.stack.pop()
        if status == Status.OK:
            tree.ended_ok.append(callee_id)
        elif status == Status.CHAIN_DATA_INVALID and tree.chain_error is None:
            tree.chain_error = output.decode(errors="replace")
        return status, output

    def _random_seed(self, template: Template) -> bytes:
        """The cluster's seed for the template when keys are held, so every enclave of the cluster draws the
        same values for a request; else one of this enclave's own."""
        if self.keyring.current is not None:
            try:
                return self.keyring.template_keys(template.template_id)[1].random_seed
            except EnclaveError:
                pass
        return keccak(b"coprocessor/random" + self._key)

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
        if self.request.anchor_hash == _NO_ANCHOR and args.get("chainId") is None:
            raise CapabilityError("this quote has no anchor block, so it cannot read the chain")
        return super()._chain(args)
