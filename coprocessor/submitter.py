"""Sends fulfilments in batches and reads back what the chain did with each."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from eth_abi import decode

from .chain import TxSender
from .errors import ChainError
from coprocessor_enclave.protocol import (
    FULFILLMENT_SKIPPED_TOPIC,
    REQUEST_CANCELLED_TOPIC,
    REQUEST_FULFILLED_TOPIC,
    Fulfillment,
    Request,
    encode_cancel,
    encode_fulfill,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one receipt says about one request."""

    request_id: bytes
    kind: str  # "fulfilled", "skipped-settled", "skipped-expired", "cancelled"
    callback_succeeded: bool | None = None


class Submitter:
    """Batches signed responses into `fulfill` calls, setting aside items the chain would reject."""

    def __init__(self, sender: TxSender, coprocessor: str, max_batch: int = 25) -> None:
        self.sender = sender
        self.coprocessor = coprocessor
        self.max_batch = max_batch

    def send_batch(self, fulfillments: list[Fulfillment]) -> tuple[bytes | None, dict[bytes, str]]:
        """Sends one `fulfill`; returns its hash (None if nothing was sent) and the items refused, with reasons.

        A batch reverts as a whole, so when the batch would revert each item is simulated
        alone and only the good ones are sent.
        """
        batch = fulfillments[: self.max_batch]
        refused: dict[bytes, str] = {}
        try:
            gas = self.sender.estimate(self.coprocessor, encode_fulfill(batch))
        except ChainError:
            good = []
            for item in batch:
                try:
                    self.sender.estimate(self.coprocessor, encode_fulfill([item]))
                    good.append(item)
                except ChainError as exc:
                    refused[item.request.request_id] = str(exc)
            batch = good
            if not batch:
                return None, refused
            gas = self.sender.estimate(self.coprocessor, encode_fulfill(batch))
        tx_hash = self.sender.send(self.coprocessor, encode_fulfill(batch), gas=gas * 6 // 5 + 20_000)
        return tx_hash, refused

    def send_cancel(self, request: Request) -> bytes:
        """Sends `cancel` for an expired request; raises ChainError with the reason if it would revert."""
        data = encode_cancel(request)
        gas = self.sender.estimate(self.coprocessor, data)
        return self.sender.send(self.coprocessor, data, gas=gas * 6 // 5 + 10_000)

    def outcomes(self, receipt: dict) -> list[Outcome]:
        """The per-request events of a `fulfill` or `cancel` receipt."""
        found = []
        for entry in receipt["logs"]:
            if entry["address"].lower() != self.coprocessor.lower() or not entry["topics"]:
                continue
            topic, request_id = bytes(entry["topics"][0]), bytes(entry["topics"][1])
            if topic == REQUEST_FULFILLED_TOPIC:
                _, succeeded = decode(["uint8", "bool"], bytes(entry["data"]))
                found.append(Outcome(request_id, "fulfilled", succeeded))
            elif topic == FULFILLMENT_SKIPPED_TOPIC:
                (reason,) = decode(["uint8"], bytes(entry["data"]))
                found.append(Outcome(request_id, "skipped-settled" if reason == 0 else "skipped-expired"))
            elif topic == REQUEST_CANCELLED_TOPIC:
                found.append(Outcome(request_id, "cancelled"))
        return found
