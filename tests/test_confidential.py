"""Cluster keys in real enclaves (in this process, DEV backend): genesis, an attested join, encrypted
inputs opened only for their template, consumer, Coprocessor and chain, secrets sealed to a template,
and rotation with its grace window."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi import decode

from coprocessor_enclave import keys
from coprocessor_enclave.abicodec import keccak
from coprocessor_enclave.attestation import DevBackend
from coprocessor_enclave.enclave import Enclave, EnclaveConfig
from coprocessor_enclave.errors import AttestationError, EnclaveError, EnclaveUnreachable
from coprocessor_enclave.protocol import Request, Status
from coprocessor_enclave.template import encode_args, find_template, load_templates

from .conftest import TEST_TEMPLATES

CHAIN, COPROCESSOR, REGISTRY, PAYEE = 31337, "0x" + "00" * 19 + "01", "0x" + "00" * 19 + "02", "0x" + "00" * 19 + "03"
CONSUMER = "0x" + "44" * 20


def _enclave(pki: Path, grace: float = 3600.0) -> Enclave:
    config = EnclaveConfig(CHAIN, COPROCESSOR, REGISTRY, PAYEE, key_grace_seconds=grace)
    return Enclave(config, load_templates([TEST_TEMPLATES]), DevBackend(pki))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dev PKI for the module's enclaves: a dev cluster trusts its root."""
    return tmp_path_factory.mktemp("cluster") / "pki"


@pytest.fixture(scope="module")
def pair(pki: Path) -> Iterator[tuple[Enclave, Enclave]]:
    """Two enclaves of one dev PKI: the first makes the cluster's keys, the second has joined it."""
    holder, newcomer = _enclave(pki), _enclave(pki)
    try:
        holder.keys_genesis()
        _join(newcomer, holder)
        yield holder, newcomer
    finally:
        holder.close()
        newcomer.close()


def _join(newcomer: Enclave, holder: Enclave) -> int:
    nonce = holder.join_nonce()
    return newcomer.accept(*holder.grant(newcomer.join_request(nonce), nonce))


def _request(template_id: bytes, data: bytes, consumer: str = CONSUMER, n: int = 1) -> Request:
    return Request(n.to_bytes(32, "big"), consumer, template_id, keccak(data), 100_000, 0, 2**40, 0, b"\x00" * 32)


def _sealed_sum(enclave: Enclave, values: list[int], consumer: str = CONSUMER, chain: int = CHAIN) -> tuple[bytes, bytes]:
    template = find_template(enclave.templates, "sealed-sum")
    epoch, input_key, _, _ = enclave.template_keys(template.template_id)
    plaintext = encode_args(template, [values])
    return template.template_id, keys.encrypt_input(input_key, epoch, plaintext, chain, COPROCESSOR, consumer, template.template_id)


def test_join_newcomer_derivesTheHoldersTemplateKeys(pair: tuple[Enclave, Enclave]) -> None:
    holder, newcomer = pair
    template_id = find_template(holder.templates, "sealed-sum").template_id
    assert holder.template_keys(template_id)[:3] == newcomer.template_keys(template_id)[:3]
    assert holder.template_keys(template_id)[3] != newcomer.template_keys(template_id)[3], "each signs with its own key"


def test_run_encryptedInput_anyEnclaveOfTheClusterOpensIt(pair: tuple[Enclave, Enclave]) -> None:
    holder, newcomer = pair
    template_id, sealed = _sealed_sum(holder, [30, 12])
    for enclave in pair:
        result = enclave.run(_request(template_id, sealed, n=7), sealed)
        assert result.status == Status.OK, result.output
        assert decode(["uint256"], result.output) == (42,)


@pytest.mark.parametrize("where", ["consumer", "chain", "template"])
def test_run_inputSealedForAnotherBinding_signedInvalidInput(pair: tuple[Enclave, Enclave], where: str) -> None:
    holder, _ = pair
    other = "0x" + "55" * 20
    template_id, sealed = _sealed_sum(
        holder, [1, 2], consumer=other if where == "consumer" else CONSUMER, chain=1 if where == "chain" else CHAIN
    )
    if where == "template":  # sealed for sealed-sum, replayed to another template taking encrypted input: the id is bound
        sealed = keys.encrypt_input(holder.template_keys(template_id)[1], 1, b"\x00" * 32, CHAIN, COPROCESSOR, CONSUMER, b"\x09" * 32)
    result = holder.run(_request(template_id, sealed), sealed)
    assert result.status == Status.INVALID_INPUT
    assert b"encrypted input" in result.output


