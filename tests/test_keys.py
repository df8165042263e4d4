"""The key hierarchy and its HPKE envelopes: derivation, RFC 9180 interop, bindings, and malformed envelopes."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coprocessor_enclave import keys
from coprocessor_enclave.errors import CoprocessorError
from coprocessor_enclave.keys import DecryptionFailed

ROOT = bytes(range(32))
TEMPLATE = bytes.fromhex("aa" * 32)
OTHER_TEMPLATE = bytes.fromhex("bb" * 32)
CHAIN = 31337
COPROCESSOR = "0x" + "11" * 20
CONSUMER = "0x" + "22" * 20
EPOCH = 3


@dataclass(frozen=True)
class Binding:
    """What an encrypted input is for."""

    chain_id: int = CHAIN
    coprocessor: str = COPROCESSOR
    consumer: str = CONSUMER
    template_id: bytes = TEMPLATE


OURS = Binding()


def _encrypt(plaintext: bytes, public_key: bytes | None = None, epoch: int = EPOCH, to: Binding = OURS) -> bytes:
    """An input envelope, by default to our template's epoch-3 input key."""
    key = _keys().input_public if public_key is None else public_key
    return keys.encrypt_input(key, epoch, plaintext, to.chain_id, to.coprocessor, to.consumer, to.template_id)


def _decrypt(held: keys.EpochSecrets, envelope: bytes, at: Binding = OURS) -> bytes:
    """`decrypt_input` as the enclave runs it for `at`."""
    return keys.decrypt_input(held, envelope, at.chain_id, at.coprocessor, at.consumer, at.template_id)


# RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode, sequence 0, as printed
# in the RFC (source: github.com/cfrg/draft-irtf-cfrg-hpke, draft-irtf-cfrg-hpke.md at b1f7cb0). The RFC prints no
# vector with AES-256-GCM, so the RFC's key schedule is written out below (`_hpke_context`), checked against
# this vector, then used to seal and open with our exact suite, both ways.
A1_INFO = bytes.fromhex("4f6465206f6e2061204772656369616e2055726e")  # "Ode on a Grecian Urn"
A1_SK_E = bytes.fromhex("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736")
A1_ENC = bytes.fromhex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
A1_SK_R = bytes.fromhex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
A1_PK_R = bytes.fromhex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")
A1_SHARED_SECRET = bytes.fromhex("fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc")
A1_KEY = bytes.fromhex("4531685d41d65f03dc48f6b8302c05b0")
A1_BASE_NONCE = bytes.fromhex("56d890e5accaaf011cff4b7d")
A1_AAD = bytes.fromhex("436f756e742d30")  # "Count-0"
A1_CT = bytes.fromhex("f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a")
A1_PT = bytes.fromhex("4265617574792069732074727574682c20747275746820626561757479")  # "Beauty is truth, truth beauty"
AES_128_GCM, AES_256_GCM = 1, 2


def _secrets_for(*epochs: int, root: bytes = ROOT) -> keys.EpochSecrets:
    """An epoch-secret lookup holding exactly `epochs`."""
    held = {e: keys.epoch_secret(root, e) for e in epochs}
    return held.get


def _keys(epoch: int = EPOCH, template: bytes = TEMPLATE) -> keys.TemplateKeys:
    return keys.template_keys(keys.epoch_secret(ROOT, epoch), template)


def _hkdf_by_hand(ikm: bytes, info: bytes) -> bytes:
    """RFC 5869 HKDF-SHA256 with no salt, 32 bytes, from hmac alone: an independent check of the labels."""
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _labeled_extract(salt: bytes, suite_id: bytes, label: bytes, ikm: bytes) -> bytes:
    """RFC 9180 LabeledExtract with HKDF-SHA256."""
    return hmac.new(salt or bytes(32), b"HPKE-v1" + suite_id + label + ikm, hashlib.sha256).digest()


