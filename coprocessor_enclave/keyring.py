"""The cluster's epoch keys, in enclave memory only: made at genesis, received from a running
enclave after attestation (`provisioning.py`), rotated by epoch.

Each epoch has a root of its own, 32 fresh random bytes, from which the epoch secret and every
template's keys derive (`keys.py`). A fresh root per epoch, not one derived from the last, is
what makes revocation mean something: an enclave that was not handed epoch e+1 cannot compute
it from what it held before. A retired epoch stays usable for a grace window, so inputs sealed
to its keys just before a rotation still open; after that it is forgotten.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from . import keys
from .errors import EnclaveError

DEFAULT_GRACE_SECONDS = 24 * 3600
MAX_LIVE_EPOCHS = 8  # a rotation waits for the oldest to retire beyond this; a grant carries at most this many


@dataclass(frozen=True)
class EpochRoot:
    """One epoch's root, and when it stops opening anything (None: it is the current epoch)."""

    epoch: int
    root: bytes
    retire_at: float | None = None


class Keyring:
    """The epochs this enclave holds. Thread-safe; the roots never leave it unsealed."""

    def __init__(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self.grace_seconds = grace_seconds
        self._epochs: dict[int, EpochRoot] = {}
        self._derived: dict[tuple[int, bytes], keys.TemplateKeys] = {}  # X25519 derivation costs ~80 us: once per epoch
        self._lock = threading.Lock()

    @property
    def current(self) -> int | None:
        """The newest epoch held, or None before genesis or a join."""
        with self._lock:
            return max(self._epochs, default=None)

    def genesis(self) -> int:
        """Makes the cluster's first epoch here; refused if this enclave already holds keys."""
        with self._lock:
            if self._epochs:
                raise EnclaveError("this enclave already holds cluster keys: genesis is for the first enclave of a cluster")
            self._epochs[1] = EpochRoot(1, keys.new_root())
            return 1

    def rotate(self, now: float | None = None) -> int:
        """Starts a new epoch with a fresh root; the current one retires after the grace window."""
        now = time.time() if now is None else now
        with self._lock:
            if not self._epochs:
                raise EnclaveError("no cluster keys to rotate: run genesis, or join a running enclave")
            self._forget_retired(now)
            if len(self._epochs) >= MAX_LIVE_EPOCHS:
                raise EnclaveError(f"{MAX_LIVE_EPOCHS} epochs are live: wait until the oldest retires (grace {self.grace_seconds:g} s)")
            latest = max(self._epochs)
            self._epochs[latest] = EpochRoot(latest, self._epochs[latest].root, now + self.grace_seconds)
            self._epochs[latest + 1] = EpochRoot(latest + 1, keys.new_root())
            return latest + 1

    def live(self, now: float | None = None) -> list[EpochRoot]:
        """The epochs still usable, oldest first (what a joining enclave receives)."""
        now = time.time() if now is None else now
        with self._lock:
            self._forget_retired(now)
            return [self._epochs[e] for e in sorted(self._epochs)]

    def install(self, epochs: list[EpochRoot]) -> None:
        """Takes epochs received from a running enclave (after they opened for this join)."""
        with self._lock:
            for epoch in epochs:
                held = self._epochs.get(epoch.epoch)
                if held is not None and held.root != epoch.root:
                    raise EnclaveError(f"epoch {epoch.epoch} received with another root than the one held")
                if held is not None and held.retire_at is not None:  # a retirement is never postponed or undone
                    epoch = EpochRoot(epoch.epoch, epoch.root, min(held.retire_at, epoch.retire_at or held.retire_at))
                self._epochs[epoch.epoch] = epoch

    def epoch_secret(self, epoch: int, now: float | None = None) -> bytes | None:
        """The secret of `epoch` if it is held and not retired (what `keys.decrypt_*` ask for)."""
        now = time.time() if now is None else now
        with self._lock:
            held = self._epochs.get(epoch)
        if held is None or (held.retire_at is not None and held.retire_at <= now):
            return None
        return keys.epoch_secret(held.root, epoch)

    def template_keys(self, template_id: bytes) -> tuple[int, keys.TemplateKeys]:
        """The current epoch and a template's keys in it."""
        epoch = self.current
        secret = None if epoch is None else self.epoch_secret(epoch)
        if epoch is None or secret is None:
            raise EnclaveError("this enclave holds no cluster keys: run genesis, or join a running enclave")
        derived = self._derived.get((epoch, template_id))
        if derived is None:
            derived = self._derived[(epoch, template_id)] = keys.template_keys(secret, template_id)
        return epoch, derived

    def _forget_retired(self, now: float) -> None:
        for epoch in [e for e, held in self._epochs.items() if held.retire_at is not None and held.retire_at <= now]:
            del self._epochs[epoch]
            self._derived = {k: v for k, v in self._derived.items() if k[0] != epoch}
