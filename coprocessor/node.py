"""The node: listener -> journal -> enclave -> submitter, in one restartable loop.

Processing is at-least-once (a crash re-runs what was in flight); settlement is
exactly-once because the Coprocessor skips a request that is already settled.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler
from web3 import Web3

from .chain import TxSender, contract
from coprocessor.enclave_client import EnclaveClient
from coprocessor_enclave.service import SignedResult
from .errors import ChainError, EnclaveError, EnclaveUnreachable
from .journal import ACTIVE_STATES, Journal, State
from .listener import Listener
from coprocessor_enclave.protocol import Fulfillment, RequestState
from .registration import KeyKeeper
from .submitter import Submitter

_MAX_RETRY_DELAY = 60.0  # seconds between retries of a request the enclave could not run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeConfig:
    """Tuning knobs with sensible local defaults."""

    poll_interval: float = 0.05
    confirmations: int = 0
    concurrency: int = 2
    max_batch: int = 25
    sweep_interval: float = 1.0
    receipt_timeout: float = 60.0
    key_check_interval: float = 10.0


class Node:
    """Serves one Coprocessor deployment with one enclave and one submitting account."""

    def __init__(
        self,
        w3: Web3,
        coprocessor: str,
        journal: Journal,
        enclave: EnclaveClient,
        sender: TxSender,
        start_block: int = 0,
        config: NodeConfig = NodeConfig(),
        keeper: KeyKeeper | None = None,
    ) -> None:
        self.w3 = w3
        self.keeper = keeper
        self.journal = journal
        self.enclave = enclave
        self.config = config
        self.coprocessor = contract(w3, "Coprocessor", coprocessor)
        self.listener = Listener(w3, journal, coprocessor, start_block, config.confirmations)
        self.submitter = Submitter(sender, coprocessor, config.max_batch)
        self._pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="enclave")
        self._running: dict[bytes, Future[SignedResult]] = {}
        self._retry: dict[bytes, tuple[int, float]] = {}  # request id -> (failed attempts, monotonic time of the next)
        self._sent: dict[str, float] = {}
        self._last_sweep = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()  # set when an enclave run finishes, so results go out at once

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> None:
        """After a restart: re-run what was running; ask the chain about what was submitted."""
        running = [e.request.request_id for e in self.journal.entries(State.RUNNING)]
        self.journal.set_state(running, State.SEEN)
        for entry in self.journal.entries(State.SUBMITTED):
            self._reconcile(entry.request.request_id)
        if running:
            log.info("recovered %d requests that were running when the node stopped", len(running))

    def run(self) -> None:
        """Loops until `stop()`; each step does a bounded amount of work."""
        self.recover()
        scheduler = self._start_key_checks()
        while not self._stop.is_set():
            try:
                self.step()
            except (ChainError, EnclaveError, OSError) as exc:
                log.warning("step failed, retrying: %s", exc)
            except Exception as exc:  # web3 transport errors have many types; keep serving
                log.exception("unexpected error in node step: %s", exc)
            self._wake.wait(self.config.poll_interval)
            self._wake.clear()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start_key_checks(self) -> BackgroundScheduler | None:
        """Checks the enclave key now, then on a schedule (renewing it before it expires)."""
        if self.keeper is None:
            return None
        self._check_key()
        scheduler = BackgroundScheduler()
        scheduler.add_job(
            self._check_key, "interval", seconds=self.config.key_check_interval, max_instances=1, coalesce=True
        )
        scheduler.start()
        return scheduler

    def _check_key(self) -> None:
        assert self.keeper is not None
        try:
            self.keeper.check()
        except Exception as exc:  # RPC or enclave down: keep the last verdict, try again next time
            log.warning("enclave key check failed: %s", exc)

    def stop(self) -> None:
        """Asks `run` to return after the current step."""
        self._stop.set()
        self._wake.set()

    def step(self) -> None:
        """One pass: read new requests, start enclave runs, collect results, submit, track, sweep."""
        self.listener.poll()
        # A revoked or expired key stops being used at once; requests wait (or expire and are refunded).
        usable = self.keeper is None or self.keeper.problem is None
        if usable:
            self._dispatch()
        self._collect()
        self._track()
        latest = self.w3.eth.get_block("latest")
        if usable:
            self._submit(latest["timestamp"])
        if time.monotonic() - self._last_sweep >= self.config.sweep_interval:
            self._last_sweep = time.monotonic()
            self._sweep(latest["timestamp"])

    # ------------------------------------------------------------------ stages

    def _dispatch(self) -> None:
        """Starts enclave runs for newly seen requests, up to a bounded backlog."""
        # Requests backing off are skipped, and looked past: they must not starve newer ones.
        backlog = self.config.concurrency * 4
        now = time.monotonic()
        for entry in self.journal.entries(State.SEEN, limit=backlog + len(self._retry)):
            rid = entry.request.request_id
            if rid in self._running or self._retry.get(rid, (0, 0.0))[1] > now:
                continue
            if len(self._running) >= backlog:
                break
            self.journal.set_state([rid], State.RUNNING)
            log.debug("request 0x%s dispatched to the enclave", rid.hex()[:12])
            future = self._pool.submit(self.enclave.run, entry.request, entry.input)
            future.add_done_callback(lambda _: self._wake.set())
            self._running[rid] = future

    def _collect(self) -> None:
        for rid, future in list(self._running.items()):
            if not future.done():
                continue
            del self._running[rid]
            attempts = self._retry.pop(rid, (0, 0.0))[0]
            try:
                result = future.result()
            except EnclaveUnreachable as exc:
                # Try again, backing off: the enclave (or the chain RPC it reads) may be down for a while.
                attempts += 1
                self._retry[rid] = (attempts, time.monotonic() + min(_MAX_RETRY_DELAY, 0.5 * 2**attempts))
                self.journal.set_state([rid], State.SEEN, error=str(exc))
                log.warning("request 0x%s: %s (attempt %d, retrying)", rid.hex()[:12], exc, attempts)
                continue
            except EnclaveError as exc:
                # The enclave refuses to sign (e.g. input does not match the commitment):
                # the request cannot be answered, so it will expire and be refunded.
                self.journal.set_state([rid], State.FAILED, error=str(exc))
                log.error("request 0x%s refused by the enclave: %s", rid.hex()[:12], exc)
                continue
            self.journal.set_state(
                [rid], State.SIGNED, status=result.status, output=result.output, signature=result.signature
            )
            log.info("request 0x%s signed: %s", rid.hex()[:12], result.status.name)

    def _submit(self, now: int) -> None:
        signed = [e for e in self.journal.entries(State.SIGNED, limit=self.config.max_batch) if e.request.deadline >= now]
        if not signed:
            return
        batch = [Fulfillment(e.request, e.status, e.output, e.signature) for e in signed]  # type: ignore[arg-type]
        tx_hash, refused = self.submitter.send_batch(batch)
        for rid, reason in refused.items():
            self.journal.set_state([rid], State.FAILED, error=reason)
            log.error("request 0x%s refused by the chain: %s", rid.hex()[:12], reason)
        if tx_hash is None:
            return
        sent = [f.request.request_id for f in batch if f.request.request_id not in refused]
        self.journal.set_state(sent, State.SUBMITTED, tx_hash=tx_hash.hex())
        self._sent[tx_hash.hex()] = time.monotonic()
        self._wake.set()  # a local chain mines at once: look for the receipt without a full poll wait

    def _track(self) -> None:
        by_tx: dict[str, list[bytes]] = {}
        for entry in self.journal.entries(State.SUBMITTED):
            by_tx.setdefault(entry.tx_hash or "", []).append(entry.request.request_id)
        for tx_hash, rids in by_tx.items():
            try:
                receipt = self.w3.eth.get_transaction_receipt(bytes.fromhex(tx_hash))
            except Exception:  # not yet mined (web3 raises TransactionNotFound)
                receipt = None
            if receipt is None:
                sent_at = self._sent.setdefault(tx_hash, time.monotonic())
                if time.monotonic() - sent_at > self.config.receipt_timeout:
                    log.warning("tx 0x%s has no receipt after %.0f s: resubmitting", tx_hash, self.config.receipt_timeout)
                    self.submitter.sender.resync_nonce()
                    self.journal.set_state(rids, State.SIGNED)
                continue
            self._sent.pop(tx_hash, None)
            if receipt["status"] != 1:
                self.journal.set_state(rids, State.SIGNED, error=f"tx 0x{tx_hash} reverted")
                continue
            for outcome in self.submitter.outcomes(receipt):
                if outcome.kind == "fulfilled":
                    self.journal.set_state([outcome.request_id], State.SETTLED)
                    note = "" if outcome.callback_succeeded else " (consumer callback reverted)"
                    log.info("request 0x%s settled in tx 0x%s%s", outcome.request_id.hex()[:12], tx_hash[:12], note)
                elif outcome.kind == "skipped-settled":
                    self.journal.set_state([outcome.request_id], State.SETTLED, error="already settled on-chain")
                elif outcome.kind == "skipped-expired":
                    self.journal.set_state([outcome.request_id], State.SIGNED, error="expired before settlement")

    def _sweep(self, now: int) -> None:
        """Cancels requests past their deadline so the consumer's fee is refunded."""
        for entry in self.journal.entries(*ACTIVE_STATES, State.FAILED):
            if entry.request.deadline >= now or entry.state == State.SUBMITTED:
                continue
            rid = entry.request.request_id
            if rid in self._running:
                continue
            self._retry.pop(rid, None)  # past its deadline: no more attempts
            try:
                receipt = self.submitter.sender.wait(self.submitter.send_cancel(entry.request))
            except ChainError as exc:
                log.info("cancel of 0x%s not sent (%s): asking the chain", rid.hex()[:12], exc)
                self._reconcile(rid)
                continue
            if receipt["status"] == 1:
                self.journal.set_state([rid], State.EXPIRED)
                log.info("request 0x%s expired: fee refunded to the consumer", rid.hex()[:12])

    def _reconcile(self, rid: bytes) -> None:
        """Sets a request's state from the chain's view of it."""
        state = RequestState(self.coprocessor.functions.requestState(rid).call())
        if state == RequestState.FULFILLED:
            self.journal.set_state([rid], State.SETTLED)
        elif state == RequestState.CANCELLED:
            self.journal.set_state([rid], State.EXPIRED)
        else:
            entry = self.journal.get(rid)
            if entry is not None and entry.state == State.SUBMITTED:
                self.journal.set_state([rid], State.SIGNED)
