"""The cluster key hierarchy and the HPKE envelopes sealed to it (design section 11).

Why: a template's inputs and secrets must be readable by attested enclaves of the cluster
and by nothing else, not the node, not the operator. So every key derives, with HKDF-SHA256
and one label per purpose, from a 32-byte cluster root that only enclaves hold:

    epoch secret  = HKDF(root,  info = "coprocessor/v1/epoch"   || epoch (u64 BE))
    input key     = HKDF(epoch, info = "coprocessor/v1/input"   || template id)   X25519, public half on-chain
    secrets key   = HKDF(epoch, info = "coprocessor/v1/secrets" || template id)   X25519, public half on-chain
    random seed   = HKDF(epoch, info = "coprocessor/v1/random"  || template id)

A compromised epoch exposes that epoch only; a template's keys expose that template only.

Ciphertexts are RFC 9180 HPKE, base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM,
single-shot. What a ciphertext is bound to (chain, Coprocessor, consumer, template, secret name)
goes into HPKE's `info`, not a per-message `aad`: RFC 9180 section 8.1 asks single-shot users to
put auxiliary authenticated data there, and `cryptography`'s HPKE exposes only `info`. A wrong
binding derives another AEAD key, so decryption fails exactly as with a wrong AAD.

Envelope (inputs, secrets and the sealed root alike):

    version (1 byte, 1) || epoch (u64 BE) || enc (32, the sender's ephemeral X25519 key) || AES-256-GCM ciphertext and tag

The header is bound too: every `info` starts with its label, then the 9 header bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import to_canonical_address

from .errors import CoprocessorError

ROOT_BYTES = 32
TEMPLATE_ID_BYTES = 32
KEY_BYTES = 32  # X25519 keys, private and public, raw
ENVELOPE_VERSION = 1
HEADER_BYTES = 1 + 8  # version, epoch
ENC_BYTES = 32  # HPKE's encapsulated key for DHKEM(X25519)
TAG_BYTES = 16  # AES-256-GCM
MIN_ENVELOPE_BYTES = HEADER_BYTES + ENC_BYTES + TAG_BYTES  # an empty plaintext
MAX_ENVELOPE_BYTES = 64 * 1024
MAX_SECRET_NAME_BYTES = 255
MAX_EPOCH = 2**64 - 1

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)

# HKDF labels (derivation) and HPKE info labels (what a ciphertext is for). Each set is prefix-free.
_EPOCH = b"coprocessor/v1/epoch"
_INPUT_KEY = b"coprocessor/v1/input"
_SECRETS_KEY = b"coprocessor/v1/secrets"
_RANDOM = b"coprocessor/v1/random"
INPUT_INFO = b"coprocessor/v1/encrypted-input"
SECRET_INFO = b"coprocessor/v1/encrypted-secret"
ROOT_INFO = b"coprocessor/v1/sealed-root"

# The epoch secret for an epoch, or None when this enclave does not hold it (unknown, or past its grace window).
EpochSecrets = Callable[[int], bytes | None]


class DecryptionFailed(CoprocessorError, ValueError):
    """An envelope is malformed, for an epoch we do not hold, or does not open with this key and binding."""


@dataclass(frozen=True)
class TemplateKeys:
    """One template's keys for one epoch."""

    input_key: X25519PrivateKey = field(repr=False)
    secrets_key: X25519PrivateKey = field(repr=False)
    random_seed: bytes = field(repr=False)

    @property
    def input_public(self) -> bytes:
        """The input key's public half (32 raw bytes): what requesters encrypt to."""
        return public_bytes(self.input_key)

    @property
    def secrets_public(self) -> bytes:
        """The secrets key's public half (32 raw bytes): what template owners encrypt secrets to."""
        return public_bytes(self.secrets_key)


# ---------------------------------------------------------------------------- derivation


def new_root() -> bytes:
    """A fresh cluster root: 32 bytes from the OS's CSPRNG."""
    return secrets.token_bytes(ROOT_BYTES)


def epoch_secret(root: bytes, epoch: int) -> bytes:
    """HKDF-SHA256(root, info = "coprocessor/v1/epoch" || epoch as u64 BE), 32 bytes."""
    _check_length("cluster root", root, ROOT_BYTES)
    return _hkdf(root, _EPOCH + _epoch_bytes(epoch))


def template_keys(epoch_secret: bytes, template_id: bytes) -> TemplateKeys:
    """The input key, secrets key and random seed of `template_id` under one epoch secret."""
    _check_length("epoch secret", epoch_secret, ROOT_BYTES)
    _check_length("template id", template_id, TEMPLATE_ID_BYTES)
    return TemplateKeys(
        X25519PrivateKey.from_private_bytes(_hkdf(epoch_secret, _INPUT_KEY + template_id)),
        X25519PrivateKey.from_private_bytes(_hkdf(epoch_secret, _SECRETS_KEY + template_id)),
        _hkdf(epoch_secret, _RANDOM + template_id),
    )


