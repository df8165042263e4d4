"""The node's durable memory: every request it saw, keyed by commitment, its state, and the listener's cursor.

Every method is one transaction, so a crash never leaves half a change, and every state change names
the state it expects, so two stages racing on one request cannot undo each other.

One node uses an embedded SQLite file; several nodes serving one deployment share a PostgreSQL
database (`databases.py`). Then each node holds a lease, renewed by its heartbeat: work it took
(claimed, signed, sent) carries its id, and when its lease runs out another node releases that work
and finishes it. A node checks its lease (its fencing epoch) before every transaction it sends, so
one that stalled past its lease cannot send. One node at a time, the leader, scans the chain into
the journal. The chain stays the final arbiter: an item settled by another node's transaction is
skipped on-chain and recorded as settled.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from coprocessor_enclave.protocol import Request, Status

from ..errors import CoprocessorError
from .databases import Database, Execute, connect_database, redacted

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
# How long a node's claim on its work outlives its last heartbeat (seconds). Nodes' clocks must agree
# to well within this (NTP does).
DEFAULT_LEASE_SECONDS = 10.0


class LeaseLost(CoprocessorError, RuntimeError):
    """This node's lease ran out and other nodes took over its work: it must not send, and stops."""


class State(enum.StrEnum):
    """A request's life in the node. Terminal: settled, expired, dropped."""

    SEEN = "seen"  # on-chain, waiting for an enclave run
    RUNNING = "running"  # claimed by an enclave run
    SIGNED = "signed"  # the enclave signed a response; waiting to be sent
    SUBMITTED = "submitted"  # in a fulfil (or cancel) transaction that is pending or mined, not yet confirmed
    SETTLED = "settled"  # the chain's RequestFulfilled log was seen in a canonical block
    EXPIRED = "expired"  # the chain's RequestCancelled log was seen: the fee went back to the consumer
    FAILED = "failed"  # the enclave refused to sign; waits for its deadline, then is cancelled
    DROPPED = "dropped"  # nothing more can be done (reconciled against the chain once); see `error`


