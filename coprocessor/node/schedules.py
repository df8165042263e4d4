"""Scheduled jobs: which runs of the Subscriptions contract are due, read from the chain alone.

Nothing is kept that the chain does not say: after a restart or a reorg the next runs are read
again (`nextRunAt`), so a run is never doubled (the contract advances the run index on trigger)
nor forgotten (a due run stays due until triggered, or is recorded as missed past its tolerance).
Due-ness is judged by chain time, the clock the contract checks.
"""

from __future__ import annotations

import logging
from typing import Any

from coprocessor_enclave.protocol import Request, encode_cancel

from ..chain import contract

log = logging.getLogger(__name__)

_NEVER = 2**256 - 1  # `nextRunAt`'s due time of a finished or cancelled subscription


class SubscriptionScheduler:
    """Finds due subscription runs; the node's leader sends their `trigger` transactions."""

    def __init__(self, w3: Any, address: str, coprocessor: str) -> None:
        self.address = address
        self._coprocessor = coprocessor
        self._contract = contract(w3, "Subscriptions", address)
        self._done: set[int] = set()  # finished or cancelled: they never run again
        self._sent: dict[int, int] = {}  # id -> run index whose trigger is sent and not yet seen mined
        # The earliest run not yet due at the last look: an idle chain (Anvil mines only on demand) brings no new
        # head when it falls due, so the node looks again by the clock then.
        self.next_due: float = float("inf")

    def due(self, chain_time: int) -> list[tuple[int, int]]:
        """(id, run index) of every subscription with a run due at `chain_time` and no trigger for it in flight."""
        functions = self._contract.functions
        found = []
        self.next_due = float("inf")
        for sub_id in range(1, int(functions.subscriptionCount().call()) + 1):
            if sub_id in self._done:
                continue
            run_index, due_at = functions.nextRunAt(sub_id).call()
            if due_at == _NEVER:
                self._done.add(sub_id)
            elif due_at <= chain_time and self._sent.get(sub_id) != run_index:
                found.append((sub_id, int(run_index)))
            elif due_at > chain_time:
                self.next_due = min(self.next_due, float(due_at))
        return found

    def trigger_data(self, sub_id: int) -> bytes:
        """Calldata of `trigger(sub_id)`."""
        return bytes.fromhex(self._contract.encode_abi("trigger", args=[sub_id]).removeprefix("0x"))

    def reclaim_call(self, request: Request) -> tuple[str, bytes]:
        """Where and what to send to cancel an expired request: `Subscriptions.reclaim` for one of its runs, which
        cancels it at the Coprocessor and puts the fee back in the subscription's budget; the Coprocessor's
        `cancel` for any other request."""
        if request.consumer.lower() != self.address.lower():
            return self._coprocessor, encode_cancel(request)
        return self.address, bytes.fromhex(self._contract.encode_abi("reclaim", args=[request.as_tuple()]).removeprefix("0x"))

    def sent(self, sub_id: int, run_index: int) -> None:
        """Notes a trigger in flight, so the same run is not triggered again before it is mined."""
        self._sent[sub_id] = run_index
