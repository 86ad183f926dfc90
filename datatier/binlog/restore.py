"""The point-in-time restore engine: the base backup, then the archived binlogs to the target.

It wraps the logical MySQL restore (:class:`~datatier.mysql.restore.LogicalRestore`) and is
chosen by the registry when ``--until`` or ``--until-gtid`` is given; the generic sequence
of :func:`datatier.backup.restore.restore_backup` keeps every refusal before any cost:

* ``plan`` (reads only): the base's objects and the segments from its GTID position to the
  target (:func:`~datatier.binlog.pitr.plan_pitr`: exit 2 for a target it cannot reach or a
  gap), the segments living in the binlog archive's store;
* whatever the base restore finds wrong with the base (its manifest, while planning; an
  object's bytes or content, while staging, checking or applying it: exit 4) is refused
  naming the backups that could serve as base instead
  (:func:`~datatier.binlog.pitr.refuse_base`), never used unasked;
* ``check_target``: names of a base not recording its source's ``lower_case_table_names``
  differing only by letter case on a target folding them (whatever ``--tables``/``--rename``
  select: the replay could not tell them apart); a target running the event scheduler
  while the base or the target databases hold events (they would run during the replay;
  :meth:`PitrRestore._check_scheduler`); the logical restore's refusals (such names among
  what is restored, packet size, a replica, non-empty);
* archived objects of the backup and of the archive are requested together, then staged
  (downloaded once, SHA-256 checked);
* ``apply``: the staged segments are scanned first, and what cannot be replayed (see
  :mod:`datatier.mysql.binlog.translate`) or exceeds the target's packet limit is refused
  (exit 2) before anything changes, and so are events it creates, alters or drops while the
  target runs the event scheduler, and tables the replay writes (created after
  the base) whose names differ only by letter case from another's, on a target folding
  them (:func:`~datatier.mysql.casenames.check_replay_collisions`); with ``--force``, the
  target's objects named like one the replay creates are dropped
  (:mod:`datatier.mysql.window_objects`: in place, they hold their state of after the
  target); then the base restore, then the replay from the backup's GTID to the target,
  renamed, restored databases/tables only.
* ``post_check``: none of the base's row counts (the replay changed them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Self

from datatier.backup.catalog import Catalog
from datatier.backup.engine import RestoreOptions, RestorePlan
from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.backup.names import held_tables
from datatier.backup.policy import Policy
from datatier.backup.service import load_policy
from datatier.binlog.pitr import (
    PitrEngine,
    PitrPlan,
    pitr_details,
    plan_pitr,
    refuse_base,
    segment_lines,
    segment_loader,
)
from datatier.binlog.records import iso
from datatier.binlog.replay import ScanReport, apply, scan
from datatier.config import LoadedConfig
from datatier.display import human_bytes
from datatier.errors import IntegrityFailure, UsageError
from datatier.log import get_logger
from datatier.mysql.binlog.applier import Applier
from datatier.mysql.binlog.selection import Selection
from datatier.mysql.binlog.source import (
    charset_names,
    database_names,
    folds_table_names,
    max_allowed_packet,
)
from datatier.mysql.casenames import (
    check_case_collisions,
    check_replay_collisions,
    check_replay_spelling,
)
from datatier.mysql.connection import Endpoint
from datatier.mysql.foreign_key_names import Declared
from datatier.mysql.interrupt import Interrupter
from datatier.mysql.labels import name_label, table_label
from datatier.mysql.lettercase import name_key
from datatier.mysql.references import recorded_references
from datatier.mysql.restore import LogicalRestore
from datatier.mysql.scheduler import enabled_events, scheduler_refusal, scheduler_runs
from datatier.mysql.window_objects import Present, drop_present, present_objects
from datatier.pipeline.staging import Staged
from datatier.storage.base import MiB

log = get_logger(__name__)


class PitrRestore(PitrEngine):
    """Restores a ``mysql`` backup, then replays archived binlogs up to ``--until``."""

    name = "mysql+binlog"

    @classmethod
    def for_manifest(
        cls, loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreOptions
    ) -> Self:
        if (options.until is None) == (options.until_gtid is None):
            raise UsageError("give exactly one of --until TIME and --until-gtid GTID")
        if options.grants:
            raise UsageError("--grants is not replayed by a point-in-time restore")
        policy = load_policy(loaded, manifest.policy)
        pitr = plan_pitr(
            loaded,
            catalog,
            policy,
            until=options.until,
            until_gtid=options.until_gtid,
            backup_id=manifest.backup_id,
        )
        base_options = replace(options, until=None, until_gtid=None)
        base = LogicalRestore.for_manifest(loaded, manifest, catalog, base_options)
        base.tells_left = False  # told by this engine, with what the replay creates
        return cls(pitr, base, options, policy)

    def __init__(
        self, pitr: PitrPlan, base: LogicalRestore, options: RestoreOptions, policy: Policy
    ) -> None:
        self.pitr = pitr
        self.policy = policy
        self.base = base
        self.options = options
        self.base_plan: RestorePlan | None = None
        self.selection = Selection(databases=frozenset(), renames={})
        self._max_binlog = 0  # set by check_staged, from the target's max_allowed_packet
        self._replaying = False  # the last apply got to the replay
        self._created: set[tuple[str, str, str]] = set()  # what the replay creates (_scan)
        self._fold = False  # whether the replay compares names folded (_scan)
        self._dropped_databases: set[str] = set()  # restored ones the replay drops (_scan)
        self._window_dropped: list[Present] = []  # --force: dropped before loading (apply)

    def _includes(self, fold: bool = False) -> Callable[[str, str], bool] | None:
        """For a base that left tables of its databases out (``options.ignored_tables``:
        the policy's selection when it was taken), which tables the replay keeps: those the
        base holds, none it left out, and for a table created later, what the policy says
        now (of its database as the base spells it). None when the base left nothing out.
        With ``fold`` it is asked, and compares, lower-cased names (see :class:`Selection`)."""
        manifest = self.pitr.manifest
        ignored = {str(t) for t in manifest.options.get("ignored_tables") or ()}
        if not ignored:
            return None
        held = {(name_key(t.database, fold), name_key(t.name, fold)) for t in manifest.tables}
        left_out = {name_key(t, fold) for t in ignored}
        spelled = {name_key(d, fold): d for d in manifest.databases}
        policy = self.policy

        def includes(database: str, table: str) -> bool:
            if (database, table) in held:
                return True
            if f"{database}.{table}" in left_out:
                return False
            return policy.includes_table(spelled.get(database, database), table)

        return includes

    def plan(self) -> RestorePlan:
        with self._refusing_base():
            base = self.base.plan()
        self.base_plan = base
        pitr, targets = self.pitr, self.base.targets
        tables = frozenset(self.options.tables) if self.options.tables else None
        self.selection = Selection(
            databases=frozenset(targets),
            renames={s: d for s, d in targets.items() if s != d},
            tables=tables,
            includes=self._includes(),
        )
        segments = [r.object_record() for r in pitr.segments]
        return RestorePlan(
            manifest=pitr.manifest,
            objects=[*base.objects, *segments],
            target=base.target,
            details=pitr_details(pitr, base.details),
            summary=[*base.summary, *segment_lines(pitr, "")],
            touches=base.touches,
            stores={r.key: pitr.archive_store for r in segments},
        )

    def claim_target(self, plan: RestorePlan) -> contextlib.AbstractContextManager[None]:
        assert self.base_plan is not None
        return self.base.claim_target(self.base_plan)

    def check_target(self, plan: RestorePlan) -> None:
        """For a base that does not record its source's ``lower_case_table_names`` (older
        backups: the replay then compares names as the target does, :meth:`_folds`), names
        of the base differing only by letter case are refused on a target folding them,
        whatever is selected (:mod:`datatier.mysql.casenames`: the replay could not tell
        their statements apart); then the base restore's checks (those names among what is
        restored refused too); what they add to its report (``--force`` replacing objects
        of another kind) goes to this one's too."""
        assert self.base_plan is not None
        manifest = self.pitr.manifest
        if "lower_case_table_names" not in manifest.source:
            held = held_tables(manifest)
            everything = set(manifest.databases) | {db for db, _ in held}
            check_case_collisions(
                self.base.server, {db: db for db in everything}, held, replay=manifest.backup_id
            )
        self._check_scheduler()
        before = len(self.base_plan.summary)
        self.base.check_target(self.base_plan)
        if self.options.force and self.options.dry_run and not self.options.scan:
            plan.summary.append(
                "--force also drops what the replay window creates or names that the target "
                "holds, before loading, and leaves other tables as they are: "
                "--dry-run --scan reads the segments and lists both"
            )
        plan.details["base"].update(self.base_plan.details)
        plan.summary[before:before] = self.base_plan.summary[before:]

    def check_staged(self, plan: RestorePlan, staged: Staged) -> None:
        """Scan the segments up to the target before anything is restored: a target the
        archive does not reach, a transaction that cannot be replayed or a statement over
        the target's ``max_allowed_packet`` is refused (exit 2) with nothing changed; the
        base backup's own checks first."""
        assert self.base_plan is not None, "plan runs first"
        with self._refusing_base():
            self.base.check_staged(self.base_plan, staged)
        self._scan(plan, staged)
        if self.options.force:
            self._check_kept_names(staged)
            if not self.options.tables:
                self._tell_definitions_left(plan, staged)

    def rehearse(self, plan: RestorePlan, staged: Staged) -> None:
        """The scan of :meth:`check_staged` over the staged segments alone: its refusals
        (exit 2) and ``plan.details["scan"]`` (transactions, the last GTID and time the
        replay would reach) during a dry run."""
        self._scan(plan, staged)

    def _folds(self, server: Endpoint) -> bool:
        """Whether the replay compares the binlog's names lower-cased: as the base backup's
        source did (its ``lower_case_table_names`` among the manifest's source facts; the
        archive is of the same servers), else (an older backup) as the target ``server``
        does. A case-sensitive source's `SHOP` is not the restored `shop` on a folding
        target."""
        recorded = self.pitr.manifest.source.get("lower_case_table_names")
        if recorded is not None:
            return bool(int(recorded))
        return folds_table_names(server)

    def _lowered(self, server: Endpoint) -> frozenset[str]:
        """For a base whose source folds names (recorded), replayed into the case-sensitive
        ``server``: the base's table names, lower-cased, as a source with
        ``lower_case_table_names=1`` stored them (the replay spells them so, see
        :class:`Selection`). One with 2 stored them as created, which its statements need
        not repeat: refused (exit 2, :func:`check_replay_spelling`)."""
        manifest = self.pitr.manifest
        check_replay_spelling(server, int(manifest.source.get("lower_case_table_names") or 0))
        return frozenset(name_key(t, True) for _, t in held_tables(manifest))

    def _check_written(self, server: Endpoint, fold: bool, scanned: ScanReport) -> None:
        """Tables the replay writes whose names differ only by letter case from another's
        (restored or written) refused on a target folding them
        (:func:`check_replay_collisions`): from a case-sensitive source, as its statements
        and table maps name them; from a base not recording its source's setting (names
        compared as the target does), as the table maps spell them: a source folding names
        spells each table one way there."""
        assert self.base_plan is not None, "plan runs first"
        if not fold:
            written = scanned.tables
        elif "lower_case_table_names" not in self.pitr.manifest.source:
            written = scanned.mapped
        else:
            return
        restored = self.base.created_names(self.base_plan)
        check_replay_collisions(server, self.base.targets, restored, written)

    def _scan(self, plan: RestorePlan, staged: Staged) -> None:
        server = self.base.server
        packet = max_allowed_packet(server)
        self._max_binlog = max(64 * 1024, min(8 * MiB, (packet - 8192) * 3 // 4))
        fold = self._folds(server)
        charsets = charset_names(server)
        self.selection = replace(
            self.selection,
            known_databases=frozenset(database_names(server) | set(self.pitr.manifest.databases)),
            includes=self._includes(fold),
        ).folded(fold)
        if fold and not folds_table_names(server):
            self.selection = replace(self.selection, lowered=self._lowered(server))
        scanned = scan(
            self.pitr.segments,
            segment_loader(staged),
            self.pitr.start,
            self.pitr.target,
            self.selection,
            lambda cid: charsets.get(cid, "utf8mb4"),
            max_binlog=self._max_binlog,
        )
        self._check_written(server, fold, scanned)
        self._fold, self._created = fold, self._window_created(scanned.created, fold)
        self._check_scheduler(window=True)
        self._dropped_databases = scanned.dropped_databases
        if self.options.force:  # told now, looked up again before loading
            present = self._present(server)
            self._check_drawn_from(present)
            if present:
                plan.details["window_replaced"] = [p.to_json() for p in present]
                plan.summary.append(
                    "--force drops, before loading, what the replay window creates or names "
                    "and the target holds (created in the replay window, or named by it: the "
                    "replay recreates it as at the target, or leaves it gone as the source "
                    f"had it): {', '.join(map(str, present))}"
                )
            if not self.options.tables:
                self._tell_left(plan)
        if scanned.largest_statement + 1024 > packet:
            raise UsageError(
                f"the replay holds a statement of {scanned.largest_statement} bytes; target "
                f"{server.label} has max_allowed_packet = {packet}",
                hint="raise max_allowed_packet on the target, then retry",
            )
        plan.details["scan"] = {
            "transactions": scanned.transactions,
            "skipped": scanned.skipped,
            "statement_bytes": scanned.statement_bytes,
            "last": str(scanned.last or ""),
            "last_time": iso(scanned.last_ts) if scanned.last_ts else None,
            "stop": scanned.stop,
            "account_statements_skipped": {
                "count": scanned.accounts_skipped,
                "listed": [{"gtid": g, "statement": t} for g, t in scanned.accounts_listed],
            },
        }
        plan.summary.append(
            f"scanned: {scanned.transactions} transaction(s) to replay, "
            f"{human_bytes(scanned.statement_bytes)} of statements, {scanned.reached_text}; "
            f"{scanned.skipped} skipped (in the base backup, or of nothing restored)"
        )
        plan.summary.extend(_accounts_text(scanned.accounts_skipped, scanned.accounts_listed))

    def _check_scheduler(self, *, window: bool = False) -> None:
        """UsageError (exit 2, nothing changed) when the target runs the event scheduler
        (:mod:`datatier.mysql.scheduler`) and an event could run in the restored databases
        during the replay: the base holds events of them (restored with their status before
        the replay), the target databases hold enabled ones (kept by ``--force``), or, once
        scanned (``window``), the replay creates, alters or drops one. Such an event writes
        between the replayed transactions: rows of the restore's own time mixed with those
        of the target moment, or a key a replayed row needs taken (the replay fails
        half-way). Turning the scheduler off is the user's call: it holds every database's
        events."""
        assert self.base_plan is not None, "plan runs first"
        server, targets = self.base.server, self.base.targets
        if not scheduler_runs(server):
            return
        found = []
        if window:
            folded = {name_key(s, self._fold): d for s, d in targets.items()}
            named = sorted(
                table_label(folded.get(db, db), name)
                for kind, db, name in self._created
                if kind == "event"
            )
            if named:
                found.append(f"the replay window creates, alters or drops {', '.join(named)}")
        else:
            objects = self.base_plan.objects
            based = sorted(
                {
                    targets[o.database]
                    for o in objects
                    if o.kind == "events" and o.database in targets
                }
            )
            if based:
                found.append(
                    "the base backup holds events of "
                    f"{', '.join(map(name_label, based))}, restored before the replay"
                )
            kept = enabled_events(server, targets.values())
            if kept:
                found.append(f"the target holds the enabled events {', '.join(kept)}")
        if found:
            raise scheduler_refusal(server, found)

    def _window_created(
        self, created: set[tuple[str, str, str]], fold: bool
    ) -> set[tuple[str, str, str]]:
        """Of the objects the scanned replay creates or names (or writes rows to), those
        :meth:`_drop_window_objects` drops when the target holds them: all but the tables,
        views and sequences the base restore creates (its own DROP ... IF EXISTS replaces
        them). Triggers, routines and events are kept even when the base has them: dropped
        first, the base recreates its own."""
        assert self.base_plan is not None, "plan runs first"
        based = {
            (name_key(db, fold), name_key(t, fold))
            for db, t in self.base.created_names(self.base_plan)
        }
        return {o for o in created if o[0] not in _TABLE_KINDS or (o[1], o[2]) not in based}

    def _present(self, server: Endpoint) -> list[Present]:
        """The target's objects named like one the replay creates (:meth:`_window_created`;
        :mod:`datatier.mysql.window_objects`)."""
        targets = {name_key(s, self._fold): d for s, d in self.base.targets.items()}
        return present_objects(server, self._created, targets, names_folded=self._fold)

    def _check_drawn_from(self, present: list[Present]) -> None:
        """UsageError (exit 2, nothing changed) when a table the base restores draws its
        DEFAULT from a sequence --force would drop as the window's (the base's table was
        taken while its sequence was gone; the window creates it again): the base would
        fail to load after the drop. Known from the references the backup records."""
        assert self.base_plan is not None, "plan runs first"
        recorded = recorded_references(self.pitr.manifest)
        dropped = {
            (name_key(p.database, True), name_key(p.name, True))
            for p in present
            if p.kind == "sequence"
        }
        if recorded is None or not dropped:
            return
        targets = self.base.targets
        restored = self.base.created_names(self.base_plan)
        for (database, table), found in sorted(recorded.sequences.items()):
            if (database, table) not in restored or database not in targets:
                continue
            for db, name in sorted(found, key=str):
                where = targets.get(db or database, db or database)
                if (name_key(where, True), name_key(name, True)) in dropped:
                    raise UsageError(
                        f"table {table_label(targets[database], table)} of the base draws its "
                        f"DEFAULT from sequence {table_label(where, name)}, which only the "
                        "replay window creates: --force would drop the target's before "
                        "loading the base, which then fails",
                        hint="restore under --rename into a new database and create the "
                        "sequence there first, or replay that window by hand; nothing was "
                        "changed",
                    )

    def _tell_left(self, plan: RestorePlan) -> None:
        """``--force`` of whole databases: the plan's word on the target's tables, views
        and sequences that neither the base nor the replay creates or names (created after
        the target moment), as :meth:`LogicalRestore.tell_left` words it for the backup
        alone; none of a database the replay drops (``DROP DATABASE`` in the window: all
        of it goes), which the plan names instead."""
        assert self.base_plan is not None, "plan runs first"
        created = {(o[1], o[2]) for o in self._created if o[0] in _TABLE_KINDS}
        targets = {name_key(s, self._fold): d for s, d in self.base.targets.items()}
        dropped = sorted(targets[d] for d in self._dropped_databases if d in targets)
        if dropped:
            plan.summary.append(
                "the replay window drops "
                f"{', '.join(map(name_label, dropped))}: nothing of it is left as it is"
            )
        why = "neither the base backup nor the replay window creates or names them"
        self.base.tell_left(plan, self.base_plan, self._fold, created, why, skip=dropped)

    def _check_kept_names(self, staged: Staged) -> None:
        """``--force``: a target table neither the base nor the replay replaces may not
        hold a foreign key named like one either declares, nor a trigger named like one
        of the base (:meth:`LogicalRestore.check_kept_names`): the base's CREATE TABLE or
        the replay's would fail after loading began, the trigger would move. None of a
        database the replay drops."""
        assert self.base_plan is not None, "plan runs first"
        targets = {name_key(s, self._fold): d for s, d in self.base.targets.items()}
        declared: dict[str, Declared] = {}
        for kind, database, name in self._created:
            if database in targets and kind in ("foreign key", "generated foreign key"):
                keys = declared.setdefault(targets[database], Declared())
                if kind == "foreign key":  # its table not noted: "" (any table's)
                    keys.keys.add(("", name))
                else:
                    keys.generated.add(name)
        present = self._present(self.base.server)
        replaced = {(p.database, p.name) for p in present if p.kind in _TABLE_KINDS}
        self.base.check_kept_names(
            self.base_plan,
            staged,
            "neither the base backup nor the replay window creates or names them",
            replaced=replaced,
            declared=declared,
            skip=[targets[d] for d in self._dropped_databases if d in targets],
        )

    def _tell_definitions_left(self, plan: RestorePlan, staged: Staged) -> None:
        """``--force`` of whole databases: the plan's word on the target's routines and
        events neither the base nor the replay defines or names
        (:meth:`LogicalRestore.tell_definitions_left`); none of a database the replay
        drops."""
        assert self.base_plan is not None, "plan runs first"
        targets = {name_key(s, self._fold): d for s, d in self.base.targets.items()}
        named = {(k, targets[d], n) for k, d, n in self._created if d in targets}
        self.base.tell_definitions_left(
            plan,
            self.base_plan,
            staged,
            "neither the base backup nor the replay window creates or names them",
            named=named,
            skip=[targets[d] for d in self._dropped_databases if d in targets],
        )

    def _drop_window_objects(self, plan: RestorePlan, server: Endpoint) -> None:
        """``--force``: the target's objects the replay creates, dropped before the base
        loads (they would meet the replay in their state of after the target: a
        ``CREATE TABLE IF NOT EXISTS`` kept the later rows and the replayed ones were
        added); what was dropped goes to the report's ``window_replaced``."""
        present = self._present(server)
        for p in present:
            log.warning("restore.replacing_window_object", object=str(p))
        try:
            drop_present(server, present, binlog=self.base.binlog, dropped=self._window_dropped)
        finally:
            plan.details.pop("window_replaced", None)  # the check's forecast
            if self._window_dropped:
                plan.details["window_replaced"] = [p.to_json() for p in self._window_dropped]

    def apply(
        self, plan: RestorePlan, staged: Staged, on_loaded: Callable[[ObjectRecord], None] | None
    ) -> None:
        """With ``--force``, the target's objects the replay creates dropped
        (:meth:`_drop_window_objects`); the base backup, then the replay up to the target
        (after :meth:`check_staged`)."""
        assert self.base_plan is not None and self._max_binlog, "check_staged runs first"
        server = self.base.server
        charsets = charset_names(server)
        self._replaying = False
        self._window_dropped = []
        if self.options.force:
            self.base.check_claim()
            self._drop_window_objects(plan, server)
        with self._refusing_base(plan):
            self.base.apply(self.base_plan, staged, on_loaded)
        self._replaying = True
        plan.details["base"].pop("replaced", None)  # the check's forecast, then what was done
        plan.details["base"].update(self.base_plan.details)
        self.base.check_claim()
        applier = Applier(server, binlog=self.base.binlog)
        stopper = Interrupter(server)  # a lost claim kills the replay's connection
        try:
            stopper.watch(applier.conn.thread_id())  # type: ignore[no-untyped-call]
            self.base.on_claim_lost(stopper.fire)
        except BaseException:
            applier.close()
            raise
        replayed = apply(
            self.pitr.segments,
            self.replay_loader(staged),
            self.pitr.start,
            self.pitr.target,
            self.selection,
            applier,
            lambda cid: charsets.get(cid, "utf8mb4"),
            max_binlog=self._max_binlog,
        )
        self.base.check_claim()  # the replay may have ended between the loss and the kill
        plan.details["replayed"] = dict(replayed.__dict__)
        log.info(
            "restore.pitr_replayed",
            backup_id=self.pitr.manifest.backup_id,
            until=self.pitr.target_text,
            transactions=replayed.transactions,
            last=replayed.last,
        )

    def changed_target(self) -> bool:
        """The base restore's answer (:meth:`LogicalRestore.changed_target`), until the
        replay starts; true once a window object was dropped."""
        return self._replaying or bool(self._window_dropped) or self.base.changed_target()

    @contextlib.contextmanager
    def _refusing_base(self, applying: RestorePlan | None = None) -> Iterator[None]:
        """An IntegrityFailure of the base restore (about the base backup: all it reads) as
        the refusal naming the backups that could serve instead; raised by the base's apply
        (``applying``), it names what may be partly loaded, if the target was changed."""
        try:
            yield
        except IntegrityFailure as exc:
            changed = applying is not None and self.base.changed_target()
            touched = (applying.touches or applying.target) if applying and changed else None
            refusal = refuse_base(self.pitr, exc, partly_loaded=touched)
            for note in getattr(exc, "__notes__", ()):
                refusal.add_note(note)  # what the base's apply said it left (placeholders)
            raise refusal from exc


SHOWN_ACCOUNTS = 10
_TABLE_KINDS = ("table", "view", "sequence")  # one namespace of names


def _accounts_text(count: int, listed: list[tuple[str, str]]) -> list[str]:
    """Summary lines of the account statements the replay leaves out (``--json`` lists up
    to :data:`~datatier.mysql.binlog.translate.LISTED_ACCOUNTS`)."""
    if not count:
        return []
    lines = [
        f"{count} account statement(s) NOT replayed (CREATE/DROP USER, GRANT...: they act "
        "on the server's accounts, not on restored databases; redo by hand if needed):"
    ]
    lines += [f"  {gtid}  {text}" for gtid, text in listed[:SHOWN_ACCOUNTS]]
    if count > SHOWN_ACCOUNTS:
        lines.append(f"  ... and {count - SHOWN_ACCOUNTS} more (--json lists {len(listed)})")
    return lines