def test_run_inputSealedToAForwardingContract_signedInvalidInputNeverOpened(pki: Path) -> None:
    forwarder = "0x" + "66" * 20  # a Subscriptions or Sponsorships: it requests for everyone who uses it
    config = EnclaveConfig(CHAIN, COPROCESSOR, REGISTRY, PAYEE, forwarders=((CHAIN, forwarder),))
    enclave = Enclave(config, load_templates([TEST_TEMPLATES]), DevBackend(pki))
    try:
        enclave.keys_genesis()
        template_id, sealed = _sealed_sum(enclave, [1, 2], consumer=forwarder)
        result = enclave.run(_request(template_id, sealed, consumer=forwarder, n=99), sealed)
        assert result.status == Status.INVALID_INPUT
        assert b"requests for others" in result.output
        template_id, sealed = _sealed_sum(enclave, [1, 2])  # sealed to its own consumer: opened as ever
        assert enclave.run(_request(template_id, sealed, n=100), sealed).status == Status.OK
    finally:
        enclave.close()


def test_run_plainInputToAnEncryptedTemplate_signedInvalidInput(pair: tuple[Enclave, Enclave]) -> None:
    holder, _ = pair
    template = find_template(holder.templates, "sealed-sum")
    plain = encode_args(template, [[1, 2]])
    assert holder.run(_request(template.template_id, plain), plain).status == Status.INVALID_INPUT


def test_grant_nonceIsSpentOnceAndAnUnknownOneRefused(pki: Path, pair: tuple[Enclave, Enclave]) -> None:
    holder, _ = pair
    newcomer = _enclave(pki)
    try:
        nonce = holder.join_nonce()
        request = newcomer.join_request(nonce)
        holder.grant(request, nonce)
        with pytest.raises(EnclaveError, match="unknown or expired join nonce"):
            holder.grant(request, nonce)
        with pytest.raises(EnclaveError, match="unknown or expired join nonce"):
            holder.grant(request, b"\x01" * 32)
    finally:
        newcomer.close()


def test_grant_reportDataNotBindingTheEphemeralKey_refused(pki: Path, pair: tuple[Enclave, Enclave]) -> None:
    holder, _ = pair
    newcomer = _enclave(pki)
    try:
        nonce = holder.join_nonce()
        request = newcomer.join_request(nonce)
        swapped = type(request)(request.evidence, bytes(32))  # the node relaying it swaps in a key of its own
        with pytest.raises(AttestationError, match="report data does not bind"):
            holder.grant(swapped, nonce)
    finally:
        newcomer.close()


def test_grant_measurementNotOnTheAllowlist_refused(pki: Path) -> None:
    # The holder's own image is what it allows; a holder told its image is another's shows the refusal.
    holder = _enclave(pki)
    newcomer = _enclave(pki)
    try:
        holder.keys_genesis()
        holder.backend._image_id = b"\x07" * 32  # type: ignore[attr-defined]  # noqa: SLF001 - a holder of another build
        nonce = holder.join_nonce()
        with pytest.raises(AttestationError, match="not on the allowlist"):
            holder.grant(newcomer.join_request(nonce), nonce)
    finally:
        holder.close()
        newcomer.close()