def _labeled_expand(prk: bytes, suite_id: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """RFC 9180 LabeledExpand with HKDF-SHA256, for at most one block."""
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return hmac.new(prk, labeled + b"\x01", hashlib.sha256).digest()[:length]


def _hpke_context(dh: bytes, enc: bytes, pk_r: bytes, info: bytes, aead_id: int) -> tuple[bytes, bytes, bytes]:
    """(shared_secret, key, base_nonce) of DHKEM(X25519, HKDF-SHA256) + HKDF-SHA256 base mode, from the RFC's text."""
    kem_suite = b"KEM" + (0x20).to_bytes(2, "big")
    eae_prk = _labeled_extract(b"", kem_suite, b"eae_prk", dh)
    shared_secret = _labeled_expand(eae_prk, kem_suite, b"shared_secret", enc + pk_r, 32)
    suite = b"HPKE" + (0x20).to_bytes(2, "big") + (1).to_bytes(2, "big") + aead_id.to_bytes(2, "big")
    context = b"\x00" + _labeled_extract(b"", suite, b"psk_id_hash", b"") + _labeled_extract(b"", suite, b"info_hash", info)
    secret = _labeled_extract(shared_secret, suite, b"secret", b"")
    key_length = {AES_128_GCM: 16, AES_256_GCM: 32}[aead_id]
    return (
        shared_secret,
        _labeled_expand(secret, suite, b"key", context, key_length),
        _labeled_expand(secret, suite, b"base_nonce", context, 12),
    )


# ---------------------------------------------------------------------------- derivation


def test_newRoot_fresh_32RandomBytes() -> None:
    first, second = keys.new_root(), keys.new_root()
    assert len(first) == len(second) == 32 and first != second


def test_epochSecret_sameInputs_deterministic() -> None:
    assert keys.epoch_secret(ROOT, EPOCH) == keys.epoch_secret(bytes(ROOT), EPOCH)


def test_epochSecret_documentedLabel_matchesHandHkdf() -> None:
    assert keys.epoch_secret(ROOT, EPOCH) == _hkdf_by_hand(ROOT, b"coprocessor/v1/epoch" + EPOCH.to_bytes(8, "big"))


def test_epochSecret_otherEpochOrRoot_differs() -> None:
    secrets = {keys.epoch_secret(ROOT, 0), keys.epoch_secret(ROOT, 1), keys.epoch_secret(ROOT, 2**64 - 1), keys.epoch_secret(b"\1" * 32, 0)}
    assert len(secrets) == 4


@pytest.mark.parametrize(("root", "epoch"), [(b"short", 0), (ROOT, -1), (ROOT, 2**64)])
def test_epochSecret_badArguments_refused(root: bytes, epoch: int) -> None:
    with pytest.raises(ValueError, match="cluster root must be 32 bytes|epoch must be in"):
        keys.epoch_secret(root, epoch)


def test_templateKeys_documentedLabels_matchHandHkdf() -> None:
    epoch = keys.epoch_secret(ROOT, EPOCH)
    derived = keys.template_keys(epoch, TEMPLATE)
    input_private = _hkdf_by_hand(epoch, b"coprocessor/v1/input" + TEMPLATE)
    secrets_private = _hkdf_by_hand(epoch, b"coprocessor/v1/secrets" + TEMPLATE)
    assert derived.input_public == X25519PrivateKey.from_private_bytes(input_private).public_key().public_bytes_raw()
    assert derived.secrets_public == X25519PrivateKey.from_private_bytes(secrets_private).public_key().public_bytes_raw()
    assert derived.random_seed == _hkdf_by_hand(epoch, b"coprocessor/v1/random" + TEMPLATE)


def test_templateKeys_oneTemplate_labelsSeparateKeys() -> None:
    derived = _keys()
    assert derived.input_public != derived.secrets_public
    assert len(derived.input_public) == len(derived.secrets_public) == len(derived.random_seed) == 32
    assert derived.random_seed not in (derived.input_key.private_bytes_raw(), derived.secrets_key.private_bytes_raw())


def test_templateKeys_otherTemplateOrEpoch_differs() -> None:
    publics = {k.input_public for k in (_keys(), _keys(template=OTHER_TEMPLATE), _keys(epoch=EPOCH + 1))}
    seeds = {k.random_seed for k in (_keys(), _keys(template=OTHER_TEMPLATE), _keys(epoch=EPOCH + 1))}
    assert len(publics) == len(seeds) == 3
    assert _keys().input_public == _keys().input_public


def test_templateKeys_repr_showsNoKeyMaterial() -> None:
    derived = _keys()
    assert derived.random_seed.hex() not in repr(derived) and "random_seed" not in repr(derived)


def test_templateKeys_shortTemplateId_refused() -> None:
    with pytest.raises(ValueError, match="template id must be 32 bytes"):
        keys.template_keys(keys.epoch_secret(ROOT, 0), b"\0" * 31)


# ---------------------------------------------------------------------------- HPKE


def test_seal_roundTrip_opensWithInfo() -> None:
    private = X25519PrivateKey.generate()
    sealed = keys.seal(keys.public_bytes(private), b"hello", b"info")
    assert len(sealed) == 32 + 5 + 16
    assert keys.unseal(private, sealed, b"info") == b"hello"
    assert keys.seal(keys.public_bytes(private), b"hello", b"info") != sealed  # a fresh ephemeral key each time


def test_unseal_otherInfoOrKey_fails() -> None:
    private = X25519PrivateKey.generate()
    sealed = keys.seal(keys.public_bytes(private), b"hello", b"info")
    with pytest.raises(DecryptionFailed):
        keys.unseal(private, sealed, b"infO")
    with pytest.raises(DecryptionFailed):
        keys.unseal(X25519PrivateKey.generate(), sealed, b"info")


def test_seal_lowOrderPublicKey_refused() -> None:
    with pytest.raises(ValueError, match="low-order"):
        keys.seal(bytes(32), b"x", b"")


def test_hpkeByHand_rfc9180VectorA1_reproduced() -> None:
    """The key schedule written out in this file gives the RFC's shared secret, key and nonce, and opens its ciphertext."""
    dh = X25519PrivateKey.from_private_bytes(A1_SK_R).exchange(X25519PublicKey.from_public_bytes(A1_ENC))
    assert X25519PrivateKey.from_private_bytes(A1_SK_E).public_key().public_bytes_raw() == A1_ENC
    assert X25519PrivateKey.from_private_bytes(A1_SK_R).public_key().public_bytes_raw() == A1_PK_R
    assert _hpke_context(dh, A1_ENC, A1_PK_R, A1_INFO, AES_128_GCM) == (A1_SHARED_SECRET, A1_KEY, A1_BASE_NONCE)
    assert AESGCM(A1_KEY).decrypt(A1_BASE_NONCE, A1_CT, A1_AAD) == A1_PT


def test_unseal_sealedByHandWithOurSuite_opens() -> None:
    """Sender side by hand (the RFC's ephemeral key, AES-256-GCM, empty aad as in single-shot): `unseal` opens it."""
    info = keys.INPUT_INFO + b"binding"
    dh = X25519PrivateKey.from_private_bytes(A1_SK_E).exchange(X25519PublicKey.from_public_bytes(A1_PK_R))
    _, key, nonce = _hpke_context(dh, A1_ENC, A1_PK_R, info, AES_256_GCM)
    sealed = A1_ENC + AESGCM(key).encrypt(nonce, A1_PT, b"")
    assert keys.unseal(X25519PrivateKey.from_private_bytes(A1_SK_R), sealed, info) == A1_PT
    _, key16, nonce16 = _hpke_context(dh, A1_ENC, A1_PK_R, info, AES_128_GCM)
    with pytest.raises(DecryptionFailed):  # sealed under the AES-128-GCM suite id instead: refused
        keys.unseal(X25519PrivateKey.from_private_bytes(A1_SK_R), A1_ENC + AESGCM(key16).encrypt(nonce16, A1_PT, b""), info)


def test_seal_output_opensByHand() -> None:
    """Receiver side by hand: what `seal` produces is RFC 9180 base mode with our suite."""
    sealed = keys.seal(A1_PK_R, b"interop", b"some info")
    enc, ciphertext = sealed[:32], sealed[32:]
    dh = X25519PrivateKey.from_private_bytes(A1_SK_R).exchange(X25519PublicKey.from_public_bytes(enc))
    _, key, nonce = _hpke_context(dh, enc, A1_PK_R, b"some info", AES_256_GCM)
    assert AESGCM(key).decrypt(nonce, ciphertext, b"") == b"interop"


# ---------------------------------------------------------------------------- encrypted inputs


def test_encryptInput_roundTrip_decryptsInsideTheEpoch() -> None:
    envelope = _encrypt(b"secret bid: 42")
    assert envelope[0] == 1 and int.from_bytes(envelope[1:9], "big") == EPOCH
    assert len(envelope) == keys.MIN_ENVELOPE_BYTES + len(b"secret bid: 42")
    assert _decrypt(_secrets_for(EPOCH), envelope) == b"secret bid: 42"


def test_encryptInput_emptyPlaintext_roundTrip() -> None:
    envelope = _encrypt(b"")
    assert len(envelope) == keys.MIN_ENVELOPE_BYTES
    assert _decrypt(_secrets_for(EPOCH), envelope) == b""


@pytest.mark.parametrize(
    "binding",
    [Binding(template_id=OTHER_TEMPLATE), Binding(consumer="0x" + "33" * 20), Binding(chain_id=1), Binding(coprocessor="0x" + "44" * 20)],
    ids=["template", "consumer", "chain", "coprocessor"],
)
def test_decryptInput_otherBinding_fails(binding: Binding) -> None:
    envelope = _encrypt(b"bid")
    with pytest.raises(DecryptionFailed, match="not for this chain, Coprocessor, consumer and template"):
        _decrypt(_secrets_for(EPOCH), envelope, at=binding)


def test_decryptInput_otherTemplatesKeyWithItsId_fails() -> None:
    """Sealed to another template's key but naming ours: the enclave uses our key, and it does not open."""
    envelope = _encrypt(b"bid", _keys(template=OTHER_TEMPLATE).input_public)
    with pytest.raises(DecryptionFailed, match="does not open"):
        _decrypt(_secrets_for(EPOCH), envelope)


def test_decryptInput_headerEpochRewritten_fails() -> None:
    envelope = _encrypt(b"bid")
    rewritten = envelope[:1] + (EPOCH + 1).to_bytes(8, "big") + envelope[9:]
    with pytest.raises(DecryptionFailed, match=f"input key for epoch {EPOCH + 1}"):
        _decrypt(_secrets_for(EPOCH, EPOCH + 1), rewritten)


def test_decryptInput_sealedToAnotherEpochsKey_fails() -> None:
    envelope = _encrypt(b"bid", _keys(epoch=EPOCH + 1).input_public)
    with pytest.raises(DecryptionFailed, match="does not open"):
        _decrypt(_secrets_for(EPOCH, EPOCH + 1), envelope)


def test_decryptInput_epochNotHeld_clearReason() -> None:
    envelope = _encrypt(b"bid")
    with pytest.raises(DecryptionFailed, match=f"no key for epoch {EPOCH}: unknown, or past its grace window"):
        _decrypt(_secrets_for(EPOCH + 1), envelope)


def test_decryptInput_otherRoot_fails() -> None:
    envelope = _encrypt(b"bid")
    with pytest.raises(DecryptionFailed, match="does not open"):
        _decrypt(_secrets_for(EPOCH, root=b"\7" * 32), envelope)


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (b"", "is 0 bytes; an envelope has at least 57"),
        (b"\x01" + bytes(55), "is 56 bytes; an envelope has at least 57"),
        (b"\x01" + bytes(64 * 1024), "is 65537 bytes; at most 65536"),
        (b"\x02" + bytes(100), "envelope version 2; this enclave reads version 1"),
        (b"\x01" + EPOCH.to_bytes(8, "big") + bytes(range(200)), "does not open"),
    ],
    ids=["empty", "truncated", "oversized", "version", "garbage"],
)
def test_decryptInput_malformedEnvelope_clearReason(envelope: bytes, reason: str) -> None:
    with pytest.raises(DecryptionFailed, match=reason) as raised:
        _decrypt(_secrets_for(EPOCH), envelope)
    assert isinstance(raised.value, CoprocessorError) and isinstance(raised.value, ValueError)


