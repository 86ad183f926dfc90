"""Per-policy backup facts for metrics, read from the stores: cheap, cached, never blocking.

Contract. :func:`read_policy_stats` lists the policy's prefix once, reads the manifest of
the newest backup that has one (newest first until one parses: a damaged newest never hides
an older good one) and the policy's job records (:mod:`datatier.backup.jobstatus`). A store
that cannot be read gives stats with ``error`` set and the job records it was handed, never
an exception. :class:`BackupStatsMonitor` refreshes every policy every ``interval`` seconds
in its own daemon thread and publishes an immutable mapping (one attribute swap), so an HTTP
handler only ever reads memory: a slow or dead store makes the numbers old (their age is
exported), never a request slow.

Hook: binlog archiving (issue 14) adds its lag as :attr:`PolicyStats.binlog_archive_lag`,
read here next to the job records; :mod:`datatier.backup.metrics` exports it as
``datatier_binlog_archive_lag_seconds`` once it is not None.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from datatier.backup.jobstatus import JOBS, JobStatus, read_status
from datatier.backup.manifest import BACKUP_ID, MANIFEST_NAME, Manifest
from datatier.backup.policy import Policy, load_policy
from datatier.errors import DatatierError
from datatier.log import get_logger
from datatier.storage.base import ObjectNotFound, ObjectStore

log = get_logger(__name__)


@dataclass(frozen=True)
class NewestBackup:
    """The newest complete backup of a policy, as its manifest says (times: UNIX seconds)."""

    backup_id: str
    started: float
    finished: float
    seconds: float
    bytes: int
    raw_bytes: int
    objects: int

    @classmethod
    def of(cls, manifest: Manifest) -> NewestBackup:
        started = _epoch(manifest.started_at)
        finished = _epoch(manifest.finished_at)
        return cls(
            backup_id=manifest.backup_id,
            started=started,
            finished=finished,
            seconds=float(manifest.timings.get("total_seconds", finished - started)),
            bytes=manifest.total_bytes,
            raw_bytes=manifest.raw_bytes,
            objects=len(manifest.objects),
        )


@dataclass(frozen=True)
class PolicyStats:
    """What the store says about one policy at ``read_at`` (UNIX seconds)."""

    policy: str
    store_url: str
    read_at: float
    error: str | None = None
    backups: int = 0
    newest: NewestBackup | None = None
    jobs: Mapping[str, JobStatus] = field(default_factory=dict)
    binlog_archive_lag: float | None = None


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_policy_stats(
    store: ObjectStore,
    policy: str,
    *,
    known: Mapping[str, JobStatus] | None = None,
    cache: dict[str, NewestBackup] | None = None,
) -> PolicyStats:
    """The policy's stats from ``store`` (see module docstring). ``known`` job records win
    over stored ones (a job that just finished); ``cache`` maps manifest keys to what they
    held (manifests never change), saving a GET per refresh."""
    jobs: dict[str, JobStatus] = dict(known or {})
    try:
        with_manifest = sorted(
            {
                info.key.split("/")[1]
                for info in store.list_objects(f"{policy}/")
                if info.key.endswith("/" + MANIFEST_NAME)
                and len(info.key.split("/")) == 3
                and BACKUP_ID.match(info.key.split("/")[1])
            },
            reverse=True,
        )
        newest = None
        for backup_id in with_manifest:
            newest = _newest(store, policy, backup_id, cache)
            if newest is not None:
                break
        for job in JOBS:
            if job not in jobs:
                status = read_status(store, policy, job)
                if status.last is not None:
                    jobs[job] = status
    except DatatierError as exc:
        return PolicyStats(policy, store.url, time.time(), error=str(exc), jobs=jobs)
    return PolicyStats(
        policy, store.url, time.time(), backups=len(with_manifest), newest=newest, jobs=jobs
    )


def _newest(
    store: ObjectStore, policy: str, backup_id: str, cache: dict[str, NewestBackup] | None
) -> NewestBackup | None:
    key = f"{policy}/{backup_id}/{MANIFEST_NAME}"
    if cache is not None and key in cache:
        return cache[key]
    try:
        manifest = Manifest.decode(store.get_bytes(key), f"{store.url}/{key}")
    except ObjectNotFound:
        return None
    except DatatierError as exc:  # unreadable: an older one may still be good
        log.debug("stats.manifest_unreadable", key=key, error=str(exc))
        return None
    if (manifest.policy, manifest.backup_id) != (policy, backup_id):
        return None
    found = NewestBackup.of(manifest)
    if cache is not None:
        cache[key] = found
    return found


class BackupStatsMonitor:
    """Refreshes the stats of every policy in ``policies_dir`` every ``interval`` seconds
    in a daemon thread; :attr:`stats` is the last complete refresh (None before the first).

    ``open_store`` turns a store URL into a store (the config's S3 settings). Policy files
    are re-read each refresh; an invalid one is logged and listed in :attr:`invalid`, never
    fatal (the health endpoint must keep answering HAProxy).
    """

    def __init__(
        self,
        policies_dir: Path,
        default_store: str,
        open_store: Callable[[str], ObjectStore],
        interval: float,
    ) -> None:
        self.policies_dir = policies_dir
        self.default_store = default_store
        self.open_store = open_store
        self.interval = interval
        self.stats: Mapping[str, PolicyStats] | None = None
        self.invalid: tuple[str, ...] = ()
        self._stores: dict[str, ObjectStore] = {}
        self._cache: dict[str, NewestBackup] = {}
        self._errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _policies(self) -> list[Policy]:
        found, invalid = [], []
        for path in sorted(self.policies_dir.glob("*.toml")):
            try:
                found.append(load_policy(path, self.default_store))
            except DatatierError as exc:
                invalid.append(path.stem)
                if self._errors.get(f"policy:{path}") != str(exc):
                    log.error("stats.policy_invalid", path=str(path), error=str(exc))
                self._errors[f"policy:{path}"] = str(exc)
        self.invalid = tuple(invalid)
        return found

    def refresh(self) -> Mapping[str, PolicyStats]:
        """Read every policy's stats now, publish and return them."""
        result: dict[str, PolicyStats] = {}
        for policy in self._policies():
            try:
                store = self._stores.get(policy.store_url)
                if store is None:
                    store = self._stores[policy.store_url] = self.open_store(policy.store_url)
                stats = read_policy_stats(store, policy.name, cache=self._cache)
            except DatatierError as exc:
                stats = PolicyStats(policy.name, policy.store_url, time.time(), error=str(exc))
            if stats.error and self._errors.get(policy.name) != stats.error:
                log.warning("stats.store_unreadable", policy=policy.name, error=stats.error)
            self._errors[policy.name] = stats.error or ""
            result[policy.name] = stats
        published = MappingProxyType(result)
        self.stats = published  # the atomic swap readers rely on
        return published

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as exc:  # the loop must survive; the age metric shows it
                log.error("stats.refresh_failed", error=str(exc), exc_info=True)
            if self._stop.wait(self.interval):
                return

    def start(self) -> BackupStatsMonitor:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="datatier-stats", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