def test_putSealedSecret_templateReadsAValueNoOperatorHeld(pair: tuple[Enclave, Enclave]) -> None:
    holder, newcomer = pair
    template = find_template(holder.templates, "secret-digest")
    epoch, _, secrets_key, _ = holder.template_keys(template.template_id)
    value = b"token-only-the-owner-knows"
    sealed = keys.encrypt_secret(secrets_key, epoch, "API_TOKEN", value, CHAIN, template.template_id)
    with pytest.raises(Exception, match="does not open"):
        newcomer.put_sealed_secret(template.template_id, "API_TOKEN", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    newcomer.put_sealed_secret(template.template_id, "API_TOKEN", sealed)
    data = encode_args(template, [1])
    result = newcomer.run(_request(template.template_id, data), data)
    assert result.status == Status.OK, result.output
    assert result.output == hashlib.sha256(value).digest()


def test_rotateEpoch_oldEpochOpensInTheGraceWindowAndANewcomerMustJoinAgain(pki: Path) -> None:
    holder, member = _enclave(pki, grace=3600.0), _enclave(pki)
    try:
        holder.keys_genesis()
        _join(member, holder)
        template_id, before = _sealed_sum(holder, [5, 5])
        assert holder.rotate_epoch() == 2
        assert holder.run(_request(template_id, before), before).status == Status.OK, "epoch 1 still opens in the grace window"
        _, after = _sealed_sum(holder, [7, 7])
        with pytest.raises(EnclaveUnreachable, match="does not hold key epoch 2"):  # retried, not signed: another may hold it
            member.run(_request(template_id, after), after)
        assert _join(member, holder) == 2
        assert member.run(_request(template_id, after), after).status == Status.OK
        holder.keyring._epochs[1] = holder.keyring._epochs[1].__class__(1, holder.keyring._epochs[1].root, 0.0)  # noqa: SLF001 - grace over
        assert holder.run(_request(template_id, before), before).status == Status.INVALID_INPUT, "a retired epoch opens nothing"
    finally:
        holder.close()
        member.close()


def test_quote_encryptedInputTemplate_refused(pair: tuple[Enclave, Enclave]) -> None:
    holder, _ = pair
    template_id, sealed = _sealed_sum(holder, [1])
    with pytest.raises(EnclaveError, match="takes encrypted inputs"):
        holder.quote(template_id, sealed, CONSUMER, int(time.time()) + 60)


def test_run_sealedInputUnderAnotherRequest_refusedUnsigned(pair: tuple[Enclave, Enclave]) -> None:
    holder, _ = pair
    template_id, sealed = _sealed_sum(holder, [3, 4])
    assert holder.run(_request(template_id, sealed, n=11), sealed).status == Status.OK
    assert holder.run(_request(template_id, sealed, n=11), sealed).status == Status.OK, "the same request again (a retry) runs"
    with pytest.raises(EnclaveError, match="already run for another request"):  # the node inventing requests around it
        holder.run(_request(template_id, sealed, n=12), sealed)


def test_accept_grantNotFromAnAttestedMember_refused(pki: Path, pair: tuple[Enclave, Enclave]) -> None:
    holder, _ = pair
    newcomer = _enclave(pki)
    try:
        nonce = holder.join_nonce()
        request = newcomer.join_request(nonce)
        sealed, evidence = holder.grant(request, nonce)
        binding = newcomer.cluster.binding(nonce, request.ephemeral_public)
        # The relaying node seals a root of its own choosing to the newcomer's ephemeral key (all of it public).
        forged = [(keys.seal_root(request.ephemeral_public, b"\x66" * 32, 2**63, binding), None)]
        with pytest.raises(AttestationError, match="report data does not bind"):
            newcomer.accept(forged, evidence)
        assert newcomer.keyring.current is None
    finally:
        newcomer.close()


def test_accept_retirementTimesChangedInTransit_refused(pki: Path, pair: tuple[Enclave, Enclave]) -> None:
    holder, _ = pair
    newcomer = _enclave(pki)
    try:
        nonce = holder.join_nonce()
        sealed, evidence = holder.grant(newcomer.join_request(nonce), nonce)
        with pytest.raises(AttestationError, match="report data does not bind"):
            newcomer.accept([(envelope, 0.0) for envelope, _ in sealed], evidence)  # every epoch retired at once
    finally:
        newcomer.close()


def test_putSealedSecret_enclaveWithoutTheEpoch_askedAgainLater(pki: Path, pair: tuple[Enclave, Enclave]) -> None:
    holder, _ = pair
    template = find_template(holder.templates, "secret-digest")
    epoch, _, secrets_key, _ = holder.template_keys(template.template_id)
    sealed = keys.encrypt_secret(secrets_key, epoch, "API_TOKEN", b"v", CHAIN, template.template_id)
    restarted = _enclave(pki)  # keys live in memory: a restarted enclave holds none until it joins again
    try:
        with pytest.raises(EnclaveUnreachable, match="does not hold key epoch"):
            restarted.put_sealed_secret(template.template_id, "API_TOKEN", sealed)
        _join(restarted, holder)
        restarted.put_sealed_secret(template.template_id, "API_TOKEN", sealed)
    finally:
        restarted.close()
