"""A development PKI in Intel's DCAP shape: real-format TDX v4 quotes and their collateral.

NOT SECURE. Whoever holds its key files can forge quotes for any measurement. It exists so
the dev backend produces quotes that the production verifier path (`dcap_qvl`) checks
exactly as it checks Intel's, only against this PKI's root instead of Intel's:

    dcap_qvl.verify_with_root_ca(quote, QuoteCollateralV3.from_json(json.dumps(collateral)),
                                 pki.root_ca_der, now)

Layout (Intel TDX DCAP Quote Generation Library, quote format v4):

    header (48) | TD10 report body (584) | u32 signature data length | signature data
    signature data = ECDSA sig over header+body (64, r||s) | attestation public key (64, x||y)
                     | u16 cert type 6 | u32 size | QE report (384) | QE report sig by PCK (64)
                     | u16 auth size | QE auth data | u16 cert type 5 | u32 size | PEM PCK chain
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from .tdx import TdMeasurements

# ---------------------------------------------------------------- constants

QUOTE_VERSION = 4
ATT_KEY_TYPE_ECDSA_P256 = 2
TEE_TYPE_TDX = 0x81
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
CERT_TYPE_PCK_CHAIN = 5
CERT_TYPE_QE_REPORT = 6

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
FMSPC = bytes.fromhex("00C0DE000000")
PCE_ID = bytes.fromhex("0000")
PCE_SVN = 11
CPU_SVN = bytes([3, 3, 2, 2, 4, 1, 0, 5] + [0] * 8)  # also the 16 SGX TCB component SVNs
SGX_TYPE_SCALABLE = 1
TEE_TCB_SVN = bytes([6, 1, 3] + [0] * 13)  # [module SVN, module id (TDX_01), late microcode, ...]
TDX_COMPONENT_SVNS = [5, 0, 2] + [0] * 13
TD_ATTRIBUTES = bytes.fromhex("0000001000000000")  # SEPT_VE_DISABLE only; not debug
XFAM = bytes.fromhex("e702060000000000")
MR_SEAM = hashlib.sha384(b"coprocessor DEVELOPMENT TDX module - NOT SECURE").digest()

QE_MRSIGNER = hashlib.sha256(b"coprocessor DEVELOPMENT quoting enclave - NOT SECURE").digest()
QE_MRENCLAVE = hashlib.sha256(b"coprocessor DEVELOPMENT TD_QE").digest()
QE_ATTRIBUTES = bytes.fromhex("11000000000000000000000000000000")  # INIT | MODE64BIT, not DEBUG
QE_ATTRIBUTES_MASK = bytes.fromhex("FBFFFFFFFFFFFFFF0000000000000000")
QE_ISV_PROD_ID = 2
QE_ISV_SVN = 4
QE_AUTH_DATA = bytes(range(32))  # dcap-qvl requires exactly 32 bytes

TCB_EVALUATION_DATA_NUMBER = 17
TCB_DATE = "2025-01-01T00:00:00Z"
CERT_LIFETIME = timedelta(days=3652)

ROOT_CN = "Coprocessor DEVELOPMENT Root CA - NOT SECURE"
PCK_CA_CN = "Coprocessor DEVELOPMENT PCK Platform CA - NOT SECURE"
PCK_CN = "Coprocessor DEVELOPMENT PCK Certificate - NOT SECURE"
TCB_SIGNING_CN = "Coprocessor DEVELOPMENT TCB Signing - NOT SECURE"
ORGANIZATION = "Coprocessor DEVELOPMENT PKI - NOT SECURE"

# The key files and certificate files of `load_or_create`, by role.
_ROLES = ("root_ca", "pck_ca", "pck", "tcb_signing", "attestation")
_CERT_ROLES = ("root_ca", "pck_ca", "pck", "tcb_signing")


class DevPki:
    """A development PKI in Intel's DCAP shape. NOT SECURE: whoever has its files can forge quotes."""

    def __init__(self, keys: dict[str, ec.EllipticCurvePrivateKey], certs: dict[str, x509.Certificate]) -> None:
        """Use `generate` or `load_or_create`; keys and certificates by role (see `_ROLES`)."""
        self._keys = keys
        self._certs = certs

    # ------------------------------------------------------------ creation

    @classmethod
    def generate(cls, now: int | None = None) -> DevPki:
        """Fresh keys and certificates, valid from `now` - 1 day for about 10 years."""
        start = _utc(_now(now)) - timedelta(days=1)
        keys = {role: ec.generate_private_key(ec.SECP256R1()) for role in _ROLES}
        root, pck_ca = _name(ROOT_CN), _name(PCK_CA_CN)
        sgx = x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), _sgx_extension(os.urandom(16)))
        certs = {
            "root_ca": _certificate(root, keys["root_ca"], root, keys["root_ca"], start, ca_path_length=1),
            "pck_ca": _certificate(pck_ca, keys["pck_ca"], root, keys["root_ca"], start, ca_path_length=0),
            "pck": _certificate(_name(PCK_CN), keys["pck"], pck_ca, keys["pck_ca"], start, sgx_extension=sgx),
            "tcb_signing": _certificate(_name(TCB_SIGNING_CN), keys["tcb_signing"], root, keys["root_ca"], start),
        }
        return cls(keys, certs)

    @classmethod
    def load_or_create(cls, directory: Path) -> DevPki:
        """The PKI stored in `directory` (PEM files, keys 0600), generated and stored on first use."""
        directory = Path(directory)
        paths = [directory / f"{role}.key.pem" for role in _ROLES]
        paths += [directory / f"{role}.pem" for role in _CERT_ROLES]
        present = [path.exists() for path in paths]
        if all(present):
            keys = {role: _load_key(directory / f"{role}.key.pem") for role in _ROLES}
            certs = {role: x509.load_pem_x509_certificate((directory / f"{role}.pem").read_bytes()) for role in _CERT_ROLES}
            return cls(keys, certs)
        if any(present):
            missing = ", ".join(path.name for path, ok in zip(paths, present, strict=True) if not ok)
            raise ValueError(f"incomplete development PKI in {directory}: missing {missing}")
        pki = cls.generate()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for role, key in pki._keys.items():
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            _write(directory / f"{role}.key.pem", pem, 0o600)
        for role, cert in pki._certs.items():
            _write(directory / f"{role}.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return pki

    # ------------------------------------------------------------ public data

    @property
    def root_ca_der(self) -> bytes:
        """The root certificate (DER): the trust anchor to pass to `verify_with_root_ca`."""
        return self._certs["root_ca"].public_bytes(serialization.Encoding.DER)

    # ------------------------------------------------------------ quotes

    def quote(self, report_data: bytes, measurements: TdMeasurements) -> bytes:
        """A TDX v4 quote of a TD with these measurements and this 64-byte report_data."""
        if len(report_data) != 64:
            raise ValueError("report_data must be exactly 64 bytes")
        header = struct.pack("<HHIHH", QUOTE_VERSION, ATT_KEY_TYPE_ECDSA_P256, TEE_TYPE_TDX, 0, 0)  # 2 reserved
        header += INTEL_QE_VENDOR_ID + self._attestation_public_key()[:16] + bytes(4)  # user_data: a QE id
        body = b"".join(
            [
                TEE_TCB_SVN,
                MR_SEAM,
                bytes(48),  # mr_signer_seam: zero means Intel's module (tdxModule.mrsigner)
                bytes(8),  # seam_attributes
                TD_ATTRIBUTES,
                XFAM,
                measurements.mr_td,
                bytes(48 * 3),  # mr_config_id, mr_owner, mr_owner_config
                measurements.rtmr0,
                measurements.rtmr1,
                measurements.rtmr2,
                measurements.rtmr3,
                report_data,
            ]
        )
        assert len(header) == 48 and len(body) == 584
        qe_report = self._qe_report()
        chain = b"".join(self._certs[r].public_bytes(serialization.Encoding.PEM) for r in ("pck", "pck_ca", "root_ca"))
        qe_certification = b"".join(
            [
                qe_report,
                _sign_raw(self._keys["pck"], qe_report),
                struct.pack("<H", len(QE_AUTH_DATA)) + QE_AUTH_DATA,
                struct.pack("<HI", CERT_TYPE_PCK_CHAIN, len(chain)) + chain,
            ]
        )
        signature_data = b"".join(
            [
                _sign_raw(self._keys["attestation"], header + body),
                self._attestation_public_key(),
                struct.pack("<HI", CERT_TYPE_QE_REPORT, len(qe_certification)) + qe_certification,
            ]
        )
        return header + body + struct.pack("<I", len(signature_data)) + signature_data

    def _attestation_public_key(self) -> bytes:
        """The quoting enclave's attestation key as raw x||y (64 bytes)."""
        point = (
            self._keys["attestation"].public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        return point[1:]

    def _qe_report(self) -> bytes:
        """The 384-byte SGX report of the quoting enclave, binding the attestation key."""
        report_data = hashlib.sha256(self._attestation_public_key() + QE_AUTH_DATA).digest() + bytes(32)
        report = b"".join(
            [
                CPU_SVN,
                struct.pack("<I", 0),  # misc_select
                bytes(28),
                QE_ATTRIBUTES,
                QE_MRENCLAVE,
                bytes(32),
                QE_MRSIGNER,
                bytes(96),
                struct.pack("<HH", QE_ISV_PROD_ID, QE_ISV_SVN),
                bytes(60),
                report_data,
            ]
        )
        assert len(report) == 384
        return report

    # ------------------------------------------------------------ collateral

    def collateral(self, now: int | None = None, validity_seconds: int = 30 * 86400) -> dict[str, str]:
        """Signed TCB info, QE identity and CRLs for [now - 60 s, that + validity_seconds).

        dcap-qvl accepts the JSON documents up to nextUpdate inclusive but a CRL only while
        now < nextUpdate, so the last accepted second is nextUpdate - 1.
        """
        issued = _now(now) - 60
        next_update = issued + validity_seconds
        window = {"issueDate": _rfc3339(issued), "nextUpdate": _rfc3339(next_update)}
        tcb_info = _json({"id": "TDX", "version": 3, **window, **_tcb_info_body()})
        qe_identity = _json({"id": "TD_QE", "version": 2, **window, **_qe_identity_body()})
        pem = {role: cert.public_bytes(serialization.Encoding.PEM).decode() for role, cert in self._certs.items()}
        tcb_chain = pem["tcb_signing"] + pem["root_ca"]
        return {
            "pck_crl_issuer_chain": pem["pck_ca"] + pem["root_ca"],
            "root_ca_crl": self._crl("root_ca", issued, next_update).hex(),
            "pck_crl": self._crl("pck_ca", issued, next_update).hex(),
            "tcb_info_issuer_chain": tcb_chain,
            "tcb_info": tcb_info,
            "tcb_info_signature": _sign_raw(self._keys["tcb_signing"], tcb_info.encode()).hex(),
            "qe_identity_issuer_chain": tcb_chain,
            "qe_identity": qe_identity,
            "qe_identity_signature": _sign_raw(self._keys["tcb_signing"], qe_identity.encode()).hex(),
        }

    def _crl(self, issuer: str, this_update: int, next_update: int) -> bytes:
        """An empty CRL (DER) issued by `issuer` for this window."""
        cert = self._certs[issuer]
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(_utc(this_update))
            .next_update(_utc(next_update))
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(_authority_key_id(self._keys[issuer]), critical=False)
            .sign(self._keys[issuer], hashes.SHA256())
        )
        return crl.public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------- private helpers


def _tcb_info_body() -> dict[str, object]:
    """TDX TCB info v3 fields after id/version/dates: one UpToDate level matching this platform."""
    module = {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "FF" * 8}
    return {
        "fmspc": FMSPC.hex().upper(),
        "pceId": PCE_ID.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
        "tdxModule": module,
        "tdxModuleIdentities": [
            {
                "id": f"TDX_{TEE_TCB_SVN[1]:02X}",
                **module,
                "tcbLevels": [{"tcb": {"isvsvn": TEE_TCB_SVN[0]}, "tcbDate": TCB_DATE, "tcbStatus": "UpToDate"}],
            }
        ],
        "tcbLevels": [
            {
                "tcb": {
                    "sgxtcbcomponents": [{"svn": svn} for svn in CPU_SVN],
                    "pcesvn": PCE_SVN,
                    "tdxtcbcomponents": [{"svn": svn} for svn in TDX_COMPONENT_SVNS],
                },
                "tcbDate": TCB_DATE,
                "tcbStatus": "UpToDate",
            }
        ],
    }


def _qe_identity_body() -> dict[str, object]:
    """TD_QE identity v2 fields after id/version/dates, matching `DevPki._qe_report`."""
    return {
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": QE_ATTRIBUTES.hex().upper(),
        "attributesMask": QE_ATTRIBUTES_MASK.hex().upper(),
        "mrsigner": QE_MRSIGNER.hex().upper(),
        "isvprodid": QE_ISV_PROD_ID,
        "tcbLevels": [{"tcb": {"isvsvn": QE_ISV_SVN}, "tcbDate": TCB_DATE, "tcbStatus": "UpToDate"}],
    }


def _sgx_extension(ppid: bytes) -> bytes:
    """The DER value of Intel's SGX extension (1.2.840.113741.1.13.1) as in a Platform-CA PCK certificate."""
    oid = SGX_EXTENSION_OID

    def entry(arc: str, value: bytes) -> bytes:
        return _der(0x30, _der_oid(f"{oid}.{arc}") + value)

    tcb = [entry(f"2.{i + 1}", _der_int(svn)) for i, svn in enumerate(CPU_SVN)]
    tcb += [entry("2.17", _der_int(PCE_SVN)), entry("2.18", _der(0x04, CPU_SVN))]
    # dynamicPlatform, cachedKeys, smtEnabled: all false, so QuotePolicy.strict accepts the platform
    configuration = [entry(f"7.{arc}", _der(0x01, b"\x00")) for arc in (1, 2, 3)]
    return _der(
        0x30,
        b"".join(
            [
                entry("1", _der(0x04, ppid)),
                entry("2", _der(0x30, b"".join(tcb))),
                entry("3", _der(0x04, PCE_ID)),
                entry("4", _der(0x04, FMSPC)),
                entry("5", _der(0x0A, bytes([SGX_TYPE_SCALABLE]))),
                entry("6", _der(0x04, hashlib.sha256(b"platform instance" + ppid).digest()[:16])),
                entry("7", _der(0x30, b"".join(configuration))),
            ]
        ),
    )


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_int(value: int) -> bytes:
    """A non-negative DER INTEGER."""
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _der_oid(dotted: str) -> bytes:
    """A DER OBJECT IDENTIFIER."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def _name(common_name: str) -> x509.Name:
    """A subject in Intel's shape, marked as development."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
        ]
    )


