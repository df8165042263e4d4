"""The journal's two backends: SQLite, embedded, for one node; PostgreSQL, shared, for several.

The journal writes its SQL once, with `?` placeholders; a backend runs it. What differs between them
is here: column types, how a transaction starts, how rows are claimed without waiting on another
node's claim (`FOR UPDATE SKIP LOCKED`), and retrying a transaction PostgreSQL aborted to break a
deadlock between two nodes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..errors import CoprocessorError

log = logging.getLogger(__name__)

T = TypeVar("T")

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class Rows:
    """What one statement returned: its rows (if any) and how many rows it changed."""

    rows: list[tuple[Any, ...]]
    count: int


Execute = Callable[[str, Sequence[object]], Rows]


class Database(Protocol):
    """One connection to a journal database, shared by the node's threads."""

    kind: str  # "sqlite" or "postgresql"
    types: dict[str, str]  # the schema's column types: int, real, blob
    skip_locked: str  # appended to a claim's SELECT: rows another node is claiming are passed over
    retry_hint: str  # SQLite's `INDEXED BY` for the retry query; PostgreSQL's planner finds the index itself
    tables_query: str  # the names of the tables the journal's schema holds
    migration_lock: str  # taken by the schema's transaction, so nodes starting together create it once
    share_lock: str  # appended to a read that fences: the row cannot change until the transaction ends

    def atomic(self, body: Callable[[Execute], T]) -> T: ...
    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...
    def close(self) -> None: ...


def is_postgres(target: str | Path) -> bool:
    """Whether a journal target names a PostgreSQL database (a URL) rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def redacted(target: str | Path) -> str:
    """A journal target fit for a log line: a URL without the password it may hold."""
    text = str(target)
    if is_postgres(text) and "@" in text:
        scheme, rest = text.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"
    return text


def partitioned(target: str | Path, partition: str | None) -> str | Path:
    """Where one partition of a journal lives (a chain's, for a node serving several): a file beside a SQLite
    journal (`journal.sqlite` -> `journal.<partition>.sqlite`); PostgreSQL keeps the URL and uses a schema."""
    if partition is None or is_postgres(target):
        return target
    path = Path(target)
    return path.with_name(f"{path.stem}.{partition}{path.suffix}")


def connect_database(target: str | Path, partition: str | None = None) -> Database:
    """A SQLite file path, or a `postgresql://` URL; with `partition`, that partition of it (`partitioned`)."""
    if is_postgres(target):
        return PostgresDatabase(str(target), partition)
    return SqliteDatabase(Path(partitioned(target, partition)))


class SqliteDatabase:
    """SQLite in WAL mode; one connection, one writer at a time (`BEGIN IMMEDIATE`)."""

    kind = "sqlite"
    types = {"int": "INTEGER", "real": "REAL", "blob": "BLOB"}
    skip_locked = ""
    retry_hint = "INDEXED BY requests_retry"
    tables_query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    migration_lock = ""  # `BEGIN IMMEDIATE` already excludes every other writer
    share_lock = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")

    def _execute(self, sql: str, params: Sequence[object]) -> Rows:
        cursor = self._db.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
        return Rows(rows, cursor.rowcount)

    def atomic(self, body: Callable[[Execute], T]) -> T:
        """Runs `body` in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = body(self._execute)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """One read."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        """Closes the connection."""
        with self._lock:
            self._db.close()


# Aborted by PostgreSQL to break a deadlock or a serialization conflict: the transaction is run again.
_RETRIED_SQLSTATES = {"40P01", "40001"}
_ATTEMPTS = 5


class PostgresDatabase:
    """PostgreSQL through psycopg 3; one connection per node process, shared by its threads."""

    kind = "postgresql"
    types = {"int": "BIGINT", "real": "DOUBLE PRECISION", "blob": "BYTEA"}
    skip_locked = " FOR UPDATE SKIP LOCKED"
    retry_hint = ""
    tables_query = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    migration_lock = "SELECT pg_advisory_xact_lock(7342016)"  # any fixed key, the same in every node
    share_lock = " FOR SHARE"

    def __init__(self, url: str, schema: str | None = None) -> None:
        try:
            import psycopg  # only a node pointed at PostgreSQL needs the driver
        except ImportError as exc:
            raise CoprocessorError("a PostgreSQL journal needs psycopg: pip install 'coprocessor[postgres]'") from exc

        self.url = url
        self._psycopg = psycopg
        self._lock = threading.Lock()
        self._db = psycopg.connect(url, autocommit=True)
        self._sql: dict[str, str] = {}
        if schema is not None:  # a partition: its own tables, in a schema of its own
            from psycopg import sql

            name = sql.Identifier(schema)
            with self._db.transaction():  # two nodes starting together: the lock makes one create it
                self._db.execute(self.migration_lock)
                self._db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            self._db.execute(sql.SQL("SET search_path TO {}").format(name))

    def _text(self, sql: str) -> str:
        """The statement with psycopg's placeholders (the journal's SQL has no literal `%` or `?`)."""
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = sql.replace("?", "%s")
        return text

    def _execute(self, sql: str, params: Sequence[object]) -> Rows:
        cursor = self._db.execute(self._text(sql), params)
        rows = cursor.fetchall() if cursor.description else []
        return Rows(rows, cursor.rowcount)

    def atomic(self, body: Callable[[Execute], T]) -> T:
        """Runs `body` in one transaction; one PostgreSQL aborted for a deadlock is run again."""
        for attempt in range(_ATTEMPTS):
            with self._lock:
                try:
                    with self._db.transaction():
                        return body(self._execute)
                except self._psycopg.OperationalError as exc:
                    if getattr(exc, "sqlstate", None) not in _RETRIED_SQLSTATES or attempt == _ATTEMPTS - 1:
                        raise
                    log.info("journal transaction aborted by PostgreSQL (%s): running it again", exc.sqlstate)
            time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """One read."""
        with self._lock:
            return self._db.execute(self._text(sql), params).fetchall()

    def close(self) -> None:
        """Closes the connection."""
        with self._lock:
            self._db.close()
