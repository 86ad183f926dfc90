"""Prune: delete what a policy's retention does not keep.

A *plan* (reads the store, changes nothing) and an *execute* (carries a plan out).

Pruning trusts nothing it has not listed and matched:

* it refuses to run while any manifest of the policy is unreadable;
* retention decides over *good* backups only (complete: the listing matches the manifest),
  so the newest good backup is always kept; it dates each by its snapshot (the moment its
  data is of, ``consistency.snapshot_at``, else when it finished), as a point-in-time
  restore picks its base, so ``recovery_window_days`` keeps the base a restore to the
  window's first moment needs even when that backup started long before its snapshot;
* backups a kept backup depends on (an incremental's parents, back to its full backup) are
  kept with it, damaged ones included (reported, never deleted while needed);
* an incremental whose chain is broken (a parent missing, incomplete or damaged) cannot be
  restored: it is handled as a damaged backup, never counted as a kept generation;
* a *damaged* backup (manifest present, an object missing or of another size) is reported,
  never counted as a kept generation and never the reason a good one goes. It is deleted
  only when retention would have let it go anyway: older than every kept good backup and
  older than ``min_age_days``. A newer damaged backup stays for a person to look at (it may
  be the only copy of some tables, and `restore --tables` can still salvage those);
* a *rewritten* backup (damaged only by an object with another ETag than recorded: its
  bytes may or may not be the backup's) is handled as damaged, except that it is deleted
  only when retention, run as if it were good, would delete it too: a store copied in a way
  that changes ETags never costs a backup retention would have kept;
* only listed keys are deleted; a backup's manifest goes before its data (an interrupted
  prune leaves an incomplete backup, never a listed one with missing data);
* incomplete backups written to within ``grace`` are spared, by the latest of their ID's
  time and their objects' modification times (the store's clock). An ID dated after the
  time prune judges at (a clock ahead named it) says nothing of its age: its objects' times
  alone count, so such leftovers are collected too (spared while those are after now or
  unknown, a local store written by that same clock). An older one may still be
  running (grace 0, a stalled dump), so before deleting it prune writes a *claim*
  (``POLICY/ID/prune-claim.json``) and then looks for its manifest: if the manifest exists,
  the backup finished meanwhile and prune backs off. The backup, for its part, lists its
  prefix after writing the manifest and withdraws it (failing) if it sees a claim or a
  missing object. One of the two always sees the other's write, so a backup never exits 0
  with a manifest naming objects prune deleted;
* a complete backup is claimed the same way before it is deleted, and kept if an
  incremental that needs it completed after the plan was made (an incremental chooses its
  parent when it starts; see :mod:`datatier.backup.parents`). A claim a killed prune left
  in a backup it did not delete is removed by the next prune.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from datatier.backup.catalog import (
    BackupEntry,
    BackupState,
    Catalog,
    policy_prefix,
)
from datatier.backup.chain import chain_links, needed_parents
from datatier.backup.manifest import BACKUP_ID, MANIFEST_NAME, parse_backup_id, snapshot_time
from datatier.backup.parents import PRUNE_CLAIM, needed_by_new
from datatier.backup.policy import Policy
from datatier.backup.prunelock import PruneLock
from datatier.backup.retention import days_before, decide_retention
from datatier.errors import IntegrityFailure
from datatier.log import get_logger
from datatier.storage.base import IncompleteUpload

log = get_logger(__name__)


DEFAULT_GRACE = timedelta(hours=6)
"""Incomplete backups and uploads younger than this may still be running; prune spares them."""


@dataclass(frozen=True)
class PruneTarget:
    """A backup to delete, why, and every key it has (manifest deleted first)."""

    backup_id: str
    state: BackupState
    reason: str
    keys: tuple[str, ...]
    manifest_key: str | None
    bytes: int


@dataclass(frozen=True)
class KeptBackup:
    backup_id: str
    reasons: tuple[str, ...]
    bytes: int


@dataclass(frozen=True)
class DamagedBackup:
    """A backup whose listing does not match its manifest, kept and reported."""

    backup_id: str
    problem: str
    bytes: int


@dataclass(frozen=True)
class PrunePlan:
    """What ``prune_execute`` will do for one policy; ``spared`` lists skipped leftovers,
    ``damaged`` the damaged backups left in place (see module docstring)."""

    policy: str
    store_url: str
    now: datetime
    grace: timedelta
    keep: list[KeptBackup]
    delete: list[PruneTarget]
    spared: list[PruneTarget] = field(default_factory=list)
    uploads: list[IncompleteUpload] = field(default_factory=list)
    damaged: list[DamagedBackup] = field(default_factory=list)
    stale_claims: list[str] = field(default_factory=list)
    """Claims a killed prune left in complete backups this plan keeps (removed)."""

    @property
    def bytes_freed(self) -> int:
        return sum(t.bytes for t in self.delete)


@dataclass(frozen=True)
class PruneResult:
    """What was done; ``spared`` names the planned deletions not done: incomplete backups
    that completed before their turn, complete ones an incremental completed since needs."""

    backups: int
    objects: int
    bytes: int
    uploads_aborted: int
    spared: list[str] = field(default_factory=list)


def prune_plan(
    catalog: Catalog, policy: Policy, now: datetime, *, grace: timedelta = DEFAULT_GRACE
) -> PrunePlan:
    """What to delete from ``catalog`` under ``policy``'s retention at ``now``; changes nothing.

    Raises IntegrityFailure (nothing planned) when any manifest of the policy is unreadable.
    Retention runs over good backups only; damaged ones are handled as the module docstring
    says. Incomplete backups last written before ``now - grace`` are deleted, younger ones
    spared; so are incomplete uploads.
    """
    entries = catalog.backups(policy.name, include_all=True)
    broken = [e for e in entries if e.state is BackupState.UNREADABLE]
    if broken:
        raise IntegrityFailure(
            f"refusing to prune {policy.name}: {len(broken)} unreadable manifest(s), first "
            f"{broken[0].problem}",
            hint="repair or remove it (see `datatier backups list --all`); nothing was deleted",
        )
    complete = {e.backup_id: e for e in entries if e.state is BackupState.COMPLETE}
    # A backup whose chain is broken cannot be restored: it must not count as a kept
    # backup (keep_last = 1 would delete the last restorable one); it is handled as damaged.
    links = chain_links({i: e.manifest for i, e in complete.items() if e.manifest is not None})
    unrestorable = {i: f"broken chain: {link.problem}" for i, link in links.items() if link.problem}
    complete = {i: e for i, e in complete.items() if i not in unrestorable}
    decision = decide_retention(
        {i: _dated(e) for i, e in complete.items()}, policy.spec.retention, now
    )
    keep = [KeptBackup(k.backup_id, k.reasons, complete[k.backup_id].bytes) for k in decision.keep]
    needed = needed_parents(
        {e.backup_id: e.manifest for e in entries if e.manifest is not None},
        [k.backup_id for k in decision.keep],
    )
    keep += [KeptBackup(i, (why,), complete[i].bytes) for i, why in needed.items() if i in complete]
    delete = [
        _target(complete[i], "not kept by retention") for i in decision.delete if i not in needed
    ]
    as_if_good = _deleted_if_intact(complete, entries, policy, now)
    oldest_kept = min((k.created_at for k in decision.keep), default=None)
    young_after = days_before(now, policy.spec.retention.min_age_days)
    damaged: list[DamagedBackup] = []
    for entry in entries:
        if entry.backup_id in unrestorable:
            problem = unrestorable[entry.backup_id]
        elif entry.state is BackupState.DAMAGED:
            problem = entry.problem or "listing does not match the manifest"
        else:
            continue
        if entry.rewritten and entry.backup_id in as_if_good and entry.backup_id not in needed:
            why = f"damaged ({problem}), not kept by retention even if intact"
            delete.append(_target(entry, why))
        elif (
            not entry.rewritten
            and oldest_kept is not None
            and entry.backup_id not in needed
            and _dated(entry) < oldest_kept
            and (_dated(entry) <= young_after)
        ):
            delete.append(_target(entry, f"damaged ({problem}), older than every kept backup"))
        else:
            damaged.append(DamagedBackup(entry.backup_id, problem, entry.bytes))
            log.warning(
                "prune.damaged", policy=policy.name, backup_id=entry.backup_id, problem=problem
            )
    spared: list[PruneTarget] = []
    cutoff = days_before(now, grace / timedelta(days=1))
    for entry in entries:
        if entry.state is not BackupState.INCOMPLETE:
            continue
        written = _last_written(entry, now)
        if written is None:
            reason = "incomplete, dated after now and its objects too: its age cannot be told"
            spared.append(_target(entry, reason))
            continue
        hours = (now - written).total_seconds() / 3600
        reason = f"incomplete, last written {hours:.1f} h ago"
        if entry.id_time > now:
            reason += " (its ID is dated after now: by its objects' times)"
        if written < cutoff:
            delete.append(_target(entry, reason))
        else:
            spared.append(_target(entry, f"{reason}: may still be running"))
    # An upload belongs to a backup that may be running unless both its start and its
    # backup's ID are older than the cutoff (moto reports a fixed 2010 start time); an ID
    # dated after now tells nothing: such an upload goes only with its backup.
    recent = {t.backup_id for t in spared}
    going = {t.backup_id for t in delete if t.state is BackupState.INCOMPLETE}
    uploads = [
        u
        for u in catalog.store.list_incomplete_uploads(policy_prefix(policy.name))
        if u.initiated is not None
        and u.initiated < cutoff
        and not _recent(u, recent, going, cutoff, now)
    ]
    going_ids = {t.backup_id for t in delete}
    stale = [
        o.key
        for e in entries
        if e.has_manifest and e.backup_id not in going_ids
        for o in e.objects
        if o.key == e.prefix + PRUNE_CLAIM
    ]
    return PrunePlan(
        policy.name, catalog.store.url, now, grace, keep, delete, spared, uploads, damaged, stale
    )


def prune_execute(catalog: Catalog, plan: PrunePlan, lock: PruneLock | None = None) -> PruneResult:
    """Carry out ``plan``: per backup the manifest first, then its data; then old uploads.

    Deleting the manifest first means an interrupted prune leaves an incomplete backup
    (removed by a later prune), never a listed backup with missing data. An incomplete
    backup is claimed first and spared if its manifest appeared meanwhile. Runs under the
    policy's prune lock (:mod:`datatier.backup.prunelock`), ``lock`` when the caller holds
    it (taken before the plan: nothing changes the catalog between), else its own:
    NotReadyYet (exit 5), nothing deleted, while another prune of the policy is executing.
    """
    if lock is not None:
        return _execute(catalog, plan, lock)
    with PruneLock(catalog.store, plan.policy) as own:
        return _execute(catalog, plan, own)


def _execute(catalog: Catalog, plan: PrunePlan, lock: PruneLock) -> PruneResult:
    objects = 0
    spared: list[str] = []
    deleted: list[PruneTarget] = []
    claimed = [t.backup_id for t in plan.delete if t.manifest_key]
    started: set[str] = set()
    try:
        needed = _claim_complete(catalog, plan)
        for target in plan.delete:
            lock.check()
            claim = f"{plan.policy}/{target.backup_id}/{PRUNE_CLAIM}"
            if target.backup_id in needed:
                spared.append(target.backup_id)
                continue
            if target.state is BackupState.INCOMPLETE and not _claim(catalog, plan, target, claim):
                spared.append(target.backup_id)
                continue
            started.add(target.backup_id)
            if target.manifest_key:
                catalog.store.delete([target.manifest_key])
            data = [k for k in target.keys if k not in (target.manifest_key, claim)]
            catalog.store.delete(data)
            catalog.store.delete([claim])
            objects += len(data) + (1 if target.manifest_key else 0)
            deleted.append(target)
            log.info(
                "prune.deleted",
                policy=plan.policy,
                backup_id=target.backup_id,
                reason=target.reason,
                objects=len(target.keys),
                bytes=target.bytes,
            )
    except BaseException:
        # complete backups claimed and not begun stay listed: a claim left in them would
        # fail every incremental built on them until the next prune
        _withdraw(catalog, plan.policy, [i for i in claimed if i not in started])
        raise
    if plan.stale_claims:
        lock.check()
        catalog.store.delete(plan.stale_claims)
    aborted = sum(
        catalog.store.abort_incomplete_uploads(
            u.key, initiated_before=days_before(plan.now, plan.grace / timedelta(days=1))
        )
        for u in plan.uploads
    )
    freed = sum(t.bytes for t in deleted)
    return PruneResult(len(deleted), objects, freed, aborted, spared)


def _withdraw(catalog: Catalog, policy: str, backup_ids: list[str]) -> None:
    """Delete the claims of ``backup_ids``, best effort (the next prune removes any left)."""
    try:
        catalog.store.delete([f"{policy}/{i}/{PRUNE_CLAIM}" for i in backup_ids])
    except Exception as exc:  # never hides the error being raised
        log.warning("prune.claims_left", policy=policy, backups=backup_ids, error=str(exc))


def _claim_complete(catalog: Catalog, plan: PrunePlan) -> set[str]:
    """Claim every complete backup ``plan`` deletes, then look for manifests written since
    the plan (incrementals that completed meanwhile): the claimed backups one of them
    depends on are returned, their claims withdrawn (:mod:`datatier.backup.parents`)."""
    targets = [t.backup_id for t in plan.delete if t.manifest_key]
    if not targets:
        return set()
    note = json.dumps({"by": "datatier backups prune", "at": datetime.now(UTC).isoformat()})
    for backup_id in targets:
        catalog.store.put_bytes(f"{plan.policy}/{backup_id}/{PRUNE_CLAIM}", note.encode())
    planned = {k.backup_id for k in plan.keep} | {d.backup_id for d in plan.damaged}
    planned |= {t.backup_id for t in plan.delete if t.manifest_key}
    needed = needed_by_new(catalog.store, plan.policy, planned, targets)
    for backup_id in sorted(needed):
        catalog.store.delete([f"{plan.policy}/{backup_id}/{PRUNE_CLAIM}"])
        log.info("prune.spared_parent", policy=plan.policy, backup_id=backup_id)
    return needed


def _claim(catalog: Catalog, plan: PrunePlan, target: PruneTarget, claim: str) -> bool:
    """Claim an incomplete backup for deletion; False (claim withdrawn) if its manifest
    exists by now, i.e. the backup completed after the plan was made."""
    note = {"by": "datatier backups prune", "at": datetime.now(UTC).isoformat()}
    catalog.store.put_bytes(claim, json.dumps(note).encode())
    if catalog.store.exists(f"{plan.policy}/{target.backup_id}/{MANIFEST_NAME}"):
        catalog.store.delete([claim])
        log.info("prune.spared_completed", policy=plan.policy, backup_id=target.backup_id)
        return False
    return True


def _deleted_if_intact(
    good: dict[str, BackupEntry], entries: list[BackupEntry], policy: Policy, now: datetime
) -> set[str]:
    """The rewritten backups among ``entries`` that retention would delete were they good
    (judged together with the ``good`` ones)."""
    rewritten = {e.backup_id: _dated(e) for e in entries if e.rewritten}
    if not rewritten:
        return set()
    dated = {**{i: _dated(e) for i, e in good.items()}, **rewritten}
    return set(decide_retention(dated, policy.spec.retention, now).delete) & set(rewritten)


def _dated(entry: BackupEntry) -> datetime:
    """What retention dates a backup by: its snapshot (the moment its data is of, which a
    point-in-time restore picks its base by), else its start."""
    moment = snapshot_time(entry.manifest) if entry.manifest is not None else None
    return moment or entry.created_at


def _target(entry: BackupEntry, reason: str) -> PruneTarget:
    manifest_key = entry.manifest_key if entry.has_manifest else None
    keys = tuple(o.key for o in entry.objects)
    return PruneTarget(entry.backup_id, entry.state, reason, keys, manifest_key, entry.bytes)


def _last_written(entry: BackupEntry, now: datetime) -> datetime | None:
    """When an incomplete backup was last written to: the latest of its ID's time and its
    objects' modification times (the store's clock). An ID dated after ``now`` was named by
    a clock ahead and says nothing of its age: then the objects' times alone count, and
    None (age unknown: spared) when they are after ``now`` too or unknown."""
    if entry.id_time <= now:
        return entry.last_written
    times = [o.last_modified for o in entry.objects if o.last_modified is not None]
    newest = max(times, default=None)
    return newest if newest is not None and newest <= now else None


def _recent(
    upload: IncompleteUpload, spared: set[str], going: set[str], cutoff: datetime, now: datetime
) -> bool:
    """Whether ``upload`` lies in a spared backup or one whose ID is newer than ``cutoff``;
    one whose ID is dated after ``now`` is recent unless its backup is ``going`` (an
    incomplete backup deleted as stale by its objects' times)."""
    parts = upload.key.split("/")
    if len(parts) < 3 or not BACKUP_ID.match(parts[1]):
        return False
    if parts[1] in spared:
        return True
    dated = parse_backup_id(parts[1])
    if dated > now:
        return parts[1] not in going
    return dated >= cutoff