def test_decryptInput_truncatedRealEnvelope_fails() -> None:
    envelope = _encrypt(b"a longer bid")
    for cut in (1, 16, len(envelope) - keys.MIN_ENVELOPE_BYTES):
        with pytest.raises(DecryptionFailed):
            _decrypt(_secrets_for(EPOCH), envelope[:-cut])


def test_encryptInput_oversizedPlaintext_refused() -> None:
    with pytest.raises(ValueError, match="at most 65536"):
        _encrypt(bytes(64 * 1024))


def test_encryptInput_badAddress_refused() -> None:
    with pytest.raises(ValueError, match="not an address"):
        _encrypt(b"bid", to=Binding(consumer="0x1234"))


# ---------------------------------------------------------------------------- encrypted secrets


def test_encryptSecret_roundTrip_decryptsByName() -> None:
    envelope = keys.encrypt_secret(_keys().secrets_public, EPOCH, "OPENAI_API_KEY", b"sk-123", CHAIN, TEMPLATE)
    assert keys.decrypt_secret(_secrets_for(EPOCH), envelope, "OPENAI_API_KEY", CHAIN, TEMPLATE) == b"sk-123"


@pytest.mark.parametrize(
    ("name", "chain_id", "template_id"),
    [("OTHER_KEY", CHAIN, TEMPLATE), ("OPENAI_API_KEY", 1, TEMPLATE), ("OPENAI_API_KEY", CHAIN, OTHER_TEMPLATE)],
    ids=["name", "chain", "template"],
)
def test_decryptSecret_otherBinding_fails(name: str, chain_id: int, template_id: bytes) -> None:
    envelope = keys.encrypt_secret(_keys().secrets_public, EPOCH, "OPENAI_API_KEY", b"sk-123", CHAIN, TEMPLATE)
    with pytest.raises(DecryptionFailed, match="sealed for another name, template or chain"):
        keys.decrypt_secret(_secrets_for(EPOCH), envelope, name, chain_id, template_id)