def public_bytes(private_key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public half of an X25519 private key."""
    return private_key.public_key().public_bytes_raw()


# ---------------------------------------------------------------------------- HPKE


def seal(public_key: bytes, plaintext: bytes, info: bytes) -> bytes:
    """HPKE base-mode single-shot encryption to a raw X25519 public key: enc (32) || ciphertext || tag."""
    _check_length("X25519 public key", public_key, KEY_BYTES)
    try:
        return SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(public_key), info=info)
    except ValueError:  # a low-order point: the shared secret would be all zero (RFC 9180 section 7.1.4)
        raise ValueError("not a usable X25519 public key (a low-order point)") from None


def unseal(private_key: X25519PrivateKey, sealed: bytes, info: bytes) -> bytes:
    """Inverse of `seal`; DecryptionFailed for any wrong key, info or byte."""
    try:
        return SUITE.decrypt(sealed, private_key, info=info)
    except (InvalidTag, ValueError):
        raise DecryptionFailed("HPKE ciphertext does not open with this key and binding") from None


# ---------------------------------------------------------------------------- encrypted inputs


def input_binding(chain_id: int, coprocessor: str | bytes, consumer: str | bytes, template_id: bytes) -> bytes:
    """chain id (32, BE) || Coprocessor (20) || consumer (20) || template id (32): what an encrypted input is for."""
    _check_length("template id", template_id, TEMPLATE_ID_BYTES)
    return _chain_bytes(chain_id) + _address(coprocessor) + _address(consumer) + template_id


def encrypt_input(
    input_public_key: bytes,
    epoch: int,
    plaintext: bytes,
    chain_id: int,
    coprocessor: str | bytes,
    consumer: str | bytes,
    template_id: bytes,
) -> bytes:
    """An input envelope for one template's input key, usable only by this consumer through this Coprocessor."""
    binding = input_binding(chain_id, coprocessor, consumer, template_id)
    return _seal_envelope(input_public_key, epoch, plaintext, INPUT_INFO, binding, "encrypted input")


def decrypt_input(
    epoch_secrets: EpochSecrets,
    envelope: bytes,
    chain_id: int,
    coprocessor: str | bytes,
    consumer: str | bytes,
    template_id: bytes,
) -> bytes:
    """The plaintext of an input envelope, opened with the template's input key for the envelope's epoch."""
    binding = input_binding(chain_id, coprocessor, consumer, template_id)
    epoch, sealed = _parse_envelope(envelope, "encrypted input")
    keys = template_keys(_epoch_secret_for(epoch_secrets, epoch), template_id)
    return _open(
        keys.input_key,
        sealed,
        INPUT_INFO + _header(epoch) + binding,
        f"encrypted input does not open: not sealed to this template's input key for epoch {epoch}, "
        "or not for this chain, Coprocessor, consumer and template",
    )


# ---------------------------------------------------------------------------- encrypted secrets


def secret_binding(chain_id: int, template_id: bytes, name: str) -> bytes:
    """chain id (32, BE) || template id (32) || name length (u16 BE) || name (UTF-8): what an encrypted secret is for."""
    _check_length("template id", template_id, TEMPLATE_ID_BYTES)
    encoded = name.encode()
    if not 0 < len(encoded) <= MAX_SECRET_NAME_BYTES:
        raise ValueError(f"a secret's name must be 1 to {MAX_SECRET_NAME_BYTES} bytes of UTF-8")
    return _chain_bytes(chain_id) + template_id + len(encoded).to_bytes(2, "big") + encoded


def encrypt_secret(secrets_public_key: bytes, epoch: int, name: str, value: bytes, chain_id: int, template_id: bytes) -> bytes:
    """A secret envelope for one template's secrets key, readable only as the secret `name` of that template."""
    binding = secret_binding(chain_id, template_id, name)
    return _seal_envelope(secrets_public_key, epoch, value, SECRET_INFO, binding, f"encrypted secret {name!r}")


def decrypt_secret(epoch_secrets: EpochSecrets, envelope: bytes, name: str, chain_id: int, template_id: bytes) -> bytes:
    """The value of a secret envelope, opened with the template's secrets key for the envelope's epoch."""
    binding = secret_binding(chain_id, template_id, name)
    epoch, sealed = _parse_envelope(envelope, f"encrypted secret {name!r}")
    keys = template_keys(_epoch_secret_for(epoch_secrets, epoch), template_id)
    return _open(
        keys.secrets_key,
        sealed,
        SECRET_INFO + _header(epoch) + binding,
        f"encrypted secret {name!r} does not open: not sealed to this template's secrets key for epoch {epoch}, "
        "or sealed for another name, template or chain",
    )


# ---------------------------------------------------------------------------- the sealed root


def seal_root(ephemeral_public: bytes, root: bytes, epoch: int, binding: bytes) -> bytes:
    """The cluster root and current epoch, sealed to a newcomer's ephemeral key and bound to `binding`."""
    _check_length("cluster root", root, ROOT_BYTES)
    return _seal_envelope(ephemeral_public, epoch, root, ROOT_INFO, binding, "sealed root")


def open_root(ephemeral_key: X25519PrivateKey, envelope: bytes, binding: bytes) -> tuple[bytes, int]:
    """(root, epoch) from `seal_root`'s envelope, for the holder of the ephemeral key and the same binding."""
    epoch, sealed = _parse_envelope(envelope, "sealed root")
    root = _open(
        ephemeral_key,
        sealed,
        ROOT_INFO + _header(epoch) + binding,
        "sealed root does not open: not sealed to this ephemeral key, or for another binding",
    )
    if len(root) != ROOT_BYTES:
        raise DecryptionFailed(f"sealed root holds {len(root)} bytes, not a {ROOT_BYTES}-byte root")
    return root, epoch


# ---------------------------------------------------------------------------- private helpers


def _hkdf(key: bytes, info: bytes) -> bytes:
    """32 bytes of HKDF-SHA256 (no salt: every input key is already uniformly random)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def _seal_envelope(public_key: bytes, epoch: int, plaintext: bytes, label: bytes, binding: bytes, what: str) -> bytes:
    """version || epoch || HPKE(label || version || epoch || binding), within the size bound."""
    header = _header(epoch)
    envelope = header + seal(public_key, plaintext, label + header + binding)
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise ValueError(f"{what} would be {len(envelope)} bytes; at most {MAX_ENVELOPE_BYTES}")
    return envelope


def _parse_envelope(envelope: bytes, what: str) -> tuple[int, bytes]:
    """(epoch, HPKE part) of an envelope, refused with a clear reason when it cannot be one."""
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise DecryptionFailed(f"{what} is {len(envelope)} bytes; at most {MAX_ENVELOPE_BYTES}")
    if len(envelope) < MIN_ENVELOPE_BYTES:
        raise DecryptionFailed(f"{what} is {len(envelope)} bytes; an envelope has at least {MIN_ENVELOPE_BYTES} (version, epoch, key, tag)")
    if envelope[0] != ENVELOPE_VERSION:
        raise DecryptionFailed(f"{what} has envelope version {envelope[0]}; this enclave reads version {ENVELOPE_VERSION}")
    return int.from_bytes(envelope[1:HEADER_BYTES], "big"), envelope[HEADER_BYTES:]


def _open(private_key: X25519PrivateKey, sealed: bytes, info: bytes, reason: str) -> bytes:
    """`unseal` with a reason that says what did not match."""
    try:
        return unseal(private_key, sealed, info)
    except DecryptionFailed:
        raise DecryptionFailed(reason) from None


def _epoch_secret_for(epoch_secrets: EpochSecrets, epoch: int) -> bytes:
    """The epoch secret the caller holds for `epoch`, or DecryptionFailed."""
    secret = epoch_secrets(epoch)
    if secret is None:
        raise DecryptionFailed(f"no key for epoch {epoch}: unknown, or past its grace window")
    return secret


def _header(epoch: int) -> bytes:
    """The envelope header: version, then the epoch as u64 BE."""
    return bytes([ENVELOPE_VERSION]) + _epoch_bytes(epoch)


def _epoch_bytes(epoch: int) -> bytes:
    """An epoch as 8 bytes big-endian."""
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch must be in [0, 2**64): {epoch}")
    return epoch.to_bytes(8, "big")


def _chain_bytes(chain_id: int) -> bytes:
    """A chain id as 32 bytes big-endian (uint256)."""
    if not 0 < chain_id < 2**256:
        raise ValueError(f"chain id must be in (0, 2**256): {chain_id}")
    return chain_id.to_bytes(32, "big")


def _address(address: str | bytes) -> bytes:
    """An EVM address as its 20 bytes (hex with or without checksum, or 20 raw bytes)."""
    try:
        return bytes(to_canonical_address(address))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an address: {address!r} ({exc})") from None


def _check_length(what: str, value: bytes, length: int) -> None:
    """ValueError unless `value` is `length` bytes."""
    if len(value) != length:
        raise ValueError(f"{what} must be {length} bytes, not {len(value)}")
