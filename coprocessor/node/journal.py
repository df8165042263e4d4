"""The node's durable memory: every request it saw, keyed by commitment, its state, and the listener's cursor.

SQLite in WAL mode. Every method is one transaction, so a crash never leaves half a change, and every
state change names the state it expects, so two stages racing on one request cannot undo each other.
"""

from __future__ import annotations

import enum
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coprocessor_enclave.protocol import Request, Status

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3


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
CREATE TABLE IF NOT EXISTS requests (
    commitment    TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL,
    block_number  INTEGER NOT NULL,
    deadline      INTEGER NOT NULL,
    request       TEXT NOT NULL,
    input         BLOB NOT NULL,
    state         TEXT NOT NULL,
    status        INTEGER,
    output        BLOB,
    signature     BLOB,
    tx_hash       TEXT,
    mined_block   INTEGER,
    settled_block INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    retry_at      REAL NOT NULL DEFAULT 0,
    error         TEXT,
    seen_at       REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_queue ON requests (state, block_number, seen_at);
CREATE INDEX IF NOT EXISTS requests_id ON requests (request_id);
CREATE INDEX IF NOT EXISTS requests_deadline ON requests (deadline) WHERE state IN ('seen', 'signed', 'failed');
CREATE INDEX IF NOT EXISTS requests_retry ON requests (retry_at) WHERE state = 'seen' AND retry_at > 0;
CREATE TABLE IF NOT EXISTS cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    block      INTEGER NOT NULL,
    block_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    hash   TEXT NOT NULL
);
"""

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


class Journal:
    """A SQLite journal for one node."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        """Creates the schema; a journal of an older layout is set aside, and the chain re-derives it."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version != SCHEMA_VERSION and "requests" in tables:
            log.warning("journal %s has an older layout (v%d): rescanning the chain to rebuild it", self.path, version)
            self._db.executescript("DROP TABLE IF EXISTS requests; DROP TABLE IF EXISTS cursor; DROP TABLE IF EXISTS blocks;")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _tx(self, statements: Iterable[tuple[str, Sequence[object]]]) -> list[int]:
        """Runs `statements` in one transaction; returns each one's row count."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                counts = [self._db.execute(sql, params).rowcount for sql, params in statements]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return counts

    def _select(self, where: str, params: Sequence[object], limit: int | None = None) -> list[Entry]:
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE {where} ORDER BY block_number, seen_at{tail}", params
            ).fetchall()
        return [_entry(row) for row in rows]

    # ------------------------------------------------------------------ the listener's side

    def cursor(self) -> tuple[int, str] | None:
        """The last block the listener fully processed, with its hash."""
        with self._lock:
            row = self._db.execute("SELECT block, block_hash FROM cursor WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else None

    def known_blocks(self) -> list[tuple[int, str]]:
        """Hashes of recent blocks the journal rests on, highest first (to find a fork point)."""
        with self._lock:
            return self._db.execute("SELECT number, hash FROM blocks ORDER BY number DESC").fetchall()

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
        statements.append(
            (
                "INSERT INTO cursor (id, block, block_hash) VALUES (1, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET block = excluded.block, block_hash = excluded.block_hash",
                (block, block_hash),
            )
        )
        for number, hash_ in [*blocks, (block, block_hash)]:
            statements.append(("INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", (number, hash_)))
        statements.append(("DELETE FROM blocks WHERE number < ?", (block - keep_blocks,)))
        self._tx(statements)

    def rewind(self, block: int, block_hash: str) -> int:
        """After a reorg whose fork point is `block`: forgets requests above it, and sends back every state
        that rested on a removed block (settled, expired, mined) to be re-derived. Returns how many changed."""
        now = time.time()
        counts = self._tx(
            [
                ("DELETE FROM requests WHERE block_number > ?", (block,)),
                (
                    "UPDATE requests SET state = CASE WHEN signature IS NULL THEN ? ELSE ? END,"
                    " settled_block = NULL, mined_block = NULL, tx_hash = NULL, updated_at = ?"
                    " WHERE settled_block > ? OR mined_block > ?",
                    (State.SEEN.value, State.SIGNED.value, now, block, block),
                ),
                ("DELETE FROM blocks WHERE number > ?", (block,)),
                (
                    "INSERT INTO cursor (id, block, block_hash) VALUES (1, ?, ?)"
                    " ON CONFLICT(id) DO UPDATE SET block = excluded.block, block_hash = excluded.block_hash",
                    (block, block_hash),
                ),
            ]
        )
        return counts[0] + counts[1]

    def reset(self) -> None:
        """Forgets everything: the listener rescans from its start block (the chain re-derives it all)."""
        self._tx([("DELETE FROM requests", ()), ("DELETE FROM cursor", ()), ("DELETE FROM blocks", ())])

    # ------------------------------------------------------------------ the enclave stage's side

    def claim(self, limit: int, now: float | None = None, chain_time: int = 0) -> list[Entry]:
        """Moves up to `limit` of the oldest `seen` requests whose retry time has come, and whose deadline has
        not passed at `chain_time` (those are cancelled instead), to `running`."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM requests WHERE state = ? AND retry_at <= ? AND deadline >= ?"
                    " ORDER BY block_number, seen_at LIMIT ?",
                    (State.SEEN.value, now, chain_time, limit),
                ).fetchall()
                self._db.executemany(
                    "UPDATE requests SET state = ?, updated_at = ? WHERE commitment = ?",
                    [(State.RUNNING.value, now, row[-1]) for row in rows],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [_entry(row) for row in rows]

    def requeue_running(self) -> int:
        """After a restart: every claimed request goes back to `seen` (its run died with the node)."""
        (count,) = self._tx([("UPDATE requests SET state = ? WHERE state = ?", (State.SEEN.value, State.RUNNING.value))])
        return count

    def next_retry(self) -> float | None:
        """When the earliest `seen` request waiting out a backoff may run (epoch seconds)."""
        with self._lock:  # the partial index `requests_retry` (its condition spelled alike): not a walk over the backlog
            row = self._db.execute(
                "SELECT MIN(retry_at) FROM requests INDEXED BY requests_retry WHERE state = 'seen' AND retry_at > 0"
            ).fetchone()
        return row[0] if row else None

    def signed(self, entry: Entry, status: Status, output: bytes, signature: bytes) -> bool:
        """Stores the enclave's response of a running request."""
        return self._move(
            entry.commitment, (State.RUNNING,), State.SIGNED, status=int(status), output=output, signature=signature, error=None
        )

    def retry_later(self, entry: Entry, delay: float, error: str) -> bool:
        """Puts a running request back to `seen`, to be claimed again after `delay` seconds."""
        return self._move(
            entry.commitment, (State.RUNNING,), State.SEEN, retry_at=time.time() + delay, attempts=entry.attempts + 1, error=error
        )

    # ------------------------------------------------------------------ the submitter's side

    def ready(self, limit: int, chain_time: int = 0) -> list[Entry]:
        """Signed requests still within their deadline at `chain_time`, oldest first."""
        return self._select("state = ? AND deadline >= ?", (State.SIGNED.value, chain_time), limit)

    def count_ready(self, limit: int, chain_time: int = 0) -> int:
        """How many `ready` would return, without reading them (the submitter asks on every signed response)."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM (SELECT 1 FROM requests WHERE state = ? AND deadline >= ? LIMIT ?)",
                (State.SIGNED.value, chain_time, int(limit)),
            ).fetchone()
        return int(count)

    def submitted(self, commitments: Iterable[bytes], tx_hash: str, cancelling: bool = False) -> None:
        """Marks requests as sent in `tx_hash`: signed ones in a fulfil, or any unfinished one in a cancel."""
        now = time.time()
        expect = (State.SEEN, State.SIGNED, State.FAILED) if cancelling else (State.SIGNED,)
        self._tx(
            (
                f"UPDATE requests SET state = ?, tx_hash = ?, mined_block = NULL, updated_at = ?"
                f" WHERE commitment = ? AND state IN ({_marks(expect)})",
                (State.SUBMITTED.value, tx_hash, now, c.hex(), *[s.value for s in expect]),
            )
            for c in commitments
        )

    def mined(self, commitments: Iterable[bytes], tx_hash: str, block: int) -> None:
        """Notes the block a sent transaction was mined in; the listener confirms or undoes it."""
        now = time.time()
        self._tx(
            (
                "UPDATE requests SET tx_hash = ?, mined_block = ?, updated_at = ? WHERE commitment = ? AND state = ?",
                (tx_hash, block, now, c.hex(), State.SUBMITTED.value),
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
                " mined_block = NULL, error = ?, updated_at = ?" + bump + " WHERE commitment = ? AND state = ?",
                (State.FAILED.value, State.SIGNED.value, error, now, c.hex(), State.SUBMITTED.value),
            )
            for c in commitments
        )

    def unconfirmed(self) -> dict[str, list[bytes]]:
        """Submitted requests whose transaction was not seen mined, by transaction hash (after a restart)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tx_hash, commitment FROM requests WHERE state = ? AND mined_block IS NULL", (State.SUBMITTED.value,)
            ).fetchall()
        found: dict[str, list[bytes]] = {}
        for tx_hash, commitment in rows:
            found.setdefault(tx_hash or "", []).append(bytes.fromhex(commitment))
        return found

    def expired_candidates(self, chain_time: int, limit: int = 64) -> list[Entry]:
        """Requests past their deadline at `chain_time` that nobody is working on: to cancel."""
        return self._select(
            "deadline < ? AND state IN (?, ?, ?)", (chain_time, State.SEEN.value, State.SIGNED.value, State.FAILED.value), limit
        )

    def finish(
        self, commitment: bytes, state: State, error: str | None = None, expect: Sequence[State] = (*ACTIVE_STATES, State.FAILED)
    ) -> bool:
        """Moves a request to a terminal or failed state, with the reason."""
        return self._move(commitment, expect, state, error=error)

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

    def counts(self) -> dict[str, int]:
        """How many requests are in each state."""
        with self._lock:
            return dict(self._db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall())

    def oldest_active(self) -> Entry | None:
        """The oldest request not yet settled, expired or dropped."""
        found = self._select(f"state IN ({_marks(ACTIVE_STATES)})", [s.value for s in ACTIVE_STATES], 1)
        return found[0] if found else None

    def recent_errors(self, limit: int = 10) -> list[Entry]:
        """The requests that most recently recorded an error."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE error IS NOT NULL ORDER BY updated_at DESC LIMIT ?", (limit,)
            ).fetchall()
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
        with self._lock:
            self._db.close()

    def _move(self, commitment: bytes, expect: Sequence[State], state: State, **fields: object) -> bool:
        assignments = "".join(f", {name} = ?" for name in fields)
        (count,) = self._tx(
            [
                (
                    f"UPDATE requests SET state = ?, updated_at = ?{assignments} WHERE commitment = ? AND state IN ({_marks(expect)})",
                    (state.value, time.time(), *fields.values(), commitment.hex(), *[s.value for s in expect]),
                )
            ]
        )
        return count == 1


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
