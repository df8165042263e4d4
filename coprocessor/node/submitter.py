"""Sends signed responses in batches, several transactions in flight under one nonce manager.

The journal holds what must be sent; this module holds only the transactions in flight. It
recovers at once from `nonce too low`, dropped and replaced transactions, bumps the fee of a
stuck one (a replacement at the same nonce, never a second copy at another), and cancels
requests past their deadline. Whatever cannot succeed is reconciled against the chain once,
then stops with its reason in the journal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_abi import decode

from coprocessor_enclave.protocol import (
    FULFILLMENT_SKIPPED_TOPIC,
    REQUEST_FULFILLED_TOPIC,
    Fulfillment,
    Request,
    RequestState,
    SkipReason,
    encode_cancel,
    encode_fulfill,
)

from ..errors import ChainError
from .journal import Entry, Journal, State

log = logging.getLogger(__name__)

# Gas a fulfil item may cost beyond its callback's limit (verification, events, calldata), for sizing
# batches and their gas limit without `eth_estimateGas`, which searches by executing the batch again
# and again (150 ms for 100 items on Anvil). Unused gas is not charged.
ITEM_OVERHEAD_GAS = 80_000
# The most one call of a composed response adds (`Coprocessor._creditCalls`): a registry lookup and caching of the
# callee's terms, a credit to a new balance and an event; about 83k measured the first time, and less after.
CALL_PAID_GAS = 100_000
_BATCH_OVERHEAD_GAS = 60_000
# Reverts of one item at mining time (after a successful estimate) before it is reconciled and stopped.
_MAX_REVERTS = 3
_TIP_WEI = 10**9


class Account(Protocol):
    """What the submitter needs of one chain account; `TxSender` is the real one, tests use a fake."""

    address: str

    def estimate(self, to: str | None, data: bytes, value: int = 0, block: str = "latest") -> int: ...
    def send_at(self, nonce: int, to: str, data: bytes, gas: int, max_fee: int, tip: int) -> bytes: ...
    def nonce_at(self, block: str) -> int: ...
    def receipt(self, tx_hash: bytes) -> Any | None: ...
    def lookup(self, tx_hash: bytes) -> Any | None: ...


@dataclass(frozen=True)
class Outcome:
    """What one receipt says about one request."""

    request_id: bytes
    kind: str  # "fulfilled", "skipped-settled", "skipped-expired"
    callback_succeeded: bool | None = None


@dataclass
class InFlight:
    """One nonce's transaction; a fee bump adds a copy at the same nonce."""

    nonce: int
    kind: str  # "fulfill", "cancel" or "filler"
    items: list[bytes]  # commitments
    request_ids: list[bytes]
    to: str
    data: bytes
    gas: int
    max_fee: int
    tip: int
    hashes: list[bytes] = field(default_factory=list)
    sent_at: float = 0.0
    checked_at: float = 0.0


@dataclass(frozen=True)
class SubmitterConfig:
    """How the submitter batches and paces transactions."""

    max_batch: int = 64
    gas_budget: int = 15_000_000  # per fulfil transaction
    max_in_flight: int = 4
    drop_check_after: float = 0.5  # seconds before a pending transaction is checked for having been dropped
    bump_after: float = 15.0  # seconds pending before its fee is bumped
    bump_percent: int = 13  # nodes require at least 10 % more for a replacement
    # While the enclave still runs others, a partial batch waits this long after the last fulfil for
    # them: on a fast chain a fulfil is mined in milliseconds, and sending each response as it is
    # signed made batches of 1-3, costing the chain and the node per transaction. Never when idle.
    batch_wait: float = 0.05
    # While requests also wait for the enclave (the node is behind), a partial batch waits this long
    # instead: they queue anyway, and a batch of 60 costs the chain and the node per response a
    # third less than one of 20 (Anvil mines a block per transaction).
    backlog_batch_wait: float = 0.25
    # A send needs this much of the node's lease left (seconds): with several nodes on one journal, a
    # node whose lease ran out may already have had its work taken over (`Journal.fence`). The node
    # sets it to a third of its lease, the time between two heartbeats.
    fence_margin: float = 3.0


