"""A throwaway PostgreSQL server for tests, benchmarks and trying several nodes on one machine.

The server binaries come from the pinned `pgserver` package (PostgreSQL 16), so nothing is
installed system-wide. It listens on a UNIX socket in its data folder, never on TCP.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

from ..errors import ToolchainError


class LocalPostgres:
    """A PostgreSQL server in `folder`, started now, stopped by `stop()`."""

    def __init__(self, folder: Path) -> None:
        try:
            with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError as exc:
            raise ToolchainError("pgserver is not installed: run `make setup` (it installs the pinned test dependencies)") from exc
        folder.mkdir(parents=True, exist_ok=True)
        self._server: Any = pgserver.get_server(folder, cleanup_mode="stop")
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
