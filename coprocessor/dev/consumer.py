"""Sending requests through the example consumer and waiting for their callbacks."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from eth_abi import decode
from web3 import Web3

from coprocessor_enclave.protocol import REQUEST_SUBMITTED_TOPIC, Status
from coprocessor_enclave.template import Template, to_jsonable
from coprocessor_enclave.text import inert

from ..chain import TxSender, contract
from ..errors import ChainError


@dataclass(frozen=True)
class Answer:
    """A callback as the consumer stored it."""

    request_id: bytes
    status: Status
    output: bytes
    latency: float

    def describe(self, template: Template | None) -> str:
        """The output decoded by the template's declared types, or the error reason."""
        if self.status != Status.OK:
            return inert(self.output.decode(errors="replace"))
        if template is None:
            return "0x" + self.output.hex()
        values = decode(list(template.outputs), self.output)
        return inert(", ".join(json.dumps(to_jsonable(v)) if isinstance(v, (bytes, tuple, list)) else str(v) for v in values))


class ExampleConsumerClient:
    """Drives `ExampleConsumer.ask` and reads `ExampleConsumer.response`."""

    def __init__(self, w3: Web3, sender: TxSender, consumer: str) -> None:
        self.w3 = w3
        self.sender = sender
        self.consumer = contract(w3, "ExampleConsumer", consumer)

    def ask(self, template_id: bytes, input_data: bytes, timeout: int = 300, fee: int = 0) -> tuple[bytes, float]:
        """Sends a request; returns its id and the wall-clock time its receipt arrived."""
        receipt = self.sender.call_function(self.consumer, "ask", template_id, input_data, timeout, value=fee)
        for entry in receipt["logs"]:
            if entry["topics"] and bytes(entry["topics"][0]) == REQUEST_SUBMITTED_TOPIC:
                return bytes(entry["topics"][1]), time.monotonic()
        raise ChainError("ask() emitted no RequestSubmitted event")

    def answer(self, request_id: bytes) -> tuple[Status, bytes] | None:
        """The stored response, or None if no callback arrived yet."""
        received, status, output = self.consumer.functions.response(request_id).call()
        return (Status(status), bytes(output)) if received else None

    def wait(self, request_id: bytes, sent_at: float, timeout: float = 60.0) -> Answer:
        """Polls until the callback arrived; raises ChainError after `timeout`."""
        while True:
            stored = self.answer(request_id)
            if stored is not None:
                return Answer(request_id, stored[0], stored[1], time.monotonic() - sent_at)
            if time.monotonic() - sent_at > timeout:
                raise ChainError(f"no callback for request 0x{request_id.hex()} within {timeout:g} s")
            time.sleep(0.01)
