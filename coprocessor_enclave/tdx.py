"""Intel TDX measurements as dstack lays them out: runtime events, RTMR replay, and our image id.

A dstack CVM measures its boot chain into MRTD and RTMR0-2, then extends RTMR3 with
runtime events, among them `compose-hash` (SHA-256 of the app's compose file). The
image id that `EnclaveRegistry` allowlists is keccak256(MRTD || RTMR0 || RTMR1 || RTMR2 ||
compose hash): the whole boot chain plus the app, but not the per-instance events
(instance id, key provider) that RTMR3 also carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

from .errors import AttestationError

# dstack's event type for runtime events extended into RTMR3 (not a TCG code).
RUNTIME_EVENT_TYPE = 0x08000001
COMPOSE_HASH_EVENT = "compose-hash"
MEASUREMENT_BYTES = 48
COMPOSE_HASH_BYTES = 32  # SHA-256 of the compose file


@dataclass(frozen=True)
class TdMeasurements:
    """The TD's measurement registers (48 bytes each)."""

    mr_td: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes

    def __post_init__(self) -> None:
        for name in ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"):
            if len(getattr(self, name)) != MEASUREMENT_BYTES:
                raise ValueError(f"{name} must be {MEASUREMENT_BYTES} bytes")

    @classmethod
    def from_report(cls, report: dict[str, str]) -> TdMeasurements:
        """From dcap-qvl's verified TD report JSON (`mr_td`, `rt_mr0`..`rt_mr3` as hex)."""
        return cls(*(bytes.fromhex(report[k]) for k in ("mr_td", "rt_mr0", "rt_mr1", "rt_mr2", "rt_mr3")))


def runtime_event(name: str, payload: bytes) -> dict[str, Any]:
    """One RTMR3 event in dstack's event-log JSON shape, with its digest."""
    return {
        "imr": 3,
        "event_type": RUNTIME_EVENT_TYPE,
        "digest": event_digest(RUNTIME_EVENT_TYPE, name, payload).hex(),
        "event": name,
        "event_payload": payload.hex(),
    }


def event_digest(event_type: int, name: str, payload: bytes) -> bytes:
    """SHA-384(event_type as u32 LE || ":" || name || ":" || payload), as dstack extends RTMR3."""
    return hashlib.sha384(event_type.to_bytes(4, "little") + b":" + name.encode() + b":" + payload).digest()


def replay_rtmr(digests: list[bytes]) -> bytes:
    """The register value after extending zero with each digest in turn."""
    register = bytes(MEASUREMENT_BYTES)
    for digest in digests:
        register = hashlib.sha384(register + digest.ljust(MEASUREMENT_BYTES, b"\0")).digest()
    return register


def compose_hash(event_log: list[dict[str, Any]], rtmr3: bytes) -> bytes:
    """The app's compose hash, after checking that the RTMR3 events replay to `rtmr3`.

    Every RTMR3 event's digest is recomputed from its name and payload, so an event log
    cannot show one compose hash while the register holds another.
    """
    digests = []
    found: list[bytes] = []
    for event in event_log:
        if not isinstance(event, dict):
            raise AttestationError("malformed event log: every event must be an object")
        if event.get("imr") != 3:
            continue
        try:
            name = str(event["event"])
            payload = bytes.fromhex(event["event_payload"])
            digest = bytes.fromhex(event["digest"])
            event_type = int(event["event_type"])
        except (KeyError, ValueError, TypeError) as exc:
            raise AttestationError(f"malformed RTMR3 event in the event log: {exc!r}") from None
        if event_type == RUNTIME_EVENT_TYPE:
            # "type:name:payload" is only unambiguous when the name has no colon.
            if ":" in name or digest != event_digest(event_type, name, payload):
                raise AttestationError(f"event {name!r} does not match its digest")
            if name == COMPOSE_HASH_EVENT:
                found.append(payload)
        digests.append(digest)
    if replay_rtmr(digests) != rtmr3:
        raise AttestationError("the event log does not replay to the quote's RTMR3")
    if len(found) != 1 or len(found[0]) != COMPOSE_HASH_BYTES:
        raise AttestationError(f"expected one {COMPOSE_HASH_EVENT!r} event of {COMPOSE_HASH_BYTES} bytes in RTMR3")
    return found[0]


def image_id(measurements: TdMeasurements, app_compose_hash: bytes) -> bytes:
    """keccak256(MRTD || RTMR0 || RTMR1 || RTMR2 || compose hash): what the registry allowlists."""
    m = measurements
    return keccak(m.mr_td + m.rtmr0 + m.rtmr1 + m.rtmr2 + app_compose_hash)
