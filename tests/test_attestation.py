"""Quote verification with dcap-qvl: real Intel fixtures, dev-PKI quotes, the dstack backend, the policy."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import dcap_qvl
import pytest

from coprocessor.attest.attestor import Claim, Policy, verify_evidence, verify_quote
from coprocessor.errors import AttestationError
from coprocessor_enclave import tdx
from coprocessor_enclave.attestation import DevBackend, DstackBackend, Evidence, dev_image_id
from coprocessor_enclave.devpki import DevPki
from tests.dstack_agent import DCAP_DATA, DevPkiQuotes, FixtureQuotes, GuestAgent, start_agent

# (quote, collateral, first valid second, last valid second, TCB status, advisories): see tests/data/dcap/README.md.
# The TDX window ends one second before the README's: its end is a CRL's nextUpdate, and dcap-qvl treats a CRL
# as expired at nextUpdate (measured; the SGX window's end is a QE identity's, inclusive).
FIXTURES = {
    "tdx": ("tdx_quote", "tdx_quote_collateral.json", 1750329147, 1752919234, "UpToDate", ()),
    "sgx": (
        "sgx_quote",
        "sgx_quote_collateral.json",
        1750330571,
        1752919278,
        "ConfigurationAndSWHardeningNeeded",
        ("INTEL-SA-00289", "INTEL-SA-00615"),
    ),
}
TDX_NOW = 1750329147 + 3600
HEADER, BODY = 48, 584
REPORT_DATA_AT = HEADER + 520  # TD10 body: report_data is its last 64 bytes
MR_TD_AT = HEADER + 136
SIGNATURE_AT = HEADER + BODY + 4  # after the u32 signature-data length
CLAIM = Claim(enclave="0x" + "11" * 20, payee="0x" + "22" * 20, chain_id=31337, registry="0x" + "33" * 20, nonce=bytes(range(32)))


def _fixture(name: str) -> tuple[bytes, dict[str, str]]:
    quote, collateral = FIXTURES[name][:2]
    return (DCAP_DATA / quote).read_bytes(), json.loads((DCAP_DATA / collateral).read_text())


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return DevPki.load_or_create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def dev_agent(pki: DevPki) -> Iterator[GuestAgent]:
    agent = start_agent(DevPkiQuotes(pki))
    yield agent
    agent.stop()


# ---------------------------------------------------------------------------- Intel fixtures


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_verifyQuote_fixture_insideWindow(name: str) -> None:
    quote, collateral = _fixture(name)
    *_, first, last, status, advisories = FIXTURES[name]
    for now in (first, last):
        report = verify_quote(quote, collateral, now)
        assert (report.status, report.advisories, report.dev_root) == (status, advisories, False)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_verifyQuote_fixture_oneSecondOutsideWindow(name: str) -> None:
    quote, collateral = _fixture(name)
    first, last = FIXTURES[name][2:4]
    with pytest.raises(AttestationError, match="issue date is in the future"):
        verify_quote(quote, collateral, first - 1)
    with pytest.raises(AttestationError, match="expired|Expired"):
        verify_quote(quote, collateral, last + 1)


@pytest.mark.parametrize(
    ("what", "at", "reason"),
    [
        ("report data", REPORT_DATA_AT, "signature is invalid"),
        ("measurement (MRTD)", MR_TD_AT, "signature is invalid"),
        ("quote signature", SIGNATURE_AT, "signature is invalid"),
    ],
)
def test_verifyQuote_fixture_oneByteTampered(what: str, at: int, reason: str) -> None:
    quote, collateral = _fixture("tdx")
    verify_quote(quote, collateral, TDX_NOW)  # untouched, it passes
    with pytest.raises(AttestationError, match=reason):
        verify_quote(_flip(quote, at), collateral, TDX_NOW)


def test_verifyQuote_fixture_tamperedCollateral() -> None:
    quote, collateral = _fixture("tdx")
    collateral["tcb_info"] = collateral["tcb_info"].replace('"UpToDate"', '"OutOfDate"', 1)
    with pytest.raises(AttestationError, match="Signature is invalid for tcb_info"):
        verify_quote(quote, collateral, TDX_NOW)


def test_verifyQuote_outdatedTdx_failsInsideItsWindow() -> None:
    quote = (DCAP_DATA / "tdx_quote_outdated").read_bytes()
    collateral = json.loads((DCAP_DATA / "tdx_quote_outdated_collateral.json").read_text())
    with pytest.raises(AttestationError, match="No matching TCB level"):
        verify_quote(quote, collateral, 1771412331 + 3600)


def test_verifyQuote_truncated_failsToParse() -> None:
    quote, collateral = _fixture("tdx")
    with pytest.raises(AttestationError, match="does not parse"):
        verify_quote(quote[:100], collateral, TDX_NOW)


# ---------------------------------------------------------------------------- policy


def _sgx_evidence() -> tuple[Evidence, dict[str, str]]:
    quote, collateral = _fixture("sgx")
    return Evidence("dstack", quote, []), collateral


def test_verifyEvidence_statusNotAllowed_refused() -> None:
    evidence, collateral = _sgx_evidence()
    policy = Policy(frozenset(), now=FIXTURES["sgx"][2])
    with pytest.raises(AttestationError, match="TCB status ConfigurationAndSWHardeningNeeded is not allowed"):
        verify_evidence(evidence, CLAIM, policy, collateral)


def test_verifyEvidence_rejectedAdvisory_refused() -> None:
    evidence, collateral = _sgx_evidence()
    policy = Policy(frozenset(), frozenset({"ConfigurationAndSWHardeningNeeded"}), frozenset({"INTEL-SA-00615"}), now=FIXTURES["sgx"][2])
    with pytest.raises(AttestationError, match="rejected advisories: INTEL-SA-00615"):
        verify_evidence(evidence, CLAIM, policy, collateral)


def test_verifyEvidence_sgxQuote_notRegistrable() -> None:
    evidence, collateral = _sgx_evidence()
    policy = Policy(frozenset(), frozenset({"ConfigurationAndSWHardeningNeeded"}), now=FIXTURES["sgx"][2])
    with pytest.raises(AttestationError, match="not a TDX quote"):
        verify_evidence(evidence, CLAIM, policy, collateral)


def test_verifyEvidence_noCollateral_refused() -> None:
    quote, _ = _fixture("tdx")
    with pytest.raises(AttestationError, match="no collateral"):
        verify_evidence(Evidence("dstack", quote, []), CLAIM, Policy(frozenset(), now=TDX_NOW))


# ---------------------------------------------------------------------------- dstack backend


def test_dstackBackend_realQuote_verifiesButCarriesNoAppMeasurement() -> None:
    """The real TDX quote passes dcap-qvl and the RTMR3 replay, but measures no app and binds another key: refused."""
    agent = start_agent(FixtureQuotes())
    try:
        evidence = DstackBackend(agent.url).attest(CLAIM.report_data())
        _, collateral = _fixture("tdx")
        assert evidence.backend == "dstack" and evidence.quote == (DCAP_DATA / "tdx_quote").read_bytes()
        with pytest.raises(AttestationError, match="compose-hash"):
            # The fixture's RTMR3 is empty: it carries no app measurement at all.
            verify_evidence(evidence, CLAIM, Policy(frozenset(), now=TDX_NOW), collateral)
        assert agent.calls == ["/GetQuote"]
        report = verify_quote(evidence.quote, collateral, TDX_NOW)
        assert bytes.fromhex(report.body["report_data"]) != CLAIM.report_data()
        assert tdx.replay_rtmr([]) == bytes.fromhex(report.body["rt_mr3"])
    finally:
        agent.stop()


def test_dstackBackend_reportDataMismatch_ownReason(dev_agent: GuestAgent, pki: DevPki) -> None:
    backend = DstackBackend(dev_agent.url)
    other = Claim(CLAIM.enclave, CLAIM.payee, CLAIM.chain_id, CLAIM.registry, secrets.token_bytes(32))
    evidence = backend.attest(other.report_data())
    policy = Policy(frozenset({backend.image_id()}), dev_root_ca_der=pki.root_ca_der)
    with pytest.raises(AttestationError, match=r"report data does not bind \(enclave, payee, chain id, registry, nonce\)"):
        verify_evidence(evidence, CLAIM, policy, pki.collateral())


def test_dstackBackend_measurementNotAllowlisted_ownReason(dev_agent: GuestAgent, pki: DevPki) -> None:
    evidence = DstackBackend(dev_agent.url).attest(CLAIM.report_data())
    policy = Policy(frozenset({dev_image_id()}), dev_root_ca_der=pki.root_ca_der)
    with pytest.raises(AttestationError, match="is not on the allowlist"):
        verify_evidence(evidence, CLAIM, policy, pki.collateral())


def test_dstackBackend_fullPath_imageIdMatchesInfo(dev_agent: GuestAgent, pki: DevPki) -> None:
    backend = DstackBackend(dev_agent.url)
    image = backend.image_id()  # from Info: MRTD, RTMR0-2 and the compose hash checked against RTMR3
    evidence = backend.attest(CLAIM.report_data())
    verdict = verify_evidence(evidence, CLAIM, Policy(frozenset({image}), dev_root_ca_der=pki.root_ca_der), pki.collateral())
    assert verdict.image_id == image
    assert verdict.compose_hash == dev_agent.source.compose_hash
    assert verdict.tee_type.name == "DEV"  # rooted in the dev PKI, whatever the backend's name
    assert verdict.status == "UpToDate"


@pytest.mark.parametrize("tamper", ["payload", "dropped"])
def test_dstackBackend_eventLogTampered_refused(dev_agent: GuestAgent, pki: DevPki, tamper: str) -> None:
    backend = DstackBackend(dev_agent.url)
    evidence = backend.attest(CLAIM.report_data())
    log = [dict(e) for e in evidence.event_log]
    if tamper == "payload":
        log[1]["event_payload"] = "ff" * 32  # another compose hash, the old digest
        reason = "does not match its digest"
    else:
        log.pop(0)
        reason = "does not replay"
    tampered = Evidence(evidence.backend, evidence.quote, log)
    policy = Policy(frozenset({backend.image_id()}), dev_root_ca_der=pki.root_ca_der)
    with pytest.raises(AttestationError, match=reason):
        verify_evidence(tampered, CLAIM, policy, pki.collateral())


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([("compose-hash:ab", b"c" * 32)], "does not match its digest"),  # a colon would make names ambiguous
        ([(tdx.COMPOSE_HASH_EVENT, b"")], "of 32 bytes"),
        ([(tdx.COMPOSE_HASH_EVENT, b"a" * 32), (tdx.COMPOSE_HASH_EVENT, b"b" * 32)], "expected one"),
    ],
)
def test_composeHash_ambiguousOrMissing_refused(events: list[tuple[str, bytes]], reason: str) -> None:
    log = [
        {
            "imr": 3,
            "event_type": tdx.RUNTIME_EVENT_TYPE,
            "event": name,
            "event_payload": payload.hex(),
            "digest": tdx.event_digest(tdx.RUNTIME_EVENT_TYPE, name, payload).hex(),
        }
        for name, payload in events
    ]
    rtmr3 = tdx.replay_rtmr([bytes.fromhex(e["digest"]) for e in log])
    with pytest.raises(AttestationError, match=reason):
        tdx.compose_hash(log, rtmr3)


def test_composeHash_malformedEvent_oneLineReason() -> None:
    with pytest.raises(AttestationError, match="malformed"):
        tdx.compose_hash([{"imr": 3, "event_type": tdx.RUNTIME_EVENT_TYPE, "digest": "00"}], bytes(48))
    with pytest.raises(AttestationError, match="must be an object"):
        tdx.compose_hash(["not an event"], bytes(48))  # type: ignore[list-item]


def test_dstackBackend_agentDown_unreachable() -> None:
    from coprocessor.errors import EnclaveUnreachable

    with pytest.raises(EnclaveUnreachable, match="GetQuote failed"):
        DstackBackend("http://127.0.0.1:9").attest(CLAIM.report_data())


# ---------------------------------------------------------------------------- dev backend


def test_devBackend_quote_verifiesWithDevRoot(tmp_path: Path) -> None:
    backend = DevBackend(tmp_path / "pki")
    evidence = backend.attest(CLAIM.report_data()[:32])
    root = DevPki.load_or_create(tmp_path / "pki").root_ca_der
    verdict = verify_evidence(evidence, CLAIM, Policy(frozenset({dev_image_id()}), dev_root_ca_der=root))
    assert verdict.image_id == dev_image_id() == backend.image_id()
    assert verdict.compose_hash == tdx.compose_hash(evidence.event_log, verdict.measurements.rtmr3)


def test_devBackend_quote_refusedWithoutInsecureRoot(tmp_path: Path) -> None:
    evidence = DevBackend(tmp_path / "pki").attest(CLAIM.report_data()[:32])
    with pytest.raises(AttestationError, match="development PKI .*refused unless"):
        verify_evidence(evidence, CLAIM, Policy(frozenset({dev_image_id()})))


def test_verifyQuote_intelFixtureWithDevRootConfigured_staysIntel(pki: DevPki) -> None:
    quote, collateral = _fixture("tdx")
    assert verify_quote(quote, collateral, TDX_NOW, pki.root_ca_der).dev_root is False


def test_verifyEvidence_intelQuote_ignoresEvidenceCollateral() -> None:
    """The operator could pick stale Intel collateral: only the attestor's own is used."""
    quote, collateral = _fixture("tdx")
    with pytest.raises(AttestationError, match="no collateral"):
        verify_evidence(Evidence("dstack", quote, [], collateral), CLAIM, Policy(frozenset(), now=TDX_NOW))


