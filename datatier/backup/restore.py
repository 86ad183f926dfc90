"""``datatier restore``: one sequence for every engine, so every restore is equally safe.

Contract, in order (the engine, chosen by the manifest's ``engine`` in
:mod:`datatier.backup.engines`, decides what and where; this module decides when):

1. The backup is found by ID in the stores of the configured policies (a manifest must
   exist); the engine's :meth:`~datatier.backup.engine.RestoreEngine.plan` selects the
   objects and validates the options (exit 2 for names the backup does not hold, exit 4 for a
   manifest that does not account for what it records or a broken chain).
2. Every refusal about the target (:meth:`check_target`: a replica or read-only server, a
   non-empty database or datadir, too little space...) comes next, before anything costs
   money or changes state; so does the key check of encrypted objects (no identity, or none
   that opens them: exit 2, see :mod:`datatier.backup.encryption`). A dry run makes the
   same checks and stops after step 3's report; with ``scan`` it first stages the engine's
   rehearsal objects alone (step 4, never an archive request) and lets the engine rehearse
   its content checks on them (a point-in-time restore's binlog scan).
3. Objects in GLACIER/DEEP_ARCHIVE are restored: requests go out for all of them at once;
   then either we wait (polling) or raise NotReadyYet (exit 5) so the same command can be
   run again later. The report gives the storage classes the store lists now.
4. Every object is downloaded once into a private staging directory and its size and
   SHA-256 checked *before anything is applied* (exit 4 naming the first bad one, nothing
   applied; free space is checked first, exit 2); encrypted objects are decrypted there and
   their plaintext checked too (:mod:`datatier.pipeline.staging`).
5. The engine applies the verified copies, then checks the result (row counts, a prepared
   datadir). An interruption says what may be partly applied, or that nothing was changed
   when the engine knows it stopped before its first change.

A real run holds the target from step 2 to the end (:meth:`claim_target`: for MySQL and
MongoDB, one restore at a time into each target database, exit 5 for a second one).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datatier.backup.bringback import ArchiveState, bring_back
from datatier.backup.catalog import Catalog, locate
from datatier.backup.encryption import unlock
from datatier.backup.engine import RestoreEngine, RestoreOptions, RestorePlan, RestoreProgress
from datatier.backup.engines import restore_engine
from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.backup.parents import unless_deleted
from datatier.backup.service import open_catalogs
from datatier.backup.stores import for_transfers
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, NotReadyYet, UsageError
from datatier.log import get_logger
from datatier.pipeline.encrypt import Identities
from datatier.pipeline.staging import Staged, Wanted, stage_from
from datatier.storage.base import ObjectStore

log = get_logger(__name__)


@dataclass
class RestoreReport:
    """What was (or, on a dry run, would be) done; ``details`` are the engine's own facts
    (databases and tables, a physical chain...), merged into the JSON form."""

    backup_id: str
    policy: str
    engine: str
    target: str
    objects: int
    bytes: int
    raw_bytes: int
    by_class: dict[str, int]
    archived: int
    restore_requested: int
    dry_run: bool
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        core = {k: v for k, v in self.__dict__.items() if k not in ("details", "summary")}
        return {**self.details, **core}


def find_backup(
    loaded: LoadedConfig, backup_id: str, policy: str | None = None
) -> tuple[Manifest, ObjectStore]:
    """The manifest of ``backup_id`` and the store holding it (UsageError if unknown)."""
    catalog, manifest = locate_backup(loaded, backup_id, policy)
    return manifest, catalog.store


def locate_backup(
    loaded: LoadedConfig, backup_id: str, policy: str | None = None
) -> tuple[Catalog, Manifest]:
    """The catalog holding ``backup_id`` and its manifest (UsageError if unknown).

    The lookup is read-only (each request bounded by ``s3.lookup_timeout``: an endpoint
    that never answers fails it, exit 3, in about that long); the catalog returned has the
    store's full settings, for the restore's downloads."""
    catalog, manifest = locate(open_catalogs(loaded, lookup=True), backup_id, policy)
    full = Catalog(for_transfers(catalog.store, loaded.config), catalog.policies)
    return full, manifest


def restore_backup(
    loaded: LoadedConfig,
    manifest: Manifest,
    catalog: Catalog,
    options: RestoreOptions,
    progress: RestoreProgress | None = None,
) -> RestoreReport:
    """Restore ``manifest`` (found in ``catalog``) as ``options`` say (module docstring)."""
    started = time.monotonic()
    engine: RestoreEngine = restore_engine(loaded, manifest, catalog, options)
    plan = engine.plan()
    # A real run holds the target to its last check: one restore at a time.
    claim = contextlib.nullcontext() if options.dry_run else engine.claim_target(plan)
    with claim, unless_deleted(catalog.store, manifest.policy, manifest.backup_id):
        progress = progress or RestoreProgress()
        return _restore(loaded, manifest, engine, plan, catalog, options, progress, started)


def _restore(
    loaded: LoadedConfig,
    manifest: Manifest,
    engine: RestoreEngine,
    plan: RestorePlan,
    catalog: Catalog,
    options: RestoreOptions,
    progress: RestoreProgress,
    started: float,
) -> RestoreReport:
    """:func:`restore_backup` from the target's checks on."""
    engine.check_target(plan)
    identities = unlock(loaded.config, plan.objects, f"backup {manifest.backup_id}")
    groups = _by_store(plan, catalog.store)
    archive = _bring_back(groups, options, progress)  # after every refusal: requests cost money
    report = _report(plan, engine.name, options, archive)
    if options.dry_run:
        if options.scan:
            _rehearse(engine, plan, catalog.store, options, progress, identities)
            report.details, report.summary = dict(plan.details), list(plan.summary)
        return report
    try:
        staging = _stage(groups, options, progress, identities)
    except IntegrityFailure as exc:
        better = engine.staging_failed(plan, exc)
        if better is exc:
            raise
        raise better from exc
    with staging as staged:
        engine.check_staged(plan, staged)
        if progress.on_replayed is not None:
            engine.watch_replay(progress.on_replayed)
        try:
            engine.apply(plan, staged, progress.on_loaded)
        except BaseException as exc:
            if engine.changed_target():
                touched = plan.touches or plan.target
                exc.add_note(f"the restore was interrupted: {touched} may be partly loaded")
            else:
                exc.add_note(f"the restore stopped before changing anything on {plan.target}")
            raise
    engine.post_check(plan)
    report.details = dict(plan.details)  # what apply learned (a replay's end, say)
    report.summary = list(plan.summary)  # and the checks of the staged objects (a scan's)
    report.seconds = round(time.monotonic() - started, 3)
    log.info(
        "restore.completed",
        backup_id=manifest.backup_id,
        engine=engine.name,
        target=plan.target,
        objects=len(plan.objects),
        seconds=report.seconds,
    )
    return report


