"""Attestation backends: evidence that a key lives inside a measured execution boundary.

Both backends produce the same thing: an Intel DCAP TDX quote whose report data the
enclave chose, plus the RTMR3 event log. `dstack` gets the quote from the TDX module
through dstack's guest agent; `dev` mints it with a development PKI, so the attestor
verifies both with the same dcap-qvl code path (see docs/attestation.md).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eth_utils import keccak

from . import tdx
from .errors import AttestationError, EnclaveUnreachable
from .protocol import TeeType
from .tdx import TdMeasurements
from .template import files_hash

PACKAGE_DIR = Path(__file__).resolve().parent
REPORT_DATA_BYTES = 64


@dataclass(frozen=True)
class Evidence:
    """What a backend returns for one report: the raw quote, the RTMR3 event log, and collateral if it has it."""

    backend: str
    quote: bytes
    event_log: list[dict[str, Any]]
    collateral: dict[str, str] | None = None

    @property
    def quote_hash(self) -> bytes:
        """keccak256 of the quote, recorded on-chain with the registration."""
        return keccak(self.quote)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "backend": self.backend,
            "quote": "0x" + self.quote.hex(),
            "eventLog": self.event_log,
            "collateral": self.collateral,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evidence:
        """Inverse of `to_json`."""
        try:
            return cls(
                backend=str(data["backend"]),
                quote=bytes.fromhex(str(data["quote"]).removeprefix("0x")),
                event_log=list(data.get("eventLog") or []),
                collateral=data.get("collateral"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AttestationError(f"malformed evidence: {exc}") from None


class AttestationBackend(Protocol):
    """One kind of execution boundary."""

    name: str
    tee_type: TeeType

    def image_id(self) -> bytes:
        """The measurement the registry allowlists."""
        ...

    def attest(self, report_data: bytes) -> Evidence:
        """A quote carrying `report_data` (64 bytes) from this boundary."""
        ...


def pad_report_data(report_data: bytes) -> bytes:
    """Our 32-byte binding, zero-padded to the quote's 64-byte report data field."""
    if len(report_data) > REPORT_DATA_BYTES:
        raise AttestationError(f"report data is {len(report_data)} bytes; a quote holds {REPORT_DATA_BYTES}")
    return report_data.ljust(REPORT_DATA_BYTES, b"\0")


# ---------------------------------------------------------------------------- dev


def _dev_register(label: str) -> bytes:
    return hashlib.sha384(b"coprocessor development TD, no hardware: " + label.encode()).digest()


def measured_files() -> dict[str, bytes]:
    """The enclave package's files, by path: what the dev image id measures (never the caches Python writes beside them)."""
    return {
        path.relative_to(PACKAGE_DIR).as_posix(): path.read_bytes()
        for path in sorted(PACKAGE_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def dev_compose_hash() -> bytes:
    """What stands in for the app's compose hash in dev: the content hash of the enclave package, nothing else."""
    return files_hash(measured_files())


def dev_measurements(event_log: list[dict[str, Any]]) -> TdMeasurements:
    """Fixed boot registers (there is no boot chain) and an RTMR3 replayed from `event_log`."""
    digests = [bytes.fromhex(e["digest"]) for e in event_log if e["imr"] == 3]
    return TdMeasurements(
        _dev_register("MRTD"), _dev_register("RTMR0"), _dev_register("RTMR1"), _dev_register("RTMR2"), tdx.replay_rtmr(digests)
    )


def dev_image_id() -> bytes:
    """The DEV image id: the same derivation as for TDX, over the dev registers and this package's hash."""
    return tdx.image_id(dev_measurements([]), dev_compose_hash())


class DevBackend:
    """Development mode: NOT SECURE. Real DCAP-format quotes, signed by a development PKI on this machine.

    The registry accepts the resulting registration only as tee type DEV, and only when
    deployed with `allowDev = true`; attestors accept the dev root only when configured to.
    """

    name = "dev"
    tee_type = TeeType.DEV

    def __init__(self, pki_dir: Path) -> None:
        from .devpki import DevPki  # cryptography-heavy; only dev mode needs it

        self._pki = DevPki.load_or_create(pki_dir)
        # Like a dstack CVM: the app's compose hash, then a per-instance event, extended into RTMR3.
        self._event_log = [
            tdx.runtime_event(tdx.COMPOSE_HASH_EVENT, dev_compose_hash()),
            tdx.runtime_event("instance-id", secrets.token_bytes(20)),
        ]
        self._measurements = dev_measurements(self._event_log)
        self._image_id = dev_image_id()  # once: the quotes' compose hash is fixed at start too

    def image_id(self) -> bytes:
        """See `dev_image_id`."""
        return self._image_id

    @property
    def dev_root_ca_der(self) -> bytes:
        """The development PKI's root: what a dev cluster trusts a joining dev enclave's quote under."""
        return self._pki.root_ca_der

    def attest(self, report_data: bytes) -> Evidence:
        """A dev-PKI TDX quote over `report_data`, with fresh collateral."""
        quote = self._pki.quote(pad_report_data(report_data), self._measurements)
        return Evidence(self.name, quote, list(self._event_log), self._pki.collateral(int(time.time())))


# ---------------------------------------------------------------------------- dstack


class DstackBackend:
    """Intel TDX inside a dstack confidential VM, through the guest agent (`dstack-sdk`)."""

    name = "dstack"
    tee_type = TeeType.TDX

    def __init__(self, endpoint: str | None = None, timeout: float = 10.0) -> None:
        from dstack_sdk import DstackClient

        try:
            self._client = DstackClient(endpoint, timeout=timeout)
        except FileNotFoundError as exc:
            raise EnclaveUnreachable(f"no dstack guest agent: {exc} (is this a dstack CVM?)") from None

    def image_id(self) -> bytes:
        """From the agent's `Info`: MRTD, RTMR0-2 and the compose hash, the latter checked against RTMR3."""
        try:
            tcb = self._client.info().tcb_info
        except Exception as exc:  # httpx, pydantic: the agent is down or speaks something else
            raise EnclaveUnreachable(f"dstack guest agent Info failed: {exc}") from None
        measurements = TdMeasurements(*(bytes.fromhex(getattr(tcb, name)) for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")))
        event_log = [event.model_dump() for event in tcb.event_log]
        return tdx.image_id(measurements, tdx.compose_hash(event_log, measurements.rtmr3))

    def attest(self, report_data: bytes) -> Evidence:
        """`GetQuote` with our report data; collateral is left to the attestor (Intel PCS or a PCCS)."""
        padded = pad_report_data(report_data)
        try:
            response = self._client.get_quote(padded)
        except Exception as exc:
            raise EnclaveUnreachable(f"dstack guest agent GetQuote failed: {exc}") from None
        return Evidence(self.name, response.decode_quote(), json.loads(response.event_log or "[]"))


DEV_BANNER = """
################################################################################
#  DEVELOPMENT ATTESTATION - NOT SECURE                                        #
#  This enclave runs as a plain process. Its quotes are signed by a            #
#  development PKI on this machine, so its key and its results are only as     #
#  trustworthy as this machine. Registries deployed with allowDev = false      #
#  refuse it. Never use it for value you cannot afford to lose.                #
################################################################################
"""