def test_devBackend_quote_failsWithIntelRoot(tmp_path: Path) -> None:
    evidence = DevBackend(tmp_path / "pki").attest(CLAIM.report_data()[:32])
    collateral = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(evidence.collateral))
    with pytest.raises(ValueError, match="root CA CRL"):  # dcap-qvl with Intel's root, at a time its collateral is valid
        dcap_qvl.verify(evidence.quote, collateral, int(time.time()))


def test_devBackend_quote_failsWithAnotherDevRoot(tmp_path: Path) -> None:
    evidence = DevBackend(tmp_path / "pki").attest(CLAIM.report_data()[:32])
    other_root = DevPki.generate().root_ca_der
    with pytest.raises(AttestationError, match="development PKI other than the configured dev root"):
        verify_evidence(evidence, CLAIM, Policy(frozenset({dev_image_id()}), dev_root_ca_der=other_root))


@pytest.mark.parametrize("at", [REPORT_DATA_AT, MR_TD_AT, SIGNATURE_AT])
def test_devBackend_quote_tampered_fails(tmp_path: Path, at: int) -> None:
    evidence = DevBackend(tmp_path / "pki").attest(CLAIM.report_data()[:32])
    root = DevPki.load_or_create(tmp_path / "pki").root_ca_der
    tampered = Evidence(evidence.backend, _flip(evidence.quote, at), evidence.event_log, evidence.collateral)
    with pytest.raises(AttestationError, match="quote verification failed"):
        verify_evidence(tampered, CLAIM, Policy(frozenset({dev_image_id()}), dev_root_ca_der=root))