def _authority_key_id(issuer_key: ec.EllipticCurvePrivateKey) -> x509.AuthorityKeyIdentifier:
    """The authority key identifier pointing at `issuer_key`."""
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    *,
    ca_path_length: int | None = None,
    sgx_extension: x509.UnrecognizedExtension | None = None,
) -> x509.Certificate:
    """A v3 ECDSA-SHA256 certificate with Intel's extensions: a CA when `ca_path_length` is given."""
    is_ca = ca_path_length is not None
    usage = x509.KeyUsage(
        digital_signature=not is_ca,  # leaves: digitalSignature + nonRepudiation, as Intel's
        content_commitment=not is_ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,  # CAs: keyCertSign + cRLSign (webpki checks cRLSign on CRL issuers)
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + CERT_LIFETIME)
        .add_extension(_authority_key_id(issuer_key), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(usage, critical=True)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length), critical=True)
    )
    if sgx_extension is not None:
        builder = builder.add_extension(sgx_extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-P256-SHA256 signature as 64 bytes r||s (the quote and collateral encoding)."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from a PEM file."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write a new file created with `mode` (never briefly wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _json(value: dict[str, object]) -> str:
    """Compact JSON, the exact string that gets signed."""
    return json.dumps(value, separators=(",", ":"))


def _now(now: int | None) -> int:
    """`now`, or the clock in whole seconds."""
    return int(time.time()) if now is None else now


def _utc(seconds: int) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def _rfc3339(seconds: int) -> str:
    """Unix seconds as Intel's RFC 3339 form, e.g. 2025-06-19T10:16:03Z."""
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