class Submitter:
    """Owns the account's nonces: one instance per account and chain, driven by one thread."""

    def __init__(
        self,
        account: Account,
        coprocessor: str,
        journal: Journal,
        config: SubmitterConfig = SubmitterConfig(),  # noqa: B008 - frozen: one shared default is safe
        request_state: Callable[[bytes], RequestState] | None = None,
        on_receipt: Callable[[InFlight, Any], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        more_coming: Callable[[], bool] = lambda: False,
        behind: Callable[[], bool] = lambda: False,
        cancel_call: Callable[[Request], tuple[str, bytes]] | None = None,
    ) -> None:
        self.account = account
        self.coprocessor = coprocessor
        self.journal = journal
        self.config = config
        self.request_state = request_state
        self.on_receipt = on_receipt
        self.clock = clock
        self.more_coming = more_coming  # whether responses are being made now (the enclave stage is busy)
        self.behind = behind  # whether requests also wait to be run (a backlog)
        # Where an expired request's cancel goes: the Coprocessor, or (a subscription's run) `Subscriptions.reclaim`.
        self.cancel_call = cancel_call or (lambda request: (coprocessor, encode_cancel(request)))
        self.hold_until = 0.0  # a partial batch waits until then (clock) for responses being made
        self._last_fulfil = float("-inf")
        self.in_flight: dict[int, InFlight] = {}
        self._refused: dict[tuple[str, bytes], str] = {}  # calls the chain refused, with the reason last logged
        self._floor: int | None = None  # no nonce below this is free (the chain's `latest` count)

    # ------------------------------------------------------------------ the loop's entry points

    def step(self, chain_time: int, base_fee: int) -> None:
        """Tracks what is in flight, then sends what is ready."""
        self.track()
        self.send_ready(chain_time, base_fee)

    def track(self) -> None:
        """Handles mined, dropped, replaced and stuck transactions."""
        if not self.in_flight:
            return
        latest = self.account.nonce_at("latest")
        self._floor = latest
        now = self.clock()
        for nonce in sorted(self.in_flight):
            sent = self.in_flight[nonce]
            if nonce < latest:
                self._settle(sent)
            elif now - sent.checked_at >= self.config.drop_check_after:
                sent.checked_at = now
                if all(self.account.lookup(h) is None for h in sent.hashes):
                    del self.in_flight[nonce]
                    log.warning("tx 0x%s (nonce %d) was dropped: its %d items go out again", sent.hashes[-1].hex(), nonce, len(sent.items))
                    self.journal.unsent(sent.items, error="its transaction was dropped from the pool")
                elif now - sent.sent_at >= self.config.bump_after:
                    self._bump(sent)

    def send_ready(self, chain_time: int, base_fee: int) -> int:
        """Sends one fulfil batch if there is a free slot; returns how many items it holds."""
        fulfils = sum(1 for s in self.in_flight.values() if s.kind == "fulfill")
        if len(self.in_flight) >= self.config.max_in_flight:
            return 0
        # Counted first: this runs on every signed response, and most of those times nothing is sent.
        count = self.journal.count_ready(self.config.max_batch, chain_time)
        # Nothing in flight: send at once, so a lone request is never held back. Otherwise wait for a full batch,
        # unless a nonce below one in flight is free (a reorg or a drop removed its transaction): nothing in
        # flight can be mined until that gap is filled.
        if not count:
            if self._gap():  # nothing to fill it with: a transfer to ourselves unblocks what is in flight
                self._send("filler", [], b"", 21_000, base_fee, to=self.account.address)
            return 0
        if count < self.config.max_batch and not self._gap():
            if fulfils:
                return 0
            wait = self.config.backlog_batch_wait if self.behind() else self.config.batch_wait
            hold_until = self._last_fulfil + wait
            if self.clock() < hold_until and self.more_coming():
                self.hold_until = hold_until
                return 0
        if not self.journal.fence(self.config.fence_margin):  # before taking work: a node past its lease takes none
            return 0
        ready = self.journal.ready(self.config.max_batch, chain_time)
        batch: list[Entry] = []
        gas_planned = _BATCH_OVERHEAD_GAS
        for entry in ready:
            cost = entry.request.callback_gas_limit * 64 // 63 + ITEM_OVERHEAD_GAS
            if entry.signature is not None and len(entry.signature) > 65:  # a composed response pays its callees
                cost += (len(entry.signature) - 65) // 32 * CALL_PAID_GAS
            if batch and gas_planned + cost > self.config.gas_budget:
                break
            if entry.attempts >= _MAX_REVERTS:
                self.reconcile(entry, f"its fulfilment reverted {entry.attempts} times")
                continue
            batch.append(entry)
            gas_planned += cost
        if not batch:
            return 0
        # Signed by our enclave for a request it read from the chain, an item does not revert; one that did
        # once is simulated (and set aside if it would again) before it goes out with others.
        if any(e.attempts for e in batch):
            batch, gas = self._simulate(batch)
            if not batch:
                return 0
            gas_planned = gas * 6 // 5 + 20_000
        items = [Fulfillment(e.request, e.status, e.output, e.signature) for e in batch]  # type: ignore[arg-type]
        sent = self._send("fulfill", batch, encode_fulfill(items), gas_planned, base_fee)
        self._last_fulfil = sent.sent_at
        self.journal.submitted([e.commitment for e in batch], sent.hashes[-1].hex())
        return len(batch)

    def cancel_expired(self, chain_time: int, base_fee: int) -> int:
        """Cancels requests past their deadline, so the consumer's fee is refunded; returns how many were sent."""
        count = 0
        # Cancels are one transaction each, so they get room beyond the fulfils' slots.
        room = self.config.max_in_flight + self.config.max_batch - len(self.in_flight)
        if not self.journal.fence(self.config.fence_margin):
            return 0
        for entry in self.journal.expired_candidates(chain_time, limit=max(0, room)):
            to, data = self.cancel_call(entry.request)
            try:
                gas = self.account.estimate(to, data)
            except ChainError as exc:
                if "DeadlineNotReached" not in str(exc):  # the chain's clock lags ours: try next time
                    self.reconcile(entry, f"cancel refused: {exc}")
                continue
            if not self.journal.fence(self.config.fence_margin):
                break
            sent = self._send("cancel", [entry], data, gas * 6 // 5 + 10_000, base_fee, to=to)
            self.journal.submitted([entry.commitment], sent.hashes[-1].hex(), cancelling=True)
            count += 1
        return count

    def send_call(self, kind: str, to: str, data: bytes, base_fee: int) -> bool:
        """Sends one transaction that is no request's fulfil or cancel (a subscription's `trigger`), if it would
        succeed now and the node's lease allows; whether it was sent. The nonce is this account's, as for every send."""
        if len(self.in_flight) >= self.config.max_in_flight + self.config.max_batch:
            return False
        try:
            # On the pending block: a run falls due by the clock, and an idle chain (Anvil mining on demand) has no
            # newer block than the one before it; the next block will carry the clock's time.
            gas = self.account.estimate(to, data, block="pending")
        except ChainError as exc:  # not due after all (another node was first), or the budget is spent
            if self._refused.get((to, data)) != str(exc):  # said once, not on every retry
                self._refused[(to, data)] = str(exc)
                log.info("%s to %s not sent: %s", kind, to, exc)
            return False
        self._refused.pop((to, data), None)
        if not self.journal.fence(self.config.fence_margin):
            return False
        self._send(kind, [], data, gas * 6 // 5 + 20_000, base_fee, to=to)
        return True

    def forget_floor(self) -> None:
        """Re-reads the account's nonce before the next send: after a reorg (or a chain restored from older
        state) its count can go down, and a transaction sent above it would wait in the pool. (A gap below
        one in flight is also found and filled by `track`, within one check.)"""
        self._floor = None

    def adopt(self, tx_hash: bytes, commitments: list[bytes]) -> None:
        """After a restart: tracks a transaction sent before it, so it is never sent twice at two nonces."""
        receipt = self.account.receipt(tx_hash)
        if receipt is not None:
            self.journal.mined(commitments, tx_hash.hex(), receipt["blockNumber"])
            return
        tx = self.account.lookup(tx_hash) if tx_hash else None
        if tx is None:
            self.journal.unsent(commitments, error="its transaction was lost while the node was down")
            return
        kind = "fulfill" if bytes(tx["input"])[:4] == encode_fulfill([])[:4] else "cancel"
        entries = [self.journal.by_commitment(c) for c in commitments]
        sent = InFlight(
            tx["nonce"],
            kind,
            commitments,
            [e.request.request_id for e in entries if e is not None],
            self.coprocessor,
            bytes(tx["input"]),
            tx["gas"],
            tx["maxFeePerGas"],
            tx["maxPriorityFeePerGas"],
            [tx_hash],
        )
        sent.sent_at = sent.checked_at = self.clock()
        self.in_flight[sent.nonce] = sent

    # ------------------------------------------------------------------ reconciliation

    def reconcile(self, entry: Entry, reason: str) -> None:
        """Asks the chain once what became of a request that cannot go further, and stops it there."""
        rid = entry.request.request_id
        state = self.request_state(rid) if self.request_state is not None else None
        if state == RequestState.FULFILLED:
            self.journal.finish(entry.commitment, State.SETTLED, error="settled on-chain by another transaction")
        elif state == RequestState.CANCELLED:
            self.journal.finish(entry.commitment, State.EXPIRED, error="cancelled on-chain by another transaction")
        elif entry.state != State.FAILED and "CommitmentMismatch" not in reason and "NotPending" not in reason:
            # Still pending on-chain, so only the fulfil is refused (e.g. the key was revoked): the request
            # waits for its deadline and is cancelled then.
            self.journal.finish(entry.commitment, State.FAILED, error=reason)
            log.error("request 0x%s: %s; it will be cancelled after its deadline", rid.hex()[:12], reason)
            return
        else:
            self.journal.finish(entry.commitment, State.DROPPED, error=f"{reason} (chain state: {state.name if state else 'unknown'})")
            log.error("request 0x%s dropped: %s", rid.hex()[:12], reason)
            return
        log.info("request 0x%s reconciled with the chain: %s", rid.hex()[:12], state.name)

    # ------------------------------------------------------------------ internals

    def _simulate(self, batch: list[Entry]) -> tuple[list[Entry], int]:
        """Estimates the batch; if it would revert, sets aside the items that would, each reconciled once."""

        def data(entries: Sequence[Entry]) -> bytes:
            return encode_fulfill([Fulfillment(e.request, e.status, e.output, e.signature) for e in entries])  # type: ignore[arg-type]

        try:
            return batch, self.account.estimate(self.coprocessor, data(batch))
        except ChainError:
            pass
        good = []
        for entry in batch:
            try:
                self.account.estimate(self.coprocessor, data([entry]))
                good.append(entry)
            except ChainError as exc:
                self.reconcile(entry, f"refused by the chain: {exc}")
        if not good:
            return [], 0
        return good, self.account.estimate(self.coprocessor, data(good))

    def _gap(self) -> bool:
        """Whether a nonce below one in flight is free: then nothing above it can be mined until it is filled."""
        return bool(self.in_flight) and self._free_nonce() < max(self.in_flight)

    def _free_nonce(self) -> int:
        if self._floor is None:
            self._floor = self.account.nonce_at("latest")
        nonce = self._floor
        while nonce in self.in_flight:
            nonce += 1
        return nonce

    def _send(self, kind: str, entries: Sequence[Entry], data: bytes, gas: int, base_fee: int, to: str | None = None) -> InFlight:
        """Signs and sends at the lowest free nonce; on `nonce too low` or a slot taken by another
        transaction of this account, learns the account's pending nonce and tries again once."""
        for attempt in range(2):
            nonce = self._free_nonce()
            sent = InFlight(
                nonce,
                kind,
                [e.commitment for e in entries],
                [e.request.request_id for e in entries],
                to or self.coprocessor,
                data,
                gas,
                base_fee * 2 + _TIP_WEI,
                _TIP_WEI,
            )
            try:
                sent.hashes.append(self.account.send_at(nonce, sent.to, data, gas, sent.max_fee, sent.tip))
            except ChainError as exc:
                if attempt == 0 and _nonce_taken(str(exc)):
                    log.info("nonce %d is taken (%s): resyncing with the chain", nonce, exc)
                    self._floor = max(self.account.nonce_at("pending"), nonce + 1)
                    continue
                raise
            sent.sent_at = sent.checked_at = self.clock()
            self.in_flight[nonce] = sent
            return sent
        raise AssertionError("unreachable")

    def _bump(self, sent: InFlight) -> None:
        """Replaces a stuck transaction at the same nonce with higher fees."""
        if not self.journal.fence(self.config.fence_margin):
            return
        factor = 100 + self.config.bump_percent
        sent.max_fee, sent.tip = sent.max_fee * factor // 100 + 1, sent.tip * factor // 100 + 1
        try:
            sent.hashes.append(self.account.send_at(sent.nonce, sent.to, sent.data, sent.gas, sent.max_fee, sent.tip))
        except ChainError as exc:  # mined meanwhile, or the pool wants more: the next check sees which
            log.info("fee bump of nonce %d not taken: %s", sent.nonce, exc)
            return
        sent.sent_at = self.clock()
        log.warning("tx at nonce %d pending too long: resent with max fee %d wei (0x%s)", sent.nonce, sent.max_fee, sent.hashes[-1].hex())

    def _settle(self, sent: InFlight) -> None:
        """A mined nonce: ours (some copy has a receipt) or another transaction of this account."""
        receipt = next((r for r in (self.account.receipt(h) for h in reversed(sent.hashes)) if r is not None), None)
        if receipt is None and any(self.account.lookup(h) is not None for h in sent.hashes):
            return  # the node counts the nonce as used before it serves the receipt: look again next time
        del self.in_flight[sent.nonce]
        if receipt is None:
            log.warning("nonce %d was used by another transaction of this account: %d items go out again", sent.nonce, len(sent.items))
            self.journal.unsent(sent.items, error="its nonce was used by another transaction")
            return
        tx_hash = bytes(receipt["transactionHash"]).hex()
        if receipt["status"] != 1:
            log.warning("tx 0x%s reverted: %d items go out again", tx_hash, len(sent.items))
            self.journal.unsent(sent.items, error=f"tx 0x{tx_hash} reverted", attempt=True)
            return
        self.journal.mined(sent.items, tx_hash, receipt["blockNumber"])
        if self.on_receipt is not None:
            self.on_receipt(sent, receipt)

    def outcomes(self, receipt: Any) -> list[Outcome]:
        """The per-request events of a `fulfill` receipt."""
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
                found.append(Outcome(request_id, "skipped-settled" if reason == SkipReason.ALREADY_SETTLED else "skipped-expired"))
        return found


def _nonce_taken(message: str) -> bool:
    text = message.lower()
    return any(s in text for s in ("nonce too low", "already known", "underpriced", "nonce has already been used"))
