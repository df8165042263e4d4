"""The development PKI's quotes go through dcap-qvl's real verification path, against its own root only."""

from __future__ import annotations

import json
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import dcap_qvl
import pytest

from coprocessor_enclave.devpki import CPU_SVN, FMSPC, PCE_ID, PCE_SVN, DevPki
from coprocessor_enclave.tdx import TdMeasurements

NOW = int(time.time())
ISSUED = NOW - 60
VALIDITY = 30 * 86400
NEXT_UPDATE = ISSUED + VALIDITY
REPORT_DATA = bytes(range(64))
MEASUREMENTS = TdMeasurements(
    mr_td=bytes([0x11]) * 48,
    rtmr0=bytes([0x22]) * 48,
    rtmr1=bytes([0x33]) * 48,
    rtmr2=bytes([0x44]) * 48,
    rtmr3=bytes([0x55]) * 48,
)
SIGNATURE_OFFSET = 48 + 584 + 4  # header, TD10 body, signature data length


@dataclass(frozen=True)
class Issued:
    """One PKI with one quote and its collateral."""

    pki: DevPki
    quote: bytes
    collateral: dict[str, str]


@pytest.fixture(scope="module")
def issued() -> Issued:
    pki = DevPki.generate(NOW)
    return Issued(pki, pki.quote(REPORT_DATA, MEASUREMENTS), pki.collateral(NOW, VALIDITY))


def verify(quote: bytes, collateral: dict[str, str], root: bytes, now: int = NOW) -> dcap_qvl.VerifiedReport:
    """dcap-qvl's verification against `root`, as the attestor runs it."""
    return dcap_qvl.verify_with_root_ca(quote, dcap_qvl.QuoteCollateralV3.from_json(json.dumps(collateral)), root, now)


def flip(data: bytes, offset: int) -> bytes:
    """`data` with one bit of the byte at `offset` flipped."""
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def test_quote_verifiesWithDevRoot_carriesTheGivenReport(issued: Issued) -> None:
    report = verify(issued.quote, issued.collateral, issued.pki.root_ca_der)
    assert report.status == "UpToDate"
    assert report.advisory_ids == []
    td = json.loads(report.to_json())["report"]["TD10"]
    assert td["report_data"] == REPORT_DATA.hex()
    assert td["mr_td"] == MEASUREMENTS.mr_td.hex()
    assert [td[f"rt_mr{i}"] for i in range(4)] == [
        MEASUREMENTS.rtmr0.hex(),
        MEASUREMENTS.rtmr1.hex(),
        MEASUREMENTS.rtmr2.hex(),
        MEASUREMENTS.rtmr3.hex(),
    ]


def test_quote_passesStrictPolicy(issued: Issued) -> None:
    collateral = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(issued.collateral))
    claims = dcap_qvl.QuoteVerifier(issued.pki.root_ca_der).verify_with_policy(
        issued.quote, collateral, NOW, dcap_qvl.QuotePolicy.strict(NOW)
    )
    assert json.loads(claims.to_json())["tcb"]["status"] == "UpToDate"


def test_quote_pckExtensionParsesAsIntels(issued: Issued) -> None:
    chain = issued.quote[issued.quote.index(b"-----BEGIN CERTIFICATE-----") :]
    extension = dcap_qvl.parse_pck_extension_from_pem(chain)
    assert (extension.fmspc, extension.pce_id, extension.cpu_svn) == (FMSPC, PCE_ID, CPU_SVN)
    assert (extension.pce_svn, extension.sgx_type) == (PCE_SVN, 1)
    assert len(extension.ppid) == 16
    assert extension.ppid == verify(issued.quote, issued.collateral, issued.pki.root_ca_der).ppid


def test_quote_failsWithIntelRoot(issued: Issued) -> None:
    collateral = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(issued.collateral))
    with pytest.raises(ValueError):
        dcap_qvl.verify(issued.quote, collateral, NOW)


@pytest.mark.parametrize(
    "field",
    ["report_data", "mr_td", "signature"],
)
def test_quote_tamperedFieldFails(issued: Issued, field: str) -> None:
    offsets = {
        "report_data": issued.quote.index(REPORT_DATA),
        "mr_td": issued.quote.index(MEASUREMENTS.mr_td),
        "signature": SIGNATURE_OFFSET,
    }
    tampered = flip(issued.quote, offsets[field] + 7)
    with pytest.raises(ValueError, match="ISV enclave report signature is invalid"):
        verify(tampered, issued.collateral, issued.pki.root_ca_der)


def test_collateral_editedTcbInfoFails(issued: Issued) -> None:
    tcb_info = json.loads(issued.collateral["tcb_info"])
    tcb_info["tcbLevels"][0]["tcb"]["pcesvn"] -= 1
    edited = {**issued.collateral, "tcb_info": json.dumps(tcb_info, separators=(",", ":"))}
    assert edited["tcb_info"] != issued.collateral["tcb_info"]
    with pytest.raises(ValueError, match="Signature is invalid for tcb_info"):
        verify(issued.quote, edited, issued.pki.root_ca_der)


def test_quote_otherDevRootRefuses(issued: Issued) -> None:
    other = DevPki.generate(NOW)
    with pytest.raises(ValueError):
        verify(issued.quote, issued.collateral, other.root_ca_der)
    with pytest.raises(ValueError, match="certificate chain"):
        verify(issued.quote, other.collateral(NOW, VALIDITY), other.root_ca_der)


# dcap-qvl accepts issueDate <= now <= nextUpdate for TCB info and QE identity, but webpki
# treats a CRL as expired once now >= nextUpdate: the window is [issueDate, nextUpdate).
@pytest.mark.parametrize(
    ("now", "error"),
    [
        (ISSUED - 1, "issue date is in the future"),
        (ISSUED, None),
        (NEXT_UPDATE - 1, None),
        (NEXT_UPDATE, "CrlExpired"),
        (NEXT_UPDATE + 1, "CrlExpired"),
    ],
)
def test_collateral_windowBoundaries(issued: Issued, now: int, error: str | None) -> None:
    if error is None:
        assert verify(issued.quote, issued.collateral, issued.pki.root_ca_der, now).status == "UpToDate"
    else:
        with pytest.raises(ValueError, match=error):
            verify(issued.quote, issued.collateral, issued.pki.root_ca_der, now)


def test_loadOrCreate_twice_sameRootAndPrivateKeys(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    first = DevPki.load_or_create(directory)
    second = DevPki.load_or_create(directory)
    assert second.root_ca_der == first.root_ca_der
    key_files = sorted(directory.glob("*.key.pem"))
    assert len(key_files) == 5
    for path in key_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    quote = second.quote(REPORT_DATA, MEASUREMENTS)
    assert verify(quote, second.collateral(NOW), first.root_ca_der).status == "UpToDate"


def test_loadOrCreate_incompleteDirectoryRaises(tmp_path: Path) -> None:
    DevPki.load_or_create(tmp_path)
    (tmp_path / "pck.key.pem").unlink()
    with pytest.raises(ValueError, match="pck.key.pem"):
        DevPki.load_or_create(tmp_path)


def test_quote_wrongLengthsRaise(issued: Issued) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        issued.pki.quote(REPORT_DATA[:32], MEASUREMENTS)
    with pytest.raises(ValueError, match="48 bytes"):
        TdMeasurements(bytes(48), bytes(48), bytes(47), bytes(48), bytes(48))
