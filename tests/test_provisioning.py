"""Provisioning the cluster root: dev-PKI and Intel DCAP quotes through the attestor's checks, refusals, and the sealed root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coprocessor.attest import attestor
from coprocessor.attest.attestor import Claim, Policy, verify_evidence
from coprocessor_enclave import dcap, keys
from coprocessor_enclave.attestation import DevBackend, Evidence, dev_image_id, pad_report_data
from coprocessor_enclave.dcap import QuotePolicy, verify_bound_evidence
from coprocessor_enclave.devpki import DevPki
from coprocessor_enclave.errors import AttestationError
from coprocessor_enclave.protocol import TeeType
from coprocessor_enclave.provisioning import Cluster, JoinRequest, Newcomer, check_newcomer, new_nonce, provision
from tests.dstack_agent import DCAP_DATA

DEV_CLUSTER = Cluster(chain_id=31337, registry="0x" + "33" * 20, production=False)
PRODUCTION_CLUSTER = Cluster(chain_id=31337, registry="0x" + "33" * 20, production=True)
ROOT = bytes(range(32))
EPOCH = 5
HEADER = 48
REPORT_DATA_AT = HEADER + 520  # TD10 body: report_data is its last 64 bytes
MR_TD_AT = HEADER + 136
SIGNATURE_AT = HEADER + 584 + 4  # after the u32 signature-data length
TDX_NOW = 1750329147 + 3600  # inside the Intel fixture's collateral window (see test_attestation.py)
BINDS = r"report data does not bind \(ephemeral key, nonce, chain id, registry, cluster kind\)"


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def backend(pki_dir: Path) -> DevBackend:
    return DevBackend(pki_dir)


@pytest.fixture(scope="module")
def policy(pki_dir: Path) -> QuotePolicy:
    return QuotePolicy(frozenset({dev_image_id()}), dev_root_ca_der=DevPki.load_or_create(pki_dir).root_ca_der)


def _join(backend: DevBackend, cluster: Cluster = DEV_CLUSTER) -> tuple[Newcomer, JoinRequest, bytes]:
    """A newcomer for a fresh nonce, and its join request from the dev backend."""
    nonce = new_nonce()
    newcomer = Newcomer(cluster, nonce)
    return newcomer, newcomer.join_request(backend), nonce


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# ---------------------------------------------------------------------------- accepted


def test_provision_goodDevQuote_newcomerOpensRoot(backend: DevBackend, policy: QuotePolicy) -> None:
    newcomer, request, nonce = _join(backend)
    verdict = check_newcomer(request, nonce, DEV_CLUSTER, policy)
    assert (verdict.tee_type, verdict.image_id, verdict.status) == (TeeType.DEV, dev_image_id(), "UpToDate")
    sealed = provision(ROOT, EPOCH, request, nonce, DEV_CLUSTER, policy)
    assert newcomer.open_root(sealed) == (ROOT, EPOCH)
    assert ROOT not in sealed


def test_newcomer_reportData_bindsDocumentedEncoding(backend: DevBackend) -> None:
    import hashlib

    newcomer, request, nonce = _join(backend)
    expected = hashlib.sha256(
        b"coprocessor/v1/provision" + (31337).to_bytes(32, "big") + b"\x33" * 20 + nonce + newcomer.public_key + b"\x00"
    ).digest()
    assert newcomer.binding == expected and newcomer.report_data() == expected + bytes(32)
    assert request.evidence.quote[REPORT_DATA_AT : REPORT_DATA_AT + 64] == newcomer.report_data()
    assert Cluster(31337, DEV_CLUSTER.registry, production=True).binding(nonce, newcomer.public_key) != expected


def test_openRoot_otherNewcomer_fails(backend: DevBackend, policy: QuotePolicy) -> None:
    """The relaying node, or another newcomer with the same nonce, cannot open what was sealed for this one."""
    _, request, nonce = _join(backend)
    sealed = provision(ROOT, EPOCH, request, nonce, DEV_CLUSTER, policy)
    with pytest.raises(keys.DecryptionFailed, match="sealed root does not open"):
        Newcomer(DEV_CLUSTER, nonce).open_root(sealed)


# ---------------------------------------------------------------------------- refused


def test_checkNewcomer_measurementNotAllowlisted_refused(backend: DevBackend, policy: QuotePolicy) -> None:
    _, request, nonce = _join(backend)
    other = QuotePolicy(frozenset({b"\x01" * 32}), dev_root_ca_der=policy.dev_root_ca_der)
    with pytest.raises(AttestationError, match=f"measurement 0x{dev_image_id().hex()} is not on the allowlist"):
        provision(ROOT, EPOCH, request, nonce, DEV_CLUSTER, other)


@pytest.mark.parametrize("at", [REPORT_DATA_AT, MR_TD_AT, SIGNATURE_AT], ids=["reportData", "mrTd", "signature"])
def test_checkNewcomer_tamperedQuote_refused(backend: DevBackend, policy: QuotePolicy, at: int) -> None:
    _, request, nonce = _join(backend)
    evidence = request.evidence
    tampered = JoinRequest(
        Evidence(evidence.backend, _flip(evidence.quote, at), evidence.event_log, evidence.collateral), request.ephemeral_public
    )
    with pytest.raises(AttestationError, match="quote verification failed: .*signature is invalid"):
        provision(ROOT, EPOCH, tampered, nonce, DEV_CLUSTER, policy)


def test_checkNewcomer_truncatedQuote_refused(backend: DevBackend, policy: QuotePolicy) -> None:
    _, request, nonce = _join(backend)
    truncated = JoinRequest(Evidence("dev", request.evidence.quote[:100], [], request.evidence.collateral), request.ephemeral_public)
    with pytest.raises(AttestationError, match="quote does not parse"):
        check_newcomer(truncated, nonce, DEV_CLUSTER, policy)


def test_checkNewcomer_ephemeralKeySwapped_refused(backend: DevBackend, policy: QuotePolicy) -> None:
    """The node relays a genuine quote but substitutes its own key, to have the root sealed to itself."""
    _, request, nonce = _join(backend)
    swapped = JoinRequest(request.evidence, Newcomer(DEV_CLUSTER, nonce).public_key)
    with pytest.raises(AttestationError, match=BINDS):
        provision(ROOT, EPOCH, swapped, nonce, DEV_CLUSTER, policy)


@pytest.mark.parametrize(
    "cluster",
    [Cluster(1, DEV_CLUSTER.registry, False), Cluster(31337, "0x" + "44" * 20, False)],
    ids=["otherChain", "otherRegistry"],
)
def test_checkNewcomer_otherNonceOrCluster_refused(backend: DevBackend, policy: QuotePolicy, cluster: Cluster) -> None:
    _, request, nonce = _join(backend)
    with pytest.raises(AttestationError, match=BINDS):
        check_newcomer(request, new_nonce(), DEV_CLUSTER, policy)  # a replayed request, under a fresh nonce
    with pytest.raises(AttestationError, match=BINDS):
        check_newcomer(request, nonce, cluster, policy)


def test_checkNewcomer_registrationQuote_refused(backend: DevBackend, policy: QuotePolicy) -> None:
    """A quote made to register a signing key cannot be replayed to join: the report data differs in kind."""
    _, request, nonce = _join(backend)
    claim = Claim("0x" + "11" * 20, "0x" + "22" * 20, DEV_CLUSTER.chain_id, DEV_CLUSTER.registry, nonce)
    registration = JoinRequest(backend.attest(claim.report_data()[:32]), request.ephemeral_public)
    with pytest.raises(AttestationError, match=BINDS):
        check_newcomer(registration, nonce, DEV_CLUSTER, policy)


def test_checkNewcomer_devQuoteForProductionCluster_refused(backend: DevBackend) -> None:
    """A DEV enclave asking a production cluster, even binding the production kind in its report data."""
    _, request, nonce = _join(backend, PRODUCTION_CLUSTER)
    with pytest.raises(AttestationError, match="DEV quote: a development enclave never joins a production cluster"):
        provision(ROOT, EPOCH, request, nonce, PRODUCTION_CLUSTER, QuotePolicy(frozenset({dev_image_id()})))


def test_checkNewcomer_productionClusterTrustingDevRoot_refused(backend: DevBackend, policy: QuotePolicy) -> None:
    _, request, nonce = _join(backend, PRODUCTION_CLUSTER)
    with pytest.raises(AttestationError, match="a production cluster never trusts a development root"):
        check_newcomer(request, nonce, PRODUCTION_CLUSTER, policy)


def test_checkNewcomer_devQuoteOtherDevRoot_refused(backend: DevBackend) -> None:
    _, request, nonce = _join(backend)
    other = QuotePolicy(frozenset({dev_image_id()}), dev_root_ca_der=DevPki.generate().root_ca_der)
    with pytest.raises(AttestationError, match="development PKI other than the configured dev root"):
        check_newcomer(request, nonce, DEV_CLUSTER, other)


def test_checkNewcomer_intelQuote_sameChecksAsAttestor() -> None:
    """Intel's real TDX quote passes dcap-qvl in a production cluster, then is refused: it measures no app."""
    quote = (DCAP_DATA / "tdx_quote").read_bytes()
    collateral = json.loads((DCAP_DATA / "tdx_quote_collateral.json").read_text())
    request = JoinRequest(Evidence("dstack", quote, []), bytes(32))
    policy = QuotePolicy(frozenset(), now=TDX_NOW)
    with pytest.raises(AttestationError, match="no collateral"):  # the sender's collateral is never used for Intel quotes
        check_newcomer(JoinRequest(Evidence("dstack", quote, [], collateral), bytes(32)), new_nonce(), PRODUCTION_CLUSTER, policy)
    with pytest.raises(AttestationError, match="compose-hash"):
        check_newcomer(request, new_nonce(), PRODUCTION_CLUSTER, policy, collateral)


