"""The node: intake -> journal -> enclave runs -> submitter, each stage its own thread.

New heads arrive over a websocket subscription (polling where the RPC has none) and wake the
intake, which records requests and settlements in the journal. The journal is the queue between
stages: the dispatcher claims what is seen, a bounded pool of enclave runs signs it, and the
submitter sends what is signed. Memory stays bounded whatever the backlog; the journal on disk
holds the rest. Processing is at-least-once (a crash re-runs what was in flight); settlement is
exactly-once because the Coprocessor skips a request that is already settled.

Several nodes can share one PostgreSQL journal: each renews a lease (the `lease` thread), the
leader among them scans the chain, and all of them claim, run and send (`journal.py`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from web3 import Web3

from coprocessor_enclave.enclave import SignedResult
from coprocessor_enclave.protocol import RequestState, fulfillment_signature

from ..attest.registration import KeyKeeper
from ..chain import TxSender, contract
from ..config import NodeConfig as NodeConfig  # re-exported: its home is light, for the command line
from ..errors import EnclaveError, EnclaveUnreachable
from .enclave_client import EnclaveClient
from .heads import HeadSource, ws_url_for
from .journal import Entry, Journal, LeaseLost, NotLeading, State
from .listener import Listener
from .metrics import NodeMetrics
from .schedules import SubscriptionScheduler
from .submitter import InFlight, Submitter, SubmitterConfig

log = logging.getLogger(__name__)

_MAX_RETRY_DELAY = 60.0  # seconds between retries of a request the enclave could not run
_ERROR_PAUSE = 0.5  # seconds a stage waits after an RPC or journal error before trying again
# Claimed requests one enclave call carries at most (each answered as it ends): one HTTP exchange
# for several runs under load, one run when idle.
_RUNS_PER_CALL = 4


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
        config: NodeConfig = NodeConfig(),  # noqa: B008 - frozen: one shared default is safe
        keeper: KeyKeeper | None = None,
        metrics: NodeMetrics | None = None,
        subscriptions: str | None = None,
    ) -> None:
        self.w3 = w3
        self.keeper = keeper
        self.journal = journal
        self.enclave = enclave
        self.config = config
        self.metrics = metrics or NodeMetrics(journal)
        self.coprocessor = contract(w3, "Coprocessor", coprocessor)
        self.listener = Listener(w3, journal, coprocessor, start_block, config.confirmations, reorg_depth=config.reorg_depth)
        self.submitter = Submitter(
            sender,
            coprocessor,
            journal,
            SubmitterConfig(
                max_batch=config.max_batch,
                gas_budget=config.gas_budget,
                max_in_flight=config.max_in_flight,
                batch_wait=config.batch_wait,
                backlog_batch_wait=config.backlog_batch_wait,
                fence_margin=journal.lease_seconds / 3,
            ),
            request_state=self._request_state,
            on_receipt=self._on_receipt,
            more_coming=self._enclave_busy,
            behind=lambda: self._behind,
        )
        ws_url = config.ws_url
        if ws_url == "":
            endpoint = getattr(w3.provider, "endpoint_uri", None)
            ws_url = ws_url_for(str(endpoint)) if endpoint else None
        self.heads = HeadSource(w3, ws_url, config.poll_interval)
        # Scheduled jobs (docs/triggers.md): the leader triggers due runs; each then comes back as a request.
        self.scheduler = SubscriptionScheduler(w3, subscriptions, coprocessor) if subscriptions else None
        if self.scheduler is not None:
            self.submitter.cancel_call = self.scheduler.reclaim_call  # an expired run's fee goes back to its budget
        self._work: queue.Queue[Entry | None] = queue.Queue()
        self._solo: set[bytes] = set()  # commitments whose call was refused whole: each goes alone next
        self._busy = 0  # claimed and not yet finished; at most 2 x concurrency
        self._behind = False  # the last claim found as many requests as it had room for: more wait
        self._busy_lock = threading.Lock()
        self._dispatch_wake = threading.Event()
        self._submit_wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.lease_lost: LeaseLost | None = None  # why the node stopped, if other nodes took over its work
        self._secrets_pushed: dict[tuple[bytes, str], bytes] = {}  # what the enclave holds: (template, name) -> sealed
        self._enclave_address = ""  # the enclave key they were handed to: another one is a restarted enclave

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> None:
        """After a restart: re-run what was running; adopt or resend what was submitted and not yet mined."""
        running = self.journal.requeue_running()
        for tx_hash, commitments in self.journal.unconfirmed().items():
            self.submitter.adopt(bytes.fromhex(tx_hash), commitments)
        if running:
            log.info("recovered %d requests that were running when the node stopped", running)

    def run(self) -> None:
        """Serves until `stop()`, or until its lease is lost (`lease_lost` says so)."""
        self.journal.join()
        self.journal.heartbeat()
        self._push_secrets()
        self.recover()
        scheduler = self._start_key_checks()
        self.heads.start()
        stages = [("lease", self._lease_loop), ("intake", self._intake_loop), ("dispatch", self._dispatch_loop)]
        stages += [("submit", self._submit_loop), ("secrets", self._secrets_loop)]
        stages += [(f"enclave-{i}", self._enclave_loop) for i in range(self.config.concurrency)]
        self._threads = [threading.Thread(target=fn, name=f"node-{name}", daemon=True) for name, fn in stages]
        for thread in self._threads:
            thread.start()
        self._stop.wait()
        self.heads.stop()
        for _ in range(self.config.concurrency):
            self._work.put(None)
        self._dispatch_wake.set()
        self._submit_wake.set()
        for thread in self._threads:
            thread.join(5)
        if scheduler is not None:
            scheduler.shutdown(wait=False)

    def stop(self) -> None:
        """Asks `run` to return once every stage has finished its current step."""
        self._stop.set()

    @property
    def usable(self) -> bool:
        """A revoked or expired key stops being used at once; requests wait (or expire and are refunded)."""
        return self.keeper is None or self.keeper.problem is None

    def _start_key_checks(self) -> BackgroundScheduler | None:
        """Checks the enclave key now, then on a schedule (renewing it before it expires)."""
        if self.keeper is None:
            return None
        self._check_key()
        scheduler = BackgroundScheduler()
        scheduler.add_job(self._check_key, "interval", seconds=self.config.key_check_interval, max_instances=1, coalesce=True)
        scheduler.start()
        return scheduler

    def _check_key(self) -> None:
        assert self.keeper is not None
        try:
            self.keeper.check()
        except Exception as exc:  # RPC or enclave down: keep the last verdict, try again next time
            log.warning("enclave key check failed: %s", exc)
        self.metrics.key_active.set(1 if self.usable else 0)

    # ------------------------------------------------------------------ stages

    def _lease_loop(self) -> None:
        """Renews the node's lease (a third of its length apart), frees the work of nodes that stopped
        renewing theirs, and takes the leader's lease when it is free."""
        interval = self.journal.lease_seconds / 3
        while not self._stop.wait(interval):
            try:
                was_leading = self.journal.leading
                if self.journal.heartbeat():
                    self._dispatch_wake.set()  # released work is claimable now
                    self._submit_wake.set()
                if self.journal.leading != was_leading:
                    log.info("node %s %s the chain", self.journal.node_id, "now scans" if self.journal.leading else "no longer scans")
            except LeaseLost as exc:
                self._lose_lease(exc)
            except Exception as exc:  # the database is down: the lease may run out, and sends stop (`fence`)
                log.warning("lease renewal failed, retrying: %s", exc)
                self.metrics.errors.labels("lease").inc()

    def _secrets_loop(self) -> None:
        """Hands the enclave sealed secrets as they are stored; its own thread, so a slow enclave never
        delays a heartbeat."""
        while not self._stop.wait(self.journal.lease_seconds / 3):
            self._push_secrets()

    def _push_secrets(self) -> None:
        """Hands the enclave every sealed secret it does not hold yet, or holds an older envelope of
        (`coprocessor secrets put`); compared by content, so no clock orders them."""
        try:
            stored = self.journal.secrets_since(0.0)
            # A restarted enclave holds none of them (and has a new key): hand every one over again.
            address = str(self.enclave.info()["address"]) if stored else self._enclave_address
        except Exception as exc:
            log.warning("reading sealed secrets failed, retrying: %s", exc)
            return
        if address != self._enclave_address:
            self._enclave_address, self._secrets_pushed = address, {}
        for template_id, name, sealed, _ in stored:
            if self._secrets_pushed.get((template_id, name)) == sealed:
                continue
            try:
                self.enclave.put_sealed_secret(template_id, name, sealed)
                log.info("sealed secret %s of template 0x%s handed to the enclave", name, template_id.hex()[:12])
            except EnclaveUnreachable as exc:
                log.warning("enclave unreachable while handing it sealed secrets, retrying: %s", exc)
                return
            except EnclaveError as exc:  # sealed for another template, chain or epoch: it will never open here
                log.error("sealed secret %s of template 0x%s refused by the enclave: %s", name, template_id.hex()[:12], exc)
            self._secrets_pushed[(template_id, name)] = sealed

    def _lose_lease(self, exc: LeaseLost) -> None:
        log.error("%s: stopping (restart the node to rejoin)", exc)
        self.lease_lost = exc
        self.stop()

    def _intake_loop(self) -> None:
        """On every new head: scan its logs into the journal (if this node leads), then wake the other stages."""
        version = -1
        while not self._stop.is_set():
            version = self.heads.wait(version, timeout=1.0)
            head = self.heads.latest
            if self._stop.is_set() or head is None:
                continue
            if not self.journal.leading:  # another node scans: what it records may be claimable now
                self._dispatch_wake.set()
                self._submit_wake.set()
                continue
            started = time.monotonic()
            try:
                found = self.listener.poll(head)
            except NotLeading as exc:
                log.info("%s", exc)
                continue
            except LeaseLost as exc:
                self._lose_lease(exc)
                continue
            except Exception as exc:  # RPC outage or a transport error of any type: keep serving
                log.warning("intake failed, retrying: %s", exc)
                self.metrics.errors.labels("intake").inc()
                self._stop.wait(_ERROR_PAUSE)
                continue
            self.metrics.stage_seconds.labels("intake").observe(time.monotonic() - started)
            self.metrics.head.set(head.number)
            if found:
                self._dispatch_wake.set()
            self._submit_wake.set()

    def _dispatch_loop(self) -> None:
        """Claims seen requests for the enclave runs, keeping at most 2 x concurrency claimed."""
        limit = 2 * self.config.concurrency
        while not self._stop.is_set():
            claimed: list[Entry] = []
            with self._busy_lock:
                room = limit - self._busy
            # Claimed a call's worth at a time while work is queued: one journal transaction, not one per run.
            if room < _RUNS_PER_CALL and not self._work.empty():
                room = 0
            if room > 0 and self.usable:
                try:
                    head = self.heads.latest
                    claimed = self.journal.claim(room, chain_time=head.timestamp if head else 0)
                except Exception as exc:
                    log.warning("claiming requests failed: %s", exc)
                    self._stop.wait(_ERROR_PAUSE)
                    continue
            if room > 0:
                self._behind = len(claimed) == room
            with self._busy_lock:
                self._busy += len(claimed)
            for entry in claimed:
                self.metrics.stage_seconds.labels("queued").observe(max(0.0, time.time() - entry.seen_at))
                self._work.put(entry)
            self.metrics.enclave_queue.set(self._work.qsize())
            if len(claimed) < room or room <= 0:
                # Without room a finishing run wakes it; a backed-off request matters only with room.
                self._dispatch_wake.wait(self._until_next_retry() if room > 0 else 1.0)
                self._dispatch_wake.clear()

    def _until_next_retry(self) -> float:
        try:
            next_retry = self.journal.next_retry()
        except Exception as exc:  # the dispatcher must outlive a journal error: it tries again within a second
            log.warning("reading the next retry time failed: %s", exc)
            next_retry = None
        return 1.0 if next_retry is None else min(1.0, max(0.01, next_retry - time.time()))

    def _enclave_loop(self) -> None:
        """Runs claimed requests in the enclave, a few per call, and journals each response as it comes."""
        while True:
            batch = self._take_work()
            if not batch:
                return
            started = time.monotonic()
            pending = dict(enumerate(batch))
            try:
                for index, outcome in self.enclave.run_many([(e.request, e.input) for e in batch]):
                    entry = pending.pop(index, None)
                    if entry is not None:
                        self._finish_run(entry, outcome, started)
            except EnclaveUnreachable as exc:  # the call broke (an outage): the rest again later
                for entry in pending.values():
                    self._finish_run(entry, exc, started)
                pending = {}
            except EnclaveError as exc:  # the call was refused whole: one bad run must not take the others down
                if len(pending) > 1:
                    log.warning("the enclave refused a call of %d runs (%s): sending each alone", len(pending), exc)
                    self._solo.update(e.commitment for e in pending.values())
                    for entry in pending.values():
                        self._work.put(entry)
                else:
                    for entry in pending.values():
                        self._finish_run(entry, exc, started)
                pending = {}
            for entry in pending.values():  # not answered at all: as unreachable
                self._finish_run(entry, EnclaveUnreachable("the enclave did not answer this run"), started)

    def _finish_run(self, entry: Entry, outcome: SignedResult | EnclaveError, started: float) -> None:
        """Journals a run's outcome and frees its slot; wakes the submitter after, if it signed."""
        signed = False
        try:
            signed = self._record_run(entry, outcome, started)
        except Exception as exc:  # the journal failed: the claim is redone after a restart
            log.exception("enclave stage failed on 0x%s: %s", entry.request.request_id.hex()[:12], exc)
        with self._busy_lock:
            self._busy -= 1
            idle = self._busy == 0
        self._dispatch_wake.set()
        # After `_busy` is down: the submitter holds a partial batch only while others run. While it holds
        # one it wakes at the end of the hold by itself; a wake per response would only recount.
        if signed and (idle or time.monotonic() >= self.submitter.hold_until):
            self._submit_wake.set()

    def _take_work(self) -> list[Entry]:
        """The next claimed request (waiting for one) and up to `_RUNS_PER_CALL - 1` more already queued; [] to stop."""
        first = self._work.get()
        if first is None:
            return []
        batch = [first]
        while len(batch) < _RUNS_PER_CALL and first.commitment not in self._solo:
            try:
                entry = self._work.get_nowait()
            except queue.Empty:
                break
            if entry is None or entry.commitment in self._solo:
                self._work.put(entry)  # a stop marker is another thread's; a run refused in company goes alone
                break
            batch.append(entry)
        for entry in batch:
            self._solo.discard(entry.commitment)
        return batch

    def _enclave_busy(self) -> bool:
        with self._busy_lock:
            return self._busy > 0

    def _record_run(self, entry: Entry, outcome: SignedResult | EnclaveError, started: float) -> bool:
        """Journals one enclave run's outcome; whether a signed response was."""
        rid = entry.request.request_id.hex()[:12]
        if isinstance(outcome, EnclaveUnreachable):
            # Try again, backing off: the enclave (or the chain RPC it reads) may be down for a while.
            delay = min(_MAX_RETRY_DELAY, 0.5 * 2 ** (entry.attempts + 1))
            self.journal.retry_later(entry, delay, str(outcome))
            self.metrics.errors.labels("enclave-unreachable").inc()
            log.warning("request 0x%s: %s (attempt %d, retrying in %.1f s)", rid, outcome, entry.attempts + 1, delay)
            return False
        if isinstance(outcome, EnclaveError):
            # The enclave refuses to sign (e.g. input does not match the commitment): the request cannot be
            # answered, so it is cancelled and refunded after its deadline.
            self.journal.finish(entry.commitment, State.FAILED, error=str(outcome), expect=(State.RUNNING,))
            self.metrics.errors.labels("enclave-refused").inc()
            log.error("request 0x%s refused by the enclave: %s", rid, outcome)
            return False
        result = outcome
        self.metrics.stage_seconds.labels("enclave").observe(time.monotonic() - started)
        if not self.journal.signed(entry, result.status, result.output, fulfillment_signature(result.signature, result.calls)):
            return False
        if result.status == 0:  # its "settled" line follows; under load a line per stage costs the node a tenth of its time
            log.debug("request 0x%s signed: Ok", rid)
        else:
            log.info("request 0x%s signed: %s (%s)", rid, result.status.name, result.output[:200].decode("utf-8", "replace"))
        return True

    def _submit_loop(self) -> None:
        """Sends what is signed, tracks what is in flight, cancels what expired."""
        last_sweep = last_track = 0.0
        tracked_version = reorgs_seen = scheduled_version = -1
        while not self._stop.is_set():
            timeout = 0.25 if self.submitter.in_flight else 1.0
            held = self.submitter.hold_until - time.monotonic()  # a partial batch waiting for responses being made
            self._submit_wake.wait(min(timeout, held) if held > 0 else timeout)
            self._submit_wake.clear()
            head_version = self.heads.version  # read first: `head` is then at least as new as the version noted
            head = self.heads.latest
            if self._stop.is_set() or head is None:
                continue
            try:
                # Transactions in flight change only with a new block (or by being dropped, checked on a timer),
                # so a wake-up by a signed response does not ask the chain about them again.
                if self.listener.reorgs != reorgs_seen:
                    reorgs_seen = self.listener.reorgs
                    self.submitter.forget_floor()
                if self.heads.version != tracked_version or time.monotonic() - last_track >= 0.25:
                    tracked_version, last_track = self.heads.version, time.monotonic()
                    self.submitter.track()
                if self.usable:
                    while self.submitter.send_ready(head.timestamp, head.base_fee):
                        pass
                scheduler = self.scheduler
                if scheduler is not None and self.journal.leading and self.usable:
                    # Due-ness changes with time: looked at once per head, again within a second while a due run
                    # could not be sent (an RPC error, say), and when the clock passes the next due time (an idle
                    # chain brings no new head; its next block will carry the clock's time).
                    now = max(head.timestamp, int(time.time()))
                    if head_version != scheduled_version or now >= scheduler.next_due:
                        scheduled_version = head_version if self._trigger_due(now, head.base_fee) else -1
                if time.monotonic() - last_sweep >= self.config.sweep_interval:
                    last_sweep = time.monotonic()
                    self.submitter.cancel_expired(head.timestamp, head.base_fee)
            except LeaseLost as exc:
                self._lose_lease(exc)
            except Exception as exc:  # RPC outage or a transport error of any type: keep serving
                log.warning("submitter step failed, retrying: %s", exc)
                self.metrics.errors.labels("submit").inc()
                self._stop.wait(_ERROR_PAUSE)
            self.metrics.in_flight.set(len(self.submitter.in_flight))

    def _trigger_due(self, chain_time: int, base_fee: int) -> bool:
        """Sends `trigger` for every subscription run due at `chain_time` (this node leads); whether all went out."""
        assert self.scheduler is not None
        all_sent = True
        for sub_id, run_index in self.scheduler.due(chain_time):
            if self.submitter.send_call("trigger", self.scheduler.address, self.scheduler.trigger_data(sub_id), base_fee):
                self.scheduler.sent(sub_id, run_index)
                log.info("subscription %d: run %d triggered", sub_id, run_index)
            else:
                all_sent = False
        return all_sent

    # ------------------------------------------------------------------ callbacks

    def _request_state(self, request_id: bytes) -> RequestState:
        return RequestState(self.coprocessor.functions.requestState(request_id).call())

    def _on_receipt(self, sent: InFlight, receipt: Any) -> None:
        """Logs each request a mined transaction settled, and records its cost."""
        self.metrics.stage_seconds.labels("mined").observe(time.monotonic() - sent.sent_at)
        if sent.kind != "fulfill":
            for rid in sent.request_ids:
                log.info("request 0x%s expired: cancel mined, fee refunded to the consumer", rid.hex()[:12])
            return
        self.metrics.batch_size.observe(len(sent.items))
        self.metrics.gas_per_item.observe(receipt["gasUsed"] / max(1, len(sent.items)))
        tx_hash = bytes(receipt["transactionHash"]).hex()
        for outcome in self.submitter.outcomes(receipt):
            short = outcome.request_id.hex()[:12]
            if outcome.kind == "fulfilled":
                note = "" if outcome.callback_succeeded else " (consumer callback reverted)"
                log.info("request 0x%s settled in tx 0x%s%s", short, tx_hash[:12], note)
            elif outcome.kind == "skipped-settled":
                log.info("request 0x%s was already settled on-chain", short)
            else:
                log.warning("request 0x%s expired before its fulfilment was mined: it will be cancelled", short)
