"""One executing ``backups prune`` per policy at a time.

Two prunes of one policy at once undo each other's protection: one removes as stale a
claim (:mod:`datatier.backup.parents`) that the other is relying on, so an incremental
completing on that backup sees no claim, and the other prune then deletes its parent.

Protocol (a store has no lock; each side writes first and looks second, so of two
overlapping prunes at least one sees the other; the store must list an object as soon as
its PUT returns, as S3 does): a prune writes ``POLICY/_prune/<token>.json``, then lists
``POLICY/_prune/``. Any other lock that is live makes it delete its own, wait a random
few seconds and try again (two prunes started together both see each other), and after
:data:`ATTEMPTS` refuse (NotReadyYet, exit 5). A lock is live for :data:`TTL` seconds after
it was last written, measured on the store's clock (the other lock's last-modified time
against its own, just written), or on this host's clock from the time inside it when the
store reports no times. The holder calls :meth:`PruneLock.check` before each step that
deletes: it rewrites the lock every :data:`REFRESH` seconds and fails (OperationFailed) if
the lock is gone or another appeared, i.e. it was paused past TTL and another prune took
over. A killed prune's lock stops counting after TTL and is deleted by the next prune that
takes the lock. Left open: a holder paused past TTL between a check and the delete after it.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datatier.backup.catalog import policy_prefix
from datatier.errors import NotReadyYet, OperationFailed
from datatier.log import get_logger
from datatier.storage.base import ObjectInfo, ObjectStore

log = get_logger(__name__)

TTL = 900.0
REFRESH = 60.0
ATTEMPTS = 3
BACKOFF = (1.0, 6.0)
"""Seconds (uniform between) before another attempt to take the lock."""
FOLDER = "_prune/"


class PruneLock:
    """The lock of one prune of ``policy`` in ``store`` (see module docstring)."""

    def __init__(
        self,
        store: ObjectStore,
        policy: str,
        *,
        ttl: float = TTL,
        attempts: int = ATTEMPTS,
        by: str = "backups prune",
    ) -> None:
        self.store = store
        self.policy = policy
        self.by = by
        self.ttl = ttl
        self.attempts = attempts
        self.prefix = policy_prefix(policy) + FOLDER
        self.key = f"{self.prefix}{secrets.token_hex(8)}.json"
        self._written = 0.0

    def __enter__(self) -> PruneLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock (see module docstring): NotReadyYet, this lock deleted, while
        another prune's is live after :attr:`attempts`; expired ones are deleted. Nothing
        of this lock is left when it raises."""
        rng = random.SystemRandom()
        for attempt in range(1, self.attempts + 1):
            try:
                found = self._take()
            except BaseException:
                self.release()
                raise
            if found is None:
                return
            self.release()
            if attempt == self.attempts:
                live, note = found
                until = (
                    (live.last_modified + timedelta(seconds=self.ttl)).strftime("%H:%M:%SZ")
                    if live.last_modified is not None
                    else f"{self.ttl / 60:.0f} min after {note.get('at', '?')}"
                )
                raise NotReadyYet(
                    f"another `{note.get('by', 'backups prune')}` of {self.policy} is running "
                    f"(host {note.get('host', '?')}, pid {note.get('pid', '?')}); it holds "
                    f"the policy's prune lock {live.key}",
                    hint=f"run again when it has finished; if it was killed on another host, "
                    f"its lock stops counting at {until} (or delete {live.key} once sure)",
                )
            time.sleep(rng.uniform(*BACKOFF))

    def check(self) -> None:
        """Before a step that deletes: rewrite the lock if :data:`REFRESH` seconds have
        passed, and OperationFailed if it is no longer this prune's alone (it was paused
        past TTL: another prune may be deleting by another plan)."""
        if time.monotonic() - self._written < min(REFRESH, self.ttl / 3):
            return
        found = {o.key: o for o in self.store.list_objects(self.prefix)}
        mine = found.pop(self.key, None)
        others = [o for o in found.values() if self._live(o, mine, self._note(o))]
        if mine is None or others:
            raise OperationFailed(
                f"`backups prune` of {self.policy} lost its lock ({self.key}"
                + (" is gone" if mine is None else f"; another: {others[0].key}")
                + "): it stops before deleting more",
                hint="run prune again; it was paused longer than the lock lasts "
                f"({self.ttl / 60:.0f} min)",
            )
        self._write()

    def _take(self) -> tuple[ObjectInfo, dict[str, object]] | None:
        """Write this lock and look: another live lock and what it says, or None (expired
        ones deleted)."""
        self._write()
        found = list(self.store.list_objects(self.prefix))
        mine = next((o for o in found if o.key == self.key), None)
        expired: list[str] = []
        for other in found:
            if other.key == self.key:
                continue
            note = self._note(other)
            if self._live(other, mine, note) and not self._dead(other, note):
                return other, note
            expired.append(other.key)
        if expired:
            self.store.delete(expired)
            log.info("prune.expired_locks_removed", policy=self.policy, keys=expired)
        return None

    def release(self) -> None:
        """Delete this lock (best effort: an undeleted one expires after TTL)."""
        try:
            self.store.delete([self.key])
        except Exception as exc:  # never hides the error being raised
            log.warning("prune.lock_left", policy=self.policy, key=self.key, error=str(exc))

    def _write(self) -> None:
        note = {
            "by": self.by,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process_space": _process_space(),
            "at": datetime.now(UTC).isoformat(),
        }
        self.store.put_bytes(self.key, json.dumps(note).encode())
        self._written = time.monotonic()

    def _live(self, other: ObjectInfo, mine: ObjectInfo | None, note: dict[str, object]) -> bool:
        """Whether ``other`` (saying ``note``) was written less than TTL ago."""
        if other.last_modified is not None and mine is not None and mine.last_modified:
            return (mine.last_modified - other.last_modified).total_seconds() < self.ttl
        written = note.get("at")
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

    def _dead(self, other: ObjectInfo, note: dict[str, object]) -> bool:
        """Whether ``other`` (saying ``note``) was written by a process of this very process
        space (same boot, same PID namespace) that is gone: a killed holder, not waited
        out."""
        space, pid = note.get("process_space"), note.get("pid")
        if not space or space != _process_space() or not isinstance(pid, int):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.info("prune.dead_lock", policy=self.policy, key=other.key, pid=pid)
            return True
        except OSError:  # exists, owned by another user
            return False
        return False


def _process_space() -> str:
    """This boot and PID namespace ("" where Linux's /proc does not tell): two processes
    with equal values see each other's PIDs."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{Path('/proc/self/ns/pid').readlink()}"
    except OSError:
        return ""