@pytest.mark.parametrize(("ephemeral", "nonce"), [(bytes(31), bytes(32)), (bytes(32), bytes(16))], ids=["key", "nonce"])
def test_checkNewcomer_wrongLengths_refused(backend: DevBackend, policy: QuotePolicy, ephemeral: bytes, nonce: bytes) -> None:
    _, request, _ = _join(backend)
    with pytest.raises(AttestationError, match="ephemeral key and nonce must be 32 and 32 bytes"):
        check_newcomer(JoinRequest(request.evidence, ephemeral), nonce, DEV_CLUSTER, policy)


# ---------------------------------------------------------------------------- the attestor's checks, one behaviour


def test_verifyBoundEvidence_registrationEvidence_sameVerdictAsAttestor(backend: DevBackend, policy: QuotePolicy) -> None:
    """The attestor runs the enclave's quote checks (one copy): same verdict, same refusal."""
    assert Policy is QuotePolicy and attestor.verify_quote is dcap.verify_quote and attestor.dev_issued is dcap.dev_issued
    claim = Claim("0x" + "11" * 20, "0x" + "22" * 20, 31337, "0x" + "33" * 20, new_nonce())
    evidence = backend.attest(claim.report_data()[:32])
    attestor_policy = Policy(policy.allowed_images, dev_root_ca_der=policy.dev_root_ca_der)
    ours = verify_bound_evidence(evidence, claim.report_data(), "(the claim)", policy)
    theirs = verify_evidence(evidence, claim, attestor_policy)
    assert (ours.tee_type, ours.image_id, ours.compose_hash, ours.measurements, ours.status, ours.advisories, ours.quote_hash) == (
        theirs.tee_type,
        theirs.image_id,
        theirs.compose_hash,
        theirs.measurements,
        theirs.status,
        theirs.advisories,
        theirs.quote_hash,
    )
    tampered = Evidence(evidence.backend, _flip(evidence.quote, MR_TD_AT), evidence.event_log, evidence.collateral)
    with pytest.raises(AttestationError) as ours_refusal:
        verify_bound_evidence(tampered, claim.report_data(), "(the claim)", policy)
    with pytest.raises(AttestationError) as theirs_refusal:
        verify_evidence(tampered, claim, attestor_policy)
    assert str(ours_refusal.value) == str(theirs_refusal.value)
    assert pad_report_data(claim.report_data()[:32]) == claim.report_data()


def test_provisioningImport_loadsNoNodeLibrary() -> None:
    """The enclave may import provisioning at start: dcap-qvl loads only when a quote is checked."""
    import subprocess
    import sys

    probe = "import sys, coprocessor_enclave.provisioning\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'coprocessor', 'dcap_qvl', 'web3'}))"
    loaded = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"
