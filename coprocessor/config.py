"""The node's tuning knobs: a plain dataclass, so the command line can show their defaults without importing the node."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOKEN_FILE = Path(".coprocessor/enclave.token")  # where `enclave serve` writes its token by default


_state_dir: Path | None = None  # `coprocessor --state-dir`, for this process


def use_state_dir(path: Path) -> None:
    """Makes `path` the state dir of this process (`coprocessor --state-dir`)."""
    global _state_dir
    _state_dir = path


def default_state_dir() -> Path:
    """Where deployment records, the journal, the enclave token and logs are kept: `--state-dir`, else
    `COPROCESSOR_STATE_DIR`, else `.coprocessor`."""
    return _state_dir or Path(os.environ.get("COPROCESSOR_STATE_DIR", ".coprocessor"))


@dataclass(frozen=True)
class NodeConfig:
    """Tuning knobs with sensible local defaults (each is an option of `node` and `dev`)."""

    poll_interval: float = 0.05  # head polling when the RPC has no websocket
    confirmations: int = 0
    reorg_depth: int = 64
    concurrency: int = 16  # enclave runs in flight (twice the enclave's own default: one waits while one runs)
    max_batch: int = 64
    gas_budget: int = 15_000_000
    max_in_flight: int = 4
    batch_wait: float = 0.05  # seconds a partial batch may wait for responses the enclave is making
    backlog_batch_wait: float = 0.25  # the same while requests also wait to be run
    sweep_interval: float = 1.0
    key_check_interval: float = 10.0
    ws_url: str | None = ""  # "" derives it from the RPC URL; None polls only
