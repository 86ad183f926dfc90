"""One executing ``backups prune`` per policy at a time.

Two prunes of one policy at once undo each other's protection: one removes as stale a
claim (:mod:`datatier.backup.parents`) that the other is relying on, so an incremental
completing on that backup sees no claim, and the other prune then deletes its parent.

Protocol (a store has no lock; each side writes first and looks second, so of two
overlapping prunes at least one sees the other): a prune writes
``POLICY/_prune/<token>.json``, then lists ``POLICY/_prune/``. Any other lock that is live
makes it delete its own and refuse (NotReadyYet, exit 5; both may refuse: the next run goes
on). A lock is live for :data:`TTL` seconds after it was last written, measured on the
store's clock (the other lock's last-modified time against its own, just written), or on
this host's clock from the time inside it when the store reports no times. A running prune
rewrites its lock at least every :data:`REFRESH` seconds between backups; a killed prune's
lock stops counting after TTL and is deleted by the next prune that takes the lock.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from datetime import UTC, datetime

from datatier.backup.catalog import policy_prefix
from datatier.errors import NotReadyYet
from datatier.log import get_logger
from datatier.storage.base import ObjectInfo, ObjectStore

log = get_logger(__name__)

TTL = 900.0
REFRESH = 60.0
FOLDER = "_prune/"


class PruneLock:
    """The lock of one prune of ``policy`` in ``store`` (see module docstring)."""

    def __init__(self, store: ObjectStore, policy: str, *, ttl: float = TTL) -> None:
        self.store = store
        self.policy = policy
        self.ttl = ttl
        self.prefix = policy_prefix(policy) + FOLDER
        self.key = f"{self.prefix}{secrets.token_hex(8)}.json"
        self._written = 0.0

    def acquire(self) -> None:
        """Write this lock, then refuse (NotReadyYet, this lock deleted) if another prune's
        lock is live; delete the expired ones."""
        self._write()
        found = list(self.store.list_objects(self.prefix))
        mine = next((o for o in found if o.key == self.key), None)
        live: list[ObjectInfo] = []
        expired: list[str] = []
        for other in found:
            if other.key == self.key:
                continue
            if self._live(other, mine):
                live.append(other)
            else:
                expired.append(other.key)
        if live:
            self.release()
            holder = self._describe(live[0])
            raise NotReadyYet(
                f"another `backups prune` of {self.policy} is running ({holder})",
                hint=f"run again when it has finished; a killed prune's lock "
                f"({live[0].key}) stops counting {self.ttl / 60:.0f} min after it was written",
            )
        if expired:
            self.store.delete(expired)
            log.info("prune.expired_locks_removed", policy=self.policy, keys=expired)

    def refresh(self) -> None:
        """Rewrite the lock if :data:`REFRESH` seconds have passed since it was written."""
        if time.monotonic() - self._written >= min(REFRESH, self.ttl / 3):
            self._write()

    def release(self) -> None:
        """Delete this lock (best effort: an undeleted one expires after TTL)."""
        try:
            self.store.delete([self.key])
        except Exception as exc:  # never hides the error being raised
            log.warning("prune.lock_left", policy=self.policy, key=self.key, error=str(exc))

    def _write(self) -> None:
        note = {
            "by": "datatier backups prune",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": datetime.now(UTC).isoformat(),
        }
        self.store.put_bytes(self.key, json.dumps(note).encode())
        self._written = time.monotonic()

    def _live(self, other: ObjectInfo, mine: ObjectInfo | None) -> bool:
        if other.last_modified is not None and mine is not None and mine.last_modified:
            return (mine.last_modified - other.last_modified).total_seconds() < self.ttl
        written = self._note(other).get("at")
        try:
            at = datetime.fromisoformat(str(written))
        except ValueError:
            return True  # unreadable: counted live until the store's clock can tell
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return (datetime.now(UTC) - at).total_seconds() < self.ttl

    def _note(self, other: ObjectInfo) -> dict[str, object]:
        try:
            doc = json.loads(self.store.get_bytes(other.key))
        except Exception:  # gone or unreadable: described as unknown
            return {}
        return doc if isinstance(doc, dict) else {}

    def _describe(self, other: ObjectInfo) -> str:
        note = self._note(other)
        host, pid, at = note.get("host", "?"), note.get("pid", "?"), note.get("at", "?")
        return f"host {host}, pid {pid}, lock written {at}"