def _by_store(
    plan: RestorePlan, default: ObjectStore, objects: list[ObjectRecord] | None = None
) -> list[tuple[ObjectStore, list[ObjectRecord]]]:
    """``objects`` (default: the plan's) grouped by the store that holds them (apply order
    kept)."""
    groups: dict[str, tuple[ObjectStore, list[ObjectRecord]]] = {}
    for obj in plan.objects if objects is None else objects:
        store = plan.stores.get(obj.key, default)
        groups.setdefault(store.url, (store, []))[1].append(obj)
    return list(groups.values())


def _stage(
    groups: list[tuple[ObjectStore, list[ObjectRecord]]],
    options: RestoreOptions,
    progress: RestoreProgress,
    identities: Identities | None,
) -> Staged:
    """``groups``' objects downloaded, checked and decrypted into the staging directory."""
    wanted = [
        (store, [Wanted(o.key, o.size, o.sha256, o.plain_size, o.plain_sha256) for o in objects])
        for store, objects in groups
    ]
    return stage_from(
        wanted,
        directory=Path(options.staging_dir) if options.staging_dir else None,
        jobs=options.jobs,
        on_object=progress.on_checked,
        identities=identities,
    )


def _rehearse(
    engine: RestoreEngine,
    plan: RestorePlan,
    default: ObjectStore,
    options: RestoreOptions,
    progress: RestoreProgress,
    identities: Identities | None,
) -> None:
    """``--dry-run --scan``: the engine's rehearsal objects downloaded and checked as a
    restore stages them, then :meth:`~RestoreEngine.rehearse`d; nothing is applied and the
    copies are removed. UsageError (before any download) when one is archived and not
    readable: a dry run sends no archive-restore request."""
    groups = _by_store(plan, default, engine.rehearsal_objects(plan))
    cold = [o.key for store, objects in groups for o in objects if not store.head(o.key).readable]
    if cold:
        raise UsageError(
            f"--scan: {len(cold)} of {sum(len(o) for _, o in groups)} objects to scan are "
            f"archived and not readable yet, e.g. {cold[0]}",
            hint="a dry run requests no archive restore; the restore itself requests them and "
            "scans them before it applies anything",
        )
    with _stage(groups, options, progress, identities) as staged:
        engine.rehearse(plan, staged)


def _bring_back(
    groups: list[tuple[ObjectStore, list[ObjectRecord]]],
    options: RestoreOptions,
    progress: RestoreProgress,
) -> ArchiveState:
    """Archived objects of every store requested at once; then ``--wait`` polls, else
    NotReadyYet (exit 5) naming what is still coming back."""
    if len(groups) == 1:
        store, objects = groups[0]
        return bring_back(store, objects, options, progress.on_wait)
    quick = replace(options, wait=False)
    states: list[ArchiveState] = []
    pending: list[NotReadyYet] = []
    for store, objects in groups:
        try:
            states.append(bring_back(store, objects, quick))
        except NotReadyYet as exc:
            pending.append(exc)
    if pending and not options.wait:
        raise NotReadyYet(
            "; ".join(e.message for e in pending),
            hint="run the same command again later, or add --wait",
        )
    if pending:
        states = [bring_back(s, objects, options, progress.on_wait) for s, objects in groups]
    classes: dict[str, int] = {}
    for state in states:
        for name, count in state.classes.items():
            classes[name] = classes.get(name, 0) + count
    return ArchiveState(classes, sum(s.archived for s in states), sum(s.requested for s in states))


def _report(
    plan: RestorePlan, engine: str, options: RestoreOptions, archive: ArchiveState
) -> RestoreReport:
    objects = plan.objects
    return RestoreReport(
        backup_id=plan.manifest.backup_id,
        policy=plan.manifest.policy,
        engine=engine,
        target=plan.target,
        objects=len(objects),
        bytes=sum(o.size for o in objects),
        raw_bytes=sum(o.raw_size for o in objects),
        by_class=archive.classes,
        archived=archive.archived,
        restore_requested=archive.requested,
        dry_run=options.dry_run,
        details=dict(plan.details),
        summary=list(plan.summary),
    )