def test_decryptSecret_inputKeyCiphertext_fails() -> None:
    """A secret sealed to the input key (published too) does not open with the secrets key."""
    envelope = keys.encrypt_secret(_keys().input_public, EPOCH, "OPENAI_API_KEY", b"sk-123", CHAIN, TEMPLATE)
    with pytest.raises(DecryptionFailed, match="does not open"):
        keys.decrypt_secret(_secrets_for(EPOCH), envelope, "OPENAI_API_KEY", CHAIN, TEMPLATE)


def test_decryptInput_secretEnvelope_fails() -> None:
    """An input envelope and a secret envelope use separate keys and labels: neither opens as the other."""
    secret = keys.encrypt_secret(_keys().secrets_public, EPOCH, "OPENAI_API_KEY", b"sk-123", CHAIN, TEMPLATE)
    with pytest.raises(DecryptionFailed):
        _decrypt(_secrets_for(EPOCH), secret)


def test_encryptSecret_emptyName_refused() -> None:
    with pytest.raises(ValueError, match="secret's name must be 1 to 255 bytes"):
        keys.encrypt_secret(_keys().secrets_public, EPOCH, "", b"v", CHAIN, TEMPLATE)


# ---------------------------------------------------------------------------- the sealed root


def test_sealRoot_roundTrip_rootAndEpoch() -> None:
    ephemeral = X25519PrivateKey.generate()
    sealed = keys.seal_root(keys.public_bytes(ephemeral), ROOT, EPOCH, b"b" * 32)
    assert keys.open_root(ephemeral, sealed, b"b" * 32) == (ROOT, EPOCH)


def test_openRoot_otherBindingOrKey_fails() -> None:
    ephemeral = X25519PrivateKey.generate()
    sealed = keys.seal_root(keys.public_bytes(ephemeral), ROOT, EPOCH, b"b" * 32)
    with pytest.raises(DecryptionFailed, match="sealed root does not open"):
        keys.open_root(ephemeral, sealed, b"c" * 32)
    with pytest.raises(DecryptionFailed, match="sealed root does not open"):
        keys.open_root(X25519PrivateKey.generate(), sealed, b"b" * 32)


def test_openRoot_epochRewritten_fails() -> None:
    ephemeral = X25519PrivateKey.generate()
    sealed = keys.seal_root(keys.public_bytes(ephemeral), ROOT, EPOCH, b"b" * 32)
    with pytest.raises(DecryptionFailed):
        keys.open_root(ephemeral, sealed[:1] + (EPOCH - 1).to_bytes(8, "big") + sealed[9:], b"b" * 32)


def test_sealRoot_shortRoot_refused() -> None:
    with pytest.raises(ValueError, match="cluster root must be 32 bytes"):
        keys.seal_root(keys.public_bytes(X25519PrivateKey.generate()), b"\0" * 16, EPOCH, b"")
