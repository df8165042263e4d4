"""A throwaway PostgreSQL server for tests, benchmarks and trying several nodes on one machine.

The server binaries come from the pinned `pgserver` package (PostgreSQL 16), so nothing is
installed system-wide. It listens on a UNIX socket in its data folder, never on TCP. Its folder
is a fresh one in the system's temp folder: run as root, pgserver starts the server as its own
user, which must reach the folder (a pytest temp folder is root's alone), and a socket path must
stay under 108 bytes.
"""

from __future__ import annotations

import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

from ..errors import ToolchainError


class LocalPostgres:
    """A PostgreSQL server in a new temp folder, started now; `stop()` stops it and deletes the folder."""

    def __init__(self) -> None:
        try:
            with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError as exc:
            raise ToolchainError("pgserver is not installed: run `make setup` (it installs the pinned test dependencies)") from exc
        self.folder = Path(tempfile.mkdtemp(prefix="coprocessor-pg-"))
        self._server: Any = pgserver.get_server(self.folder, cleanup_mode="delete")
        self.url: str = self._server.get_uri()

    def new_database(self, prefix: str = "journal") -> str:
        """Creates an empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # a generated name, not input
        return self._server.get_uri(name)  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Stops the server."""
        self._server.cleanup()
