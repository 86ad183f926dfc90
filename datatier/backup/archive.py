"""Archive: re-class the data objects of old backups to a colder storage class, for stores
that apply no lifecycle rules.

A *plan* (reads the store, changes nothing) and an *execute* (carries a plan out). Data
objects only; manifests stay STANDARD, and so do the newest complete backup's objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from datatier.backup.catalog import BackupState, Catalog, ObjectCallback
from datatier.backup.manifest import manifest_key
from datatier.backup.policy import ARCHIVE_ORDER, Policy
from datatier.backup.retention import days_before
from datatier.log import get_logger
from datatier.storage.base import ObjectNotFound, StorageClass

log = get_logger(__name__)


@dataclass(frozen=True)
class ArchiveMove:
    backup_id: str
    key: str
    size: int
    from_class: str


@dataclass(frozen=True)
class ArchivePlan:
    """Data objects of complete backups older than ``after_days`` to move to ``target``."""

    policy: str
    store_url: str
    now: datetime
    target: str
    after_days: int
    moves: list[ArchiveMove]
    skipped: list[str] = field(default_factory=list)
    newest_kept: str | None = None
    """The newest complete backup, left in its class whatever its age."""
    small_kept: int = 0
    """Objects left in their class for being under ``archive.min_object_kb``."""

    @property
    def bytes(self) -> int:
        return sum(m.size for m in self.moves)


def archive_plan(catalog: Catalog, policy: Policy, now: datetime) -> ArchivePlan:
    """Data objects (never manifests) of complete backups older than
    ``storage.archive_after_days`` at ``now`` not yet in ``storage.archive_class``
    or colder, except objects under ``archive.min_object_kb`` and the objects of the
    newest complete backup. Empty when ``archive_after_days`` is 0. Changes nothing."""
    storage = policy.spec.storage
    plan = ArchivePlan(
        policy.name, catalog.store.url, now, storage.archive_class, storage.archive_after_days, []
    )
    if storage.archive_after_days <= 0:
        return plan
    target_rank = ARCHIVE_ORDER[storage.archive_class]
    cutoff = days_before(now, storage.archive_after_days)
    min_size = policy.spec.archive.min_object_kb * 1024
    entries = catalog.backups(policy.name, include_all=True)
    complete = [e for e in entries if e.state is BackupState.COMPLETE]
    newest = complete[-1].backup_id if complete else None  # listed oldest first
    small = 0
    for entry in entries:
        if entry.state is not BackupState.COMPLETE:
            plan.skipped.append(f"{entry.backup_id} ({entry.state.value})")
            continue
        if entry.created_at >= cutoff or entry.backup_id == newest:
            continue
        for obj in entry.data_objects:
            if ARCHIVE_ORDER.get(obj.storage_class, 0) >= target_rank:
                continue
            if obj.size < min_size:
                small += 1
                continue
            plan.moves.append(ArchiveMove(entry.backup_id, obj.key, obj.size, obj.storage_class))
    return replace(plan, newest_kept=newest, small_kept=small)


def archive_execute(
    catalog: Catalog, plan: ArchivePlan, on_object: ObjectCallback | None = None
) -> int:
    """Re-class every object of ``plan``; returns how many were moved.

    A backup deleted since the plan (its manifest gone: ``backups prune`` running beside)
    is skipped, logged (``archive.deleted_meanwhile``); an object missing from a backup
    that is still there fails the run (ObjectNotFound, exit 1), as before."""
    target = StorageClass(plan.target)
    moved = moved_bytes = 0
    gone: set[str] = set()
    for move in plan.moves:
        if move.backup_id in gone:
            continue
        try:
            catalog.store.set_storage_class(move.key, target)
        except ObjectNotFound:
            if catalog.store.exists(manifest_key(plan.policy, move.backup_id)):
                raise
            gone.add(move.backup_id)
            log.warning(
                "archive.deleted_meanwhile",
                policy=plan.policy,
                backup_id=move.backup_id,
                note="deleted since the plan (by `backups prune`?): skipped",
            )
            continue
        moved, moved_bytes = moved + 1, moved_bytes + move.size
        if on_object:
            on_object(move.key, move.size)
    if moved:
        log.info("archive.moved", policy=plan.policy, objects=moved, bytes=moved_bytes)
    return moved
