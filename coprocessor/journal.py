"""The node's durable memory: every request it saw, its state, and the listener's cursor (SQLite, WAL)."""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from coprocessor_enclave.protocol import Request, Status


class State(enum.StrEnum):
    """A request's life in the node. Terminal: settled, expired, failed."""

    SEEN = "seen"
    RUNNING = "running"
    SIGNED = "signed"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    EXPIRED = "expired"
    FAILED = "failed"


ACTIVE_STATES = (State.SEEN, State.RUNNING, State.SIGNED, State.SUBMITTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id   TEXT PRIMARY KEY,
    block_number INTEGER NOT NULL,
    request      TEXT NOT NULL,
    input        BLOB NOT NULL,
    state        TEXT NOT NULL,
    status       INTEGER,
    output       BLOB,
    signature    BLOB,
    tx_hash      TEXT,
    error        TEXT,
    seen_at      REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_state ON requests (state);
CREATE TABLE IF NOT EXISTS cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    block      INTEGER NOT NULL,
    block_hash TEXT NOT NULL
);
"""


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


class Journal:
    """A SQLite journal. Each method is one transaction, so a crash never leaves half a change."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def _tx(self, statements: Iterable[tuple[str, tuple]]) -> list[int]:
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

    def cursor(self) -> tuple[int, str] | None:
        """The last block the listener fully processed, with its hash."""
        with self._lock:
            row = self._db.execute("SELECT block, block_hash FROM cursor WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else None

    def record(self, seen: list[tuple[Request, bytes, int]], block: int, block_hash: str) -> None:
        """Adds newly seen requests and advances the cursor, atomically. Re-seeing a request is a no-op."""
        now = time.time()
        statements = [
            (
                "INSERT INTO requests (request_id, block_number, request, input, state, seen_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(request_id) DO NOTHING",
                (r.request_id.hex(), number, json.dumps(r.to_json()), data, State.SEEN.value, now, now),
            )
            for r, data, number in seen
        ]
        statements.append(
            (
                "INSERT INTO cursor (id, block, block_hash) VALUES (1, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET block = excluded.block, block_hash = excluded.block_hash",
                (block, block_hash),
            )
        )
        self._tx(statements)

    def rewind(self, block: int, block_hash: str) -> int:
        """After a reorg: forget unsettled requests above `block` and move the cursor back. Returns how many."""
        dropped, _ = self._tx(
            [
                (
                    "DELETE FROM requests WHERE block_number > ? AND state IN (?, ?, ?)",
                    (block, State.SEEN.value, State.RUNNING.value, State.SIGNED.value),
                ),
                ("UPDATE cursor SET block = ?, block_hash = ? WHERE id = 1", (block, block_hash)),
            ]
        )
        return dropped

    def entries(self, *states: State, limit: int = 1000) -> list[Entry]:
        """Requests in any of `states`, oldest first."""
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                "SELECT request, input, block_number, state, status, output, signature, tx_hash, error, seen_at"
                f" FROM requests WHERE state IN ({marks}) ORDER BY block_number, seen_at LIMIT ?",
                (*[s.value for s in states], limit),
            ).fetchall()
        return [_entry(row) for row in rows]

    def get(self, request_id: bytes) -> Entry | None:
        """One request by id."""
        with self._lock:
            row = self._db.execute(
                "SELECT request, input, block_number, state, status, output, signature, tx_hash, error, seen_at"
                " FROM requests WHERE request_id = ?",
                (request_id.hex(),),
            ).fetchone()
        return _entry(row) if row else None

    def set_state(self, request_ids: Iterable[bytes], state: State, **fields: object) -> None:
        """Moves requests to `state`, optionally setting status, output, signature, tx_hash or error."""
        allowed = {"status", "output", "signature", "tx_hash", "error"}
        if not set(fields) <= allowed:
            raise ValueError(f"unknown fields {set(fields) - allowed}")
        assignments = "".join(f", {name} = ?" for name in fields)
        values = tuple(int(v) if isinstance(v, Status) else v for v in fields.values())
        now = time.time()
        self._tx(
            (f"UPDATE requests SET state = ?, updated_at = ?{assignments} WHERE request_id = ?",
             (state.value, now, *values, rid.hex()))
            for rid in request_ids
        )

    def counts(self) -> dict[str, int]:
        """How many requests are in each state."""
        with self._lock:
            return dict(self._db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall())

    def close(self) -> None:
        """Closes the database."""
        with self._lock:
            self._db.close()


def _entry(row: tuple) -> Entry:
    request, data, number, state, status, output, signature, tx_hash, error, seen_at = row
    return Entry(
        request=Request.from_json(json.loads(request)),
        input=bytes(data),
        block_number=number,
        state=State(state),
        status=None if status is None else Status(status),
        output=None if output is None else bytes(output),
        signature=None if signature is None else bytes(signature),
        tx_hash=tx_hash,
        error=error,
        seen_at=seen_at,
    )