ACTIVE_STATES = (State.SEEN, State.RUNNING, State.SIGNED, State.SUBMITTED)
TERMINAL_STATES = (State.SETTLED, State.EXPIRED, State.DROPPED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    commitment    TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL,
    block_number  {int} NOT NULL,
    deadline      {int} NOT NULL,
    request       TEXT NOT NULL,
    input         {blob} NOT NULL,
    state         TEXT NOT NULL,
    status        {int},
    output        {blob},
    signature     {blob},
    tx_hash       TEXT,
    mined_block   {int},
    settled_block {int},
    attempts      {int} NOT NULL DEFAULT 0,
    retry_at      {real} NOT NULL DEFAULT 0,
    error         TEXT,
    seen_at       {real} NOT NULL,
    updated_at    {real} NOT NULL,
    owner         TEXT
);
CREATE INDEX IF NOT EXISTS requests_queue ON requests (state, block_number, seen_at);
CREATE INDEX IF NOT EXISTS requests_id ON requests (request_id);
CREATE INDEX IF NOT EXISTS requests_owner ON requests (owner) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_deadline ON requests (deadline) WHERE state IN ('seen', 'signed', 'failed');
CREATE INDEX IF NOT EXISTS requests_retry ON requests (retry_at) WHERE state = 'seen' AND retry_at > 0;
CREATE TABLE IF NOT EXISTS cursor (
    id         {int} PRIMARY KEY CHECK (id = 1),
    block      {int} NOT NULL,
    block_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    number {int} PRIMARY KEY,
    hash   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    node_id     TEXT PRIMARY KEY,
    epoch       {int} NOT NULL,
    lease_until {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
    template_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    sealed      {blob} NOT NULL,
    updated_at  {real} NOT NULL,
    PRIMARY KEY (template_id, name)
);
CREATE TABLE IF NOT EXISTS leader (
    id          {int} PRIMARY KEY CHECK (id = 1),
    node_id     TEXT NOT NULL,
    epoch       {int} NOT NULL,
    lease_until {real} NOT NULL
);
"""
_TABLES = ("requests", "cursor", "blocks", "nodes", "leader", "secrets", "meta")

_COLUMNS = "request, input, block_number, state, status, output, signature, tx_hash, error, seen_at, attempts, updated_at, commitment"


@dataclass(frozen=True)
class Entry:
    """One journalled request."""

    request: Request
    input: bytes
    block_number: int
    state: State
    status: Status | None
    output: bytes | None
    signature: bytes | None
    tx_hash: str | None
    error: str | None
    seen_at: float
    attempts: int
    updated_at: float
    commitment: bytes  # the request's on-chain commitment: what identifies it (an id can be reused after a reorg)


@dataclass(frozen=True)
class Settlement:
    """A `RequestFulfilled` or `RequestCancelled` log: how the chain closed a request."""

    request_id: bytes
    block_number: int
    tx_hash: str
    cancelled: bool


class NotLeading(CoprocessorError, RuntimeError):
    """Another node leads: only the leader writes what it read from the chain."""


# A node's own work, or work no node holds: what this node may change.
_MINE = "(owner IS NULL OR owner = ?)"


class Journal:
    """A journal: a SQLite file for one node, or a PostgreSQL database (a `postgresql://` URL) for several.

    Every node sharing one needs its own `node_id` (the node uses its account's address). A journal
    that never `join`s (a reader, or a unit under test) takes no lease and checks none.
    """

    def __init__(
        self, target: Path | str, node_id: str = "node", lease_seconds: float = DEFAULT_LEASE_SECONDS, partition: str | None = None
    ) -> None:
        self.target = target
        self.partition = partition  # one chain's part of a journal shared by the chains a node serves
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.epoch = 0  # this node's fencing epoch, from `join`; 0: not joined, no lease checked
        self.leading = False  # whether this node held the leader's lease at its last heartbeat
        self.db: Database = connect_database(target, partition)
        self._lease_db: Database | None = None  # a connection of its own: a heartbeat never queues behind the work
        self._migrate()

    @property
    def kind(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.db.kind

    def _migrate(self) -> None:
        """Creates the schema; a journal of another layout is set aside, and the chain re-derives it."""
        statements = [text.strip() for text in _SCHEMA.format(**self.db.types).split(";") if text.strip()]

        def body(ex: Execute) -> None:
            if self.db.migration_lock:  # nodes starting together must not create the tables twice
                ex(self.db.migration_lock, ())
            tables = {row[0] for row in ex(self.db.tables_query, ()).rows}
            if "requests" in tables:
                version = ex("SELECT value FROM meta WHERE name = 'schema'", ()).rows if "meta" in tables else []
                if not version or version[0][0] != str(SCHEMA_VERSION):
                    if self.db.kind != "sqlite":  # shared: other nodes may run on it, and its sealed secrets are not on-chain
                        raise CoprocessorError(
                            f"journal {redacted(self.target)} has layout {version[0][0] if version else 'unknown'}, this node needs"
                            f" {SCHEMA_VERSION}: run every node of one version, or point them at a new database"
                        )
                    log.warning(
                        "journal %s has another layout: rescanning the chain to rebuild it (sealed secrets in it must be put again)",
                        redacted(self.target),
                    )
                    for table in _TABLES:
                        ex(f"DROP TABLE IF EXISTS {table}", ())
            for statement in statements:
                ex(statement, ())
            ex(
                "INSERT INTO meta (name, value) VALUES ('schema', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

        self.db.atomic(body)

    def _tx(self, statements: Iterable[tuple[str, Sequence[object]]]) -> list[int]:
        """Runs `statements` in one transaction, if this node still holds its epoch; returns each one's row count."""
        listed = list(statements)

        def body(ex: Execute) -> list[int]:
            self._fenced(ex)
            return [ex(sql, params).count for sql, params in listed]

        return self.db.atomic(body)

    def _fenced(self, ex: Execute) -> None:
        """Inside a transaction: `LeaseLost` unless this node's epoch still stands (when it joined). On PostgreSQL
        the row is share-locked, so a release by another node commits wholly before or after this transaction."""
        if not self.epoch:
            return
        rows = ex(f"SELECT epoch FROM nodes WHERE node_id = ?{self.db.share_lock}", (self.node_id,)).rows
        if not rows or int(rows[0][0]) != self.epoch:
            raise LeaseLost(f"node {self.node_id}: its lease ran out and other nodes took over its work")

    def _select(self, where: str, params: Sequence[object], limit: int | None = None) -> list[Entry]:
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = self.db.query(f"SELECT {_COLUMNS} FROM requests WHERE {where} ORDER BY block_number, seen_at{tail}", params)
        return [_entry(row) for row in rows]

    def _take(self, where: str, params: Sequence[object], limit: int, **assign: object) -> list[Entry]:
        """Selects up to `limit` rows, oldest first, passing over rows another node is taking, and sets
        `assign` (and this node as owner) on them, in one transaction."""
        fields = {"owner": self.node_id, **assign}

        def body(ex: Execute) -> list[Entry]:
            self._fenced(ex)  # a node that was released takes nothing back
            rows = ex(
                f"SELECT {_COLUMNS} FROM requests WHERE {where} ORDER BY block_number, seen_at LIMIT ?{self.db.skip_locked}",
                (*params, int(limit)),
            ).rows
            if rows:
                sets = ", ".join(f"{name} = ?" for name in fields)
                ex(f"UPDATE requests SET {sets} WHERE commitment IN ({_marks(rows)})", (*fields.values(), *[row[-1] for row in rows]))
            return [_entry(row) for row in rows]

        taken = self.db.atomic(body)
        state = assign.get("state")
        return [replace(e, state=State(state)) for e in taken] if isinstance(state, str) else taken

    # ------------------------------------------------------------------ leases: several nodes, one journal

    def join(self) -> int:
        """Starts this node's lease under a new fencing epoch (any earlier life of it is fenced off)."""
        until = time.time() + self.lease_seconds
        if self._lease_db is None:
            self._lease_db = connect_database(self.target, self.partition)
        rows = self._lease_db.atomic(
            lambda ex: ex(
                "INSERT INTO nodes (node_id, epoch, lease_until) VALUES (?, 1, ?)"
                " ON CONFLICT(node_id) DO UPDATE SET epoch = nodes.epoch + 1, lease_until = excluded.lease_until RETURNING epoch",
                (self.node_id, until),
            ).rows
        )
        self.epoch = int(rows[0][0])
        return self.epoch

    def heartbeat(self) -> list[str]:
        """Renews this node's lease; releases the work of every node whose lease ran out (returned), for
        any node to finish; takes the leader's lease if it is free. Raises `LeaseLost` if this node was
        itself released: its work is another's now, so it must stop."""
        now = time.time()
        until = now + self.lease_seconds
        me = (self.node_id, self.epoch)

        def body(ex: Execute) -> tuple[list[str], bool]:
            if ex("UPDATE nodes SET lease_until = ? WHERE node_id = ? AND epoch = ?", (until, *me)).count != 1:
                raise LeaseLost(f"node {self.node_id}: its lease ran out and other nodes took over its work")
            # The leader's row first, then requests: the order a leader's own writes take them in (no deadlock).
            # A restarted node takes its own earlier life's lead at once; that life is fenced off by its epoch.
            leads = ex(
                "UPDATE leader SET node_id = ?, epoch = ?, lease_until = ? WHERE id = 1 AND (node_id = ? OR lease_until < ?)",
                (*me, until, self.node_id, now),
            ).count
            if not leads:
                leads = ex(
                    "INSERT INTO leader (id, node_id, epoch, lease_until) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO NOTHING", (*me, until)
                ).count
            dead = [str(row[0]) for row in ex(
                "UPDATE nodes SET epoch = epoch + 1, lease_until = 0 WHERE lease_until > 0 AND lease_until < ? RETURNING node_id", (now,)
            ).rows]  # fmt: skip
            # Released nodes included (lease 0): whatever still carries their id is freed, whoever wrote it.
            for (node,) in ex("SELECT node_id FROM nodes WHERE lease_until < ?", (now,)).rows:
                _release(ex, str(node), now)
            return dead, leads == 1

        if not self.epoch or self._lease_db is None:
            raise LeaseLost(f"node {self.node_id} has not joined the journal")
        dead, self.leading = self._lease_db.atomic(body)
        for node in dead:
            log.warning("node %s stopped renewing its lease: its unfinished work is released to the others", node)
        return dead

    def fence(self, margin: float) -> bool:
        """Whether this node may send a transaction now: its lease holds, under its epoch, for `margin`
        more seconds. Checked before every send, so a node that stalled past its lease cannot send.
        False while a late heartbeat has yet to renew it; `LeaseLost` once other nodes took its work."""
        if not self.epoch or self._lease_db is None:
            return True
        rows = self._lease_db.query("SELECT epoch, lease_until FROM nodes WHERE node_id = ?", (self.node_id,))
        if not rows or int(rows[0][0]) != self.epoch:
            raise LeaseLost(f"node {self.node_id}: its lease ran out and other nodes took over its work")
        return float(rows[0][1]) >= time.time() + margin

    def nodes(self) -> list[tuple[str, int, float]]:
        """Every node that joined: id, fencing epoch, lease end (0: released)."""
        return [(str(n), int(e), float(u)) for n, e, u in self.db.query("SELECT node_id, epoch, lease_until FROM nodes ORDER BY node_id")]

    def _check_leader(self, ex: Execute) -> None:
        """Inside a transaction: `NotLeading` unless this node holds the leader's lease, now, under its epoch (both
        rows share-locked on PostgreSQL, so a handover cannot commit in the middle of the listener's writes)."""
        if not self.epoch:
            return
        self._fenced(ex)
        held = ex(
            f"SELECT 1 FROM leader WHERE id = 1 AND node_id = ? AND epoch = ? AND lease_until > ?{self.db.share_lock}",
            (self.node_id, self.epoch, time.time()),
        ).rows
        if not held:
            self.leading = False
            raise NotLeading(f"node {self.node_id} no longer leads: another node scans the chain")

    # ------------------------------------------------------------------ the listener's side

    def cursor(self) -> tuple[int, str] | None:
        """The last block the listener fully processed, with its hash."""
        rows = self.db.query("SELECT block, block_hash FROM cursor WHERE id = 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def known_blocks(self) -> list[tuple[int, str]]:
        """Hashes of recent blocks the journal rests on, highest first (to find a fork point)."""
        return [(int(n), str(h)) for n, h in self.db.query("SELECT number, hash FROM blocks ORDER BY number DESC")]

    def record(
        self,
        seen: Sequence[tuple[Request, bytes, int]],
        settled: Sequence[Settlement],
        block: int,
        block_hash: str,
        blocks: Iterable[tuple[int, str]] = (),
        keep_blocks: int = 256,
    ) -> None:
        """Adds new requests, applies the chain's settlements and advances the cursor, atomically.

        Re-seeing a request is a no-op. A request whose id is already journalled under another
        commitment replaces it: the old one rested on blocks a reorg removed. A request still
        `submitted` in a transaction mined at or below `block` whose settlement never appeared was
        mined in a block the chain dropped: it goes back to `signed`.
        """
        now = time.time()
        statements: list[tuple[str, Sequence[object]]] = []
        for request, data, number in seen:
            commitment, rid = request.commitment().hex(), request.request_id.hex()
            statements.append(("DELETE FROM requests WHERE request_id = ? AND commitment != ?", (rid, commitment)))
            statements.append(
                (
                    "INSERT INTO requests (commitment, request_id, block_number, deadline, request, input, state, seen_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(commitment) DO NOTHING",
                    (commitment, rid, number, request.deadline, json.dumps(request.to_json()), data, State.SEEN.value, now, now),
                )
            )
        for s in settled:
            final, closed = (State.EXPIRED, (State.SETTLED, State.EXPIRED)) if s.cancelled else (State.SETTLED, (State.SETTLED,))
            statements.append(
                (
                    "UPDATE requests SET state = ?, settled_block = ?, tx_hash = ?, updated_at = ?"
                    f" WHERE request_id = ? AND block_number <= ? AND state NOT IN ({_marks(closed)})",
                    (final.value, s.block_number, s.tx_hash, now, s.request_id.hex(), s.block_number, *[c.value for c in closed]),
                )
            )
        statements.append(
            (
                "UPDATE requests SET state = CASE WHEN signature IS NULL THEN ? ELSE ? END, tx_hash = NULL,"
                " mined_block = NULL, updated_at = ?, error = 'its transaction was mined in a block the chain dropped'"
                " WHERE state = ? AND mined_block IS NOT NULL AND mined_block <= ?",
                (State.FAILED.value, State.SIGNED.value, now, State.SUBMITTED.value, block),
            )
        )
        statements.append(_set_cursor(block, block_hash))
        for number, hash_ in [*blocks, (block, block_hash)]:
            statements.append(
                ("INSERT INTO blocks (number, hash) VALUES (?, ?) ON CONFLICT(number) DO UPDATE SET hash = excluded.hash", (number, hash_))
            )
        statements.append(("DELETE FROM blocks WHERE number < ?", (block - keep_blocks,)))
        self._leader_tx(statements)

    def rewind(self, block: int, block_hash: str) -> int:
        """After a reorg whose fork point is `block`: forgets requests above it, and sends back every state
        that rested on a removed block (settled, expired, mined) to be re-derived. Returns how many changed."""
        now = time.time()
        counts = self._leader_tx(
            [
                ("DELETE FROM requests WHERE block_number > ?", (block,)),
                (
                    "UPDATE requests SET state = CASE WHEN signature IS NULL THEN ? ELSE ? END,"
                    " settled_block = NULL, mined_block = NULL, tx_hash = NULL, updated_at = ?"
                    " WHERE settled_block > ? OR mined_block > ?",
                    (State.SEEN.value, State.SIGNED.value, now, block, block),
                ),
                ("DELETE FROM blocks WHERE number > ?", (block,)),
                _set_cursor(block, block_hash),
            ]
        )
        return counts[0] + counts[1]

    def reset(self) -> None:
        """Forgets everything: the listener rescans from its start block (the chain re-derives it all)."""
        self._leader_tx([("DELETE FROM requests", ()), ("DELETE FROM cursor", ()), ("DELETE FROM blocks", ())])

    def _leader_tx(self, statements: Sequence[tuple[str, Sequence[object]]]) -> list[int]:
        """Runs the listener's writes in one transaction, if this node still leads (when it joined)."""

        def body(ex: Execute) -> list[int]:
            self._check_leader(ex)
            return [ex(sql, params).count for sql, params in statements]

        return self.db.atomic(body)

    # ------------------------------------------------------------------ the enclave stage's side

    def claim(self, limit: int, now: float | None = None, chain_time: int = 0) -> list[Entry]:
        """Moves up to `limit` of the oldest `seen` requests whose retry time has come, and whose deadline has
        not passed at `chain_time` (those are cancelled instead), to `running`, owned by this node."""
        now = time.time() if now is None else now
        return self._take(
            "state = ? AND retry_at <= ? AND deadline >= ?",
            (State.SEEN.value, now, chain_time),
            limit,
            state=State.RUNNING.value,
            updated_at=now,
        )

    def requeue_running(self) -> int:
        """After a restart: every request this node had claimed goes back to `seen` (its run died with the node)."""
        (count,) = self._tx(
            [
                (
                    f"UPDATE requests SET state = ?, owner = NULL WHERE state = ? AND {_MINE}",
                    (State.SEEN.value, State.RUNNING.value, self.node_id),
                )
            ]
        )
        return count

    def next_retry(self) -> float | None:
        """When the earliest `seen` request waiting out a backoff may run (epoch seconds)."""
        # The partial index `requests_retry` (its condition spelled alike): not a walk over the backlog.
        rows = self.db.query(f"SELECT MIN(retry_at) FROM requests {self.db.retry_hint} WHERE state = 'seen' AND retry_at > 0")
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def signed(self, entry: Entry, status: Status, output: bytes, signature: bytes) -> bool:
        """Stores the enclave's response of a running request."""
        return self._move(
            entry.commitment, (State.RUNNING,), State.SIGNED, status=int(status), output=output, signature=signature, error=None
        )

    def retry_later(self, entry: Entry, delay: float, error: str) -> bool:
        """Puts a running request back to `seen`, for any node to claim again after `delay` seconds."""
        return self._move(
            entry.commitment,
            (State.RUNNING,),
            State.SEEN,
            retry_at=time.time() + delay,
            attempts=entry.attempts + 1,
            error=error,
            owner=None,
        )

    # ------------------------------------------------------------------ the submitter's side

    def ready(self, limit: int, chain_time: int = 0) -> list[Entry]:
        """Signed requests still within their deadline at `chain_time`, this node's or no node's, oldest
        first; taken by this node."""
        return self._take(f"state = ? AND deadline >= ? AND {_MINE}", (State.SIGNED.value, chain_time, self.node_id), limit)

    def count_ready(self, limit: int, chain_time: int = 0) -> int:
        """How many `ready` would return, without reading them (the submitter asks on every signed response)."""
        rows = self.db.query(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM requests WHERE state = ? AND deadline >= ? AND {_MINE} LIMIT ?) AS r",
            (State.SIGNED.value, chain_time, self.node_id, int(limit)),
        )
        return int(rows[0][0])

    def submitted(self, commitments: Iterable[bytes], tx_hash: str, cancelling: bool = False) -> None:
        """Marks requests as sent in `tx_hash`: signed ones in a fulfil, or any unfinished one in a cancel."""
        now = time.time()
        expect = (State.SEEN, State.SIGNED, State.FAILED) if cancelling else (State.SIGNED,)
        self._tx(
            (
                f"UPDATE requests SET state = ?, tx_hash = ?, mined_block = NULL, updated_at = ?, owner = ?"
                f" WHERE commitment = ? AND state IN ({_marks(expect)}) AND {_MINE}",
                (State.SUBMITTED.value, tx_hash, now, self.node_id, c.hex(), *[s.value for s in expect], self.node_id),
            )
            for c in commitments
        )

    def mined(self, commitments: Iterable[bytes], tx_hash: str, block: int) -> None:
        """Notes the block a sent transaction was mined in; the listener confirms or undoes it."""
        now = time.time()
        self._tx(
            (
                f"UPDATE requests SET tx_hash = ?, mined_block = ?, updated_at = ? WHERE commitment = ? AND state = ? AND {_MINE}",
                (tx_hash, block, now, c.hex(), State.SUBMITTED.value, self.node_id),
            )
            for c in commitments
        )

    def unsent(self, commitments: Iterable[bytes], error: str | None = None, attempt: bool = False) -> None:
        """Sends submitted requests back: to `signed` to be sent again (their transaction was dropped, replaced
        or reverted), or to `failed` if they have no response (it was a cancel: the sweep sends it again)."""
        now = time.time()
        bump = ", attempts = attempts + 1" if attempt else ""
        self._tx(
            (
                "UPDATE requests SET state = CASE WHEN signature IS NULL THEN ? ELSE ? END, tx_hash = NULL,"
                " mined_block = NULL, error = ?, updated_at = ?" + bump + f" WHERE commitment = ? AND state = ? AND {_MINE}",
                (State.FAILED.value, State.SIGNED.value, error, now, c.hex(), State.SUBMITTED.value, self.node_id),
            )
            for c in commitments
        )

    def unconfirmed(self) -> dict[str, list[bytes]]:
        """This node's submitted requests whose transaction was not seen mined, by transaction hash (after a restart)."""
        rows = self.db.query(
            f"SELECT tx_hash, commitment FROM requests WHERE state = ? AND mined_block IS NULL AND {_MINE}",
            (State.SUBMITTED.value, self.node_id),
        )
        found: dict[str, list[bytes]] = {}
        for tx_hash, commitment in rows:
            found.setdefault(tx_hash or "", []).append(bytes.fromhex(commitment))
        return found

    def expired_candidates(self, chain_time: int, limit: int = 64) -> list[Entry]:
        """Requests past their deadline at `chain_time` that nobody is working on, taken by this node to cancel."""
        states = (State.SEEN.value, State.SIGNED.value, State.FAILED.value)
        return self._take(f"deadline < ? AND state IN (?, ?, ?) AND {_MINE}", (chain_time, *states, self.node_id), limit)

    def finish(
        self, commitment: bytes, state: State, error: str | None = None, expect: Sequence[State] = (*ACTIVE_STATES, State.FAILED)
    ) -> bool:
        """Moves a request to a terminal or failed state, with the reason; a failed one is left for any node to cancel."""
        return self._move(commitment, expect, state, error=error, owner=None)

    # ------------------------------------------------------------------ secrets sealed to templates

    def put_secret(self, template_id: bytes, name: str, sealed: bytes) -> None:
        """Stores a secret sealed to a template's secrets key (ciphertext only: no node can open it)."""
        self._tx(
            [
                (
                    "INSERT INTO secrets (template_id, name, sealed, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(template_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                    (template_id.hex(), name, sealed, time.time()),
                )
            ]
        )

    def secrets_since(self, since: float) -> list[tuple[bytes, str, bytes, float]]:
        """Sealed secrets stored or replaced after `since`: (template id, name, sealed, when)."""
        rows = self.db.query("SELECT template_id, name, sealed, updated_at FROM secrets WHERE updated_at > ? ORDER BY updated_at", (since,))
        return [(bytes.fromhex(t), str(n), bytes(v), float(u)) for t, n, v, u in rows]

    # ------------------------------------------------------------------ reading

    def entries(self, *states: State, limit: int = 1000) -> list[Entry]:
        """Requests in any of `states`, oldest first."""
        return self._select(f"state IN ({_marks(states)})", [s.value for s in states], limit)

    def get(self, request_id: bytes) -> Entry | None:
        """The newest request journalled under `request_id`."""
        found = self._select("request_id = ?", (request_id.hex(),))
        return found[-1] if found else None

    def by_commitment(self, commitment: bytes) -> Entry | None:
        """One request by its commitment."""
        found = self._select("commitment = ?", (commitment.hex(),))
        return found[0] if found else None

    def owner_of(self, commitment: bytes) -> str | None:
        """The node holding a request's work, if any."""
        rows = self.db.query("SELECT owner FROM requests WHERE commitment = ?", (commitment.hex(),))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def counts(self) -> dict[str, int]:
        """How many requests are in each state."""
        return {str(state): int(count) for state, count in self.db.query("SELECT state, COUNT(*) FROM requests GROUP BY state")}

    def oldest_active(self) -> Entry | None:
        """The oldest request not yet settled, expired or dropped."""
        found = self._select(f"state IN ({_marks(ACTIVE_STATES)})", [s.value for s in ACTIVE_STATES], 1)
        return found[0] if found else None

    def recent_errors(self, limit: int = 10) -> list[Entry]:
        """The requests that most recently recorded an error."""
        rows = self.db.query(f"SELECT {_COLUMNS} FROM requests WHERE error IS NOT NULL ORDER BY updated_at DESC LIMIT ?", (limit,))
        return [_entry(row) for row in rows]

    def set_state(self, request_ids: Iterable[bytes], state: State, **fields: object) -> None:
        """Moves the newest request of each id to `state` whatever its state (tests and repairs only)."""
        allowed = {"status", "output", "signature", "tx_hash", "error"}
        if not set(fields) <= allowed:
            raise ValueError(f"unknown fields {set(fields) - allowed}")
        assignments = "".join(f", {name} = ?" for name in fields)
        values = tuple(int(v) if isinstance(v, Status) else v for v in fields.values())
        now = time.time()
        self._tx(
            (f"UPDATE requests SET state = ?, updated_at = ?{assignments} WHERE request_id = ?", (state.value, now, *values, rid.hex()))
            for rid in request_ids
        )

    def close(self) -> None:
        """Closes the database."""
        self.db.close()
        if self._lease_db is not None:
            self._lease_db.close()

    def _move(self, commitment: bytes, expect: Sequence[State], state: State, **fields: object) -> bool:
        """Moves one request of this node's (or no node's) from one of `expect` to `state`."""
        assignments = "".join(f", {name} = ?" for name in fields)
        (count,) = self._tx(
            [
                (
                    f"UPDATE requests SET state = ?, updated_at = ?{assignments}"
                    f" WHERE commitment = ? AND state IN ({_marks(expect)}) AND {_MINE}",
                    (state.value, time.time(), *fields.values(), commitment.hex(), *[s.value for s in expect], self.node_id),
                )
            ]
        )
        return count == 1


def _release(ex: Execute, node: str, now: float) -> None:
    """Frees a stopped node's work: runs go back to the queue, responses and cancels to be sent again by
    any node (a transaction of it still pending may yet be mined: the chain skips the second copy)."""
    ex(
        "UPDATE requests SET state = ?, owner = NULL, updated_at = ? WHERE owner = ? AND state = ?",
        (State.SEEN.value, now, node, State.RUNNING.value),
    )
    ex(
        "UPDATE requests SET state = CASE WHEN signature IS NULL THEN ? ELSE ? END, tx_hash = NULL, owner = NULL, updated_at = ?,"
        " error = 'its node stopped before its transaction was seen mined' WHERE owner = ? AND state = ? AND mined_block IS NULL",
        (State.FAILED.value, State.SIGNED.value, now, node, State.SUBMITTED.value),
    )
    ex("UPDATE requests SET owner = NULL WHERE owner = ?", (node,))


def _set_cursor(block: int, block_hash: str) -> tuple[str, Sequence[object]]:
    return (
        "INSERT INTO cursor (id, block, block_hash) VALUES (1, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET block = excluded.block, block_hash = excluded.block_hash",
        (block, block_hash),
    )


def _marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


def _entry(row: Sequence[Any]) -> Entry:
    request, data, number, state, status, output, signature, tx_hash, error, seen_at, attempts, updated_at, commitment = row
    return Entry(
        request=Request.from_json(json.loads(str(request))),
        input=bytes(data),
        block_number=int(number),
        state=State(state),
        status=None if status is None else Status(status),
        output=None if output is None else bytes(output),
        signature=None if signature is None else bytes(signature),
        tx_hash=None if tx_hash is None else str(tx_hash),
        error=None if error is None else str(error),
        seen_at=float(seen_at),
        attempts=int(attempts),
        updated_at=float(updated_at),
        commitment=bytes.fromhex(str(commitment)),
    )
