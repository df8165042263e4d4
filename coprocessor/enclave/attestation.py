"""Attestation backends: evidence that a key lives inside a measured execution boundary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eth_utils import keccak

from ..protocol import TeeType
from ..template import bundle_hash

PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Evidence:
    """What a backend returns for one report: the raw quote plus what it claims."""

    tee_type: TeeType
    image_id: bytes
    report_data: bytes
    quote: bytes

    @property
    def quote_hash(self) -> bytes:
        """keccak256 of the quote, recorded on-chain with the registration."""
        return keccak(self.quote)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "teeType": int(self.tee_type),
            "imageId": "0x" + self.image_id.hex(),
            "reportData": "0x" + self.report_data.hex(),
            "quote": "0x" + self.quote.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evidence:
        """Inverse of `to_json`."""
        return cls(
            tee_type=TeeType(data["teeType"]),
            image_id=bytes.fromhex(data["imageId"].removeprefix("0x")),
            report_data=bytes.fromhex(data["reportData"].removeprefix("0x")),
            quote=bytes.fromhex(data["quote"].removeprefix("0x")),
        )


class AttestationBackend(Protocol):
    """One kind of execution boundary."""

    tee_type: TeeType

    def image_id(self) -> bytes:
        """The measurement the registry allowlists."""
        ...

    def attest(self, report_data: bytes) -> Evidence:
        """Evidence binding `report_data` to this boundary's measurement."""
        ...


def dev_image_id() -> bytes:
    """The DEV measurement: the content hash of the enclave runtime (this Python package)."""
    return bundle_hash(PACKAGE_DIR)


class DevBackend:
    """Development mode: NOT SECURE. The 'quote' is a plain statement, signed by nobody.

    It exists so the whole registration and verification path runs locally; the
    registry accepts it only when deployed with `allowDev = true`.
    """

    tee_type = TeeType.DEV

    def __init__(self) -> None:
        self._image_id = dev_image_id()

    def image_id(self) -> bytes:
        """See `dev_image_id`."""
        return self._image_id

    def attest(self, report_data: bytes) -> Evidence:
        """A JSON statement of (tee type, image id, report data)."""
        statement = {"tee": "DEV", "imageId": self._image_id.hex(), "reportData": report_data.hex()}
        return Evidence(TeeType.DEV, self._image_id, report_data, json.dumps(statement, sort_keys=True).encode())


DEV_BANNER = """
################################################################################
#  DEVELOPMENT ATTESTATION - NOT SECURE                                        #
#  This enclave runs as a plain process. Its key and its results are only as   #
#  trustworthy as this machine. Registries deployed with allowDev = false      #
#  refuse it. Never use it for value you cannot afford to lose.                #
################################################################################
"""
