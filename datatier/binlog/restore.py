"""``datatier restore --until``: the base backup, then the archived binlogs up to the target.

The order keeps every refusal before any cost or change:

1. :func:`~datatier.binlog.pitr.plan_pitr` (reads only): the target, the base backup, the
   segments; exit 2 for a target it cannot reach or a gap;
2. the target server is checked (non-empty databases refused unless ``--force``, packet size);
3. archived objects, of the backup and of the binlog archive, are all requested at once;
   then ``--wait`` polls, else exit 5;
4. the segments are staged (downloaded once, SHA-256 checked) and scanned: what cannot be
   replayed (see :mod:`datatier.mysql.binlog.translate`) is refused, exit 2, nothing changed;
5. the base backup is restored (the logical restore), then the segments are replayed from
   the backup's GTID position to the target, renamed, restored databases/tables only.

The class has the shape of the restore-engine interface (plan, check_target, apply,
post_check) so it can become the engine that wraps the logical one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from datatier.backup.bringback import ArchiveState, bring_back
from datatier.backup.manifest import ObjectRecord
from datatier.backup.restore import (
    RestoreOptions,
    RestoreReport,
    check_accounted,
    check_target_empty,
    restore_mysql,
    select_objects,
)
from datatier.binlog.pitr import PitrPlan
from datatier.binlog.records import iso
from datatier.binlog.replay import ApplyReport, ScanReport, apply, scan
from datatier.errors import NotReadyYet, UsageError
from datatier.log import get_logger
from datatier.mysql.binlog.applier import Applier
from datatier.mysql.binlog.source import charset_names, database_names, max_allowed_packet
from datatier.mysql.binlog.translate import Selection
from datatier.mysql.connection import Endpoint
from datatier.mysql.target import check_not_replica, check_packet_size
from datatier.pipeline.staging import Staged, Wanted, stage
from datatier.storage.base import MiB, ObjectStore

log = get_logger(__name__)


@dataclass
class PitrReport:
    """What a point-in-time restore did (or, on a dry run, would do)."""

    base: dict[str, Any]
    target: str
    start: str
    segments: list[dict[str, Any]]
    replay_bytes: int
    replay_stored_bytes: int
    archived: int
    restore_requested: int
    dry_run: bool
    scan: dict[str, Any] | None = None
    replayed: dict[str, Any] | None = None
    seconds: float = 0.0
    covered_until: str = ""
    by_class: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class PitrRestore:
    """One point-in-time restore of ``plan`` with ``options`` (see module docstring)."""

    def __init__(self, plan: PitrPlan, options: RestoreOptions) -> None:
        if options.target is None:
            raise UsageError("a MySQL restore needs a target server")
        self.plan = plan
        self.options = options
        self.target: Endpoint = options.target
        manifest = plan.manifest
        unknown = sorted(set(options.renames) - set(manifest.databases))
        if unknown:
            raise UsageError(f"--rename names databases not in the backup: {', '.join(unknown)}")
        self.objects = select_objects(manifest, options.tables, options.databases)
        sources = sorted({o.database for o in self.objects if o.database})
        self.targets = {db: options.renames.get(db, db) for db in sources}
        tables = None
        if options.tables:
            tables = frozenset((t.split(".", 1)[0], t.split(".", 1)[1]) for t in options.tables)
        self.selection = Selection(
            databases=frozenset(sources),
            renames={s: d for s, d in self.targets.items() if s != d},
            tables=tables,
        )
        self.charsets: dict[int, str] = {}
        self.binlog = options.binlog

    # -- the restore-engine shape -----------------------------------------------------------

    def check_target(self) -> None:
        """Refusals on the target server, before anything is requested or changed."""
        manifest = self.plan.manifest
        check_accounted(manifest, self.objects)
        check_packet_size(self.target, int(manifest.options.get("max_statement_bytes") or 0))
        options = self.options
        if check_not_replica(self.target, options.target_role, allow=options.allow_replica_target):
            self.binlog = False  # allowed onto a replica: never into its binlog
        if not options.force and not options.dry_run:
            check_target_empty(self.target, sorted(self.targets.values()))

    def bring_back(self, on_wait: Callable[[int, int], None] | None) -> ArchiveState:
        """Request every archived object (backup and binlogs) at once, then wait (--wait)
        or raise NotReadyYet (exit 5)."""
        stores: list[tuple[ObjectStore, list[ObjectRecord]]] = [
            (self.plan.store, self.objects),
            (self.plan.archive_store, [r.object_record() for r in self.plan.segments]),
        ]
        quick = replace(self.options, wait=False)
        states: list[ArchiveState] = []
        pending: list[NotReadyYet] = []
        for store, objects in stores:
            try:
                states.append(bring_back(store, objects, quick))
            except NotReadyYet as exc:
                pending.append(exc)
        if pending and not self.options.wait:
            raise NotReadyYet(
                "; ".join(e.message for e in pending),
                hint="run the same command again later, or add --wait",
            )
        if pending:
            states = [
                bring_back(store, objects, self.options, on_wait) for store, objects in stores
            ]
        classes: dict[str, int] = {}
        for state in states:
            for name, count in state.classes.items():
                classes[name] = classes.get(name, 0) + count
        return ArchiveState(
            classes,
            sum(s.archived for s in states),
            sum(s.requested for s in states),
        )

    def stage(self) -> Staged:
        wanted = [Wanted(r.key or "", r.size, r.sha256) for r in self.plan.segments]
        return stage(self.plan.archive_store, wanted, jobs=self.options.jobs)

    def _loader(self, staged: Staged) -> Callable[[Any], bytes]:
        return lambda record: b"".join(staged.decompressed(record.key))

    def scan(self, staged: Staged, max_binlog: int) -> ScanReport:
        """Read the staged segments; refuse (exit 2) what cannot be replayed."""
        selection = replace(
            self.selection,
            known_databases=frozenset(
                database_names(self.target) | set(self.plan.manifest.databases)
            ),
        )
        self.selection = selection
        self.charsets = charset_names(self.target)
        report = scan(
            self.plan.segments,
            self._loader(staged),
            self.plan.start,
            self.plan.target,
            selection,
            max_binlog=max_binlog,
        )
        return report

    def apply(
        self,
        staged: Staged,
        max_binlog: int,
        on_loaded: Callable[[ObjectRecord], None] | None,
    ) -> tuple[RestoreReport, ApplyReport]:
        """The base restore, then the replay."""
        base = restore_mysql(
            self.plan.manifest, self.plan.store, replace(self.options, until=None), on_loaded
        )
        applier = Applier(self.target, binlog=self.binlog)
        charsets = self.charsets
        replayed = apply(
            self.plan.segments,
            self._loader(staged),
            self.plan.start,
            self.plan.target,
            self.selection,
            applier,
            lambda cid: charsets.get(cid, "utf8mb4"),
            max_binlog=max_binlog,
        )
        return base, replayed


def restore_pitr(
    plan: PitrPlan,
    options: RestoreOptions,
    on_loaded: Callable[[ObjectRecord], None] | None = None,
    on_wait: Callable[[int, int], None] | None = None,
) -> PitrReport:
    """Run a point-in-time restore (see module docstring)."""
    started = time.monotonic()
    job = PitrRestore(plan, options)
    job.check_target()
    archive = job.bring_back(on_wait)
    base_plan = RestoreReport.plan(
        plan.manifest,
        job.objects,
        job.target.label,
        job.targets,
        ArchiveState({}),
        len({(o.database, o.table) for o in job.objects if o.kind == "schema"}),
        options.dry_run,
    )
    by_class: dict[str, int] = {}
    for record in plan.segments:
        by_class[record.storage_class] = by_class.get(record.storage_class, 0) + 1
    report = PitrReport(
        base=base_plan.to_json(),
        target=plan.target_text,
        start=str(plan.start),
        segments=[_segment_json(r) for r in plan.segments],
        replay_bytes=plan.replay_bytes,
        replay_stored_bytes=sum(r.size for r in plan.segments),
        archived=archive.archived,
        restore_requested=archive.requested,
        dry_run=options.dry_run,
        covered_until=plan.covered_until,
        by_class=by_class,
    )
    if options.dry_run:
        return report
    packet = max_allowed_packet(job.target)
    max_binlog = max(64 * 1024, min(8 * MiB, (packet - 8192) * 3 // 4))
    with job.stage() as staged:
        scanned = job.scan(staged, max_binlog)
        if scanned.largest_statement + 1024 > packet:
            raise UsageError(
                f"the replay holds a statement of {scanned.largest_statement} bytes; target "
                f"{job.target.label} has max_allowed_packet = {packet}",
                hint="raise max_allowed_packet on the target, then retry",
            )
        report.scan = {
            "transactions": scanned.transactions,
            "skipped": scanned.skipped,
            "statement_bytes": scanned.statement_bytes,
            "last": str(scanned.last or ""),
            "last_time": iso(scanned.last_ts) if scanned.last_ts else None,
            "stop": scanned.stop,
        }
        base, replayed = job.apply(staged, max_binlog, on_loaded)
    report.base = {**base.to_json(), "seconds": base.seconds}
    report.replayed = dict(replayed.__dict__)
    report.seconds = round(time.monotonic() - started, 3)
    log.info(
        "restore.pitr_completed",
        backup_id=plan.manifest.backup_id,
        target=plan.target_text,
        transactions=replayed.transactions,
        last=replayed.last,
        seconds=report.seconds,
    )
    return report


def _segment_json(record: Any) -> dict[str, Any]:
    return {
        "key": record.key,
        "storage_class": record.storage_class,
        "size": record.size,
        "raw_size": record.raw_size,
        "transactions": record.transactions,
        "from": str(record.gtid_start),
        "to": str(record.gtid_end),
        "first_time": iso(record.first_ts) if record.first_ts else None,
        "last_time": iso(record.last_ts) if record.last_ts else None,
    }
