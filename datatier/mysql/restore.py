"""The restore engine of logical MySQL backups (:mod:`datatier.mysql.pdump`'s objects).

* ``plan``: the objects of the selected databases/tables (accounts and grants only with
  ``grants``, applied first so DEFINER accounts exist); IntegrityFailure (exit 4) when the
  manifest does not account for every row of them; the target server and the database
  renames; a tampered character set or collation name is refused.
* ``claim_target``: one restore at a time into each target database
  (:mod:`datatier.mysql.claim`); a claim lost while it runs kills its statements on the
  target (:meth:`LogicalRestore.on_claim_lost`) and stops it before its next write.
* ``check_target``: names differing only by letter case (tables, views and sequences of a
  database, target databases after ``--rename``) are refused when the target folds them
  (``lower_case_table_names`` 1 or 2; :mod:`datatier.mysql.casenames`); the target's
  ``max_allowed_packet`` fits the backup's largest statement; a read-only or replica target
  is refused unless ``allow_replica_target`` (then the load runs without binlogging, so no
  errant GTID); a target database that already holds tables, views, sequences, routines
  or events is refused unless ``force``.
* ``apply``: with ``force``, the target's objects named like a table, sequence or view the
  restore creates but of another kind dropped (:mod:`datatier.mysql.otherkinds`;
  nothing else), databases created (one that exists takes the backup's default character
  set and collation, unless ``--tables``: routines' parameters take the database's, so a
  latin1 target database broke utf8mb4 routines), then objects in restore order (schema,
  data, triggers, routines, events, views), tables and data parts in parallel (see
  :class:`~datatier.mysql.load.SQLLoader`), from their verified local copies.
* ``post_check``: every restored table has the manifest's row count.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection, Iterator
from typing import Self

from datatier.backup.catalog import Catalog
from datatier.backup.completeness import check_accounted
from datatier.backup.engine import RestoreEngine, RestoreOptions, RestorePlan
from datatier.backup.manifest import KIND_ORDER, Manifest, ObjectRecord, Section
from datatier.backup.names import TableName, held_tables, left_out_tables, show
from datatier.backup.policy import SYSTEM_DATABASES
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, UsageError
from datatier.log import get_logger
from datatier.mysql.casenames import check_case_collisions
from datatier.mysql.claim import Claim, claim_databases
from datatier.mysql.connection import Endpoint, resolve_target
from datatier.mysql.engines import check_engines, needed_engines
from datatier.mysql.foreign_key_names import (
    Declared,
    check_kept_foreign_keys,
    staged_declared,
    target_foreign_keys,
)
from datatier.mysql.kept_triggers import check_kept_triggers
from datatier.mysql.labels import name_label, table_label
from datatier.mysql.lettercase import name_key
from datatier.mysql.load import SQLLoader
from datatier.mysql.otherkinds import Conflict, created_kinds, drop_conflicts, other_kinds
from datatier.mysql.references import Refs, recorded_references
from datatier.mysql.renamed import rename_references, warn_qualified
from datatier.mysql.rowcheck import check_row_counts
from datatier.mysql.sections import fed_sections, section_problem, sections_only
from datatier.mysql.sequence_deps import check_sequence_bases, read_schema, staged_sequence_refs
from datatier.mysql.staged_creates import staged_definitions
from datatier.mysql.target import (
    bad_database_name,
    busy_databases,
    changed_defaults,
    check_not_replica,
    check_packet_size,
    create_databases,
    database_clause,
    drop_views,
)
from datatier.mysql.view_deps import check_view_bases, staged_view_reads
from datatier.mysql.window_objects import Present, definitions_left, drop_present, tables_left
from datatier.pipeline.staging import Staged

log = get_logger(__name__)

TABLE_KINDS = ("schema", "bundle", "data", "triggers")
DEFINITION_KINDS = ("triggers", "routines", "events", "viewstubs", "views")
VIEW_KINDS = ("viewstubs", "views")
"""A view's objects: ``--tables`` names views too (it once kept their database, not them)."""


def select_objects(
    manifest: Manifest, tables: Collection[TableName], databases: Collection[str] = ()
) -> list[ObjectRecord]:
    """The manifest's objects, restricted to ``databases`` and to ``tables`` ((database,
    table) pairs: tables or views) when given; UsageError naming what the backup does not
    hold."""
    objects = list(manifest.objects)
    if databases:
        missing_dbs = sorted(set(databases) - set(manifest.databases))
        if missing_dbs:
            raise UsageError(f"not in backup {manifest.backup_id}: {', '.join(missing_dbs)}")
        objects = [o for o in objects if o.database in databases]
    if not tables:
        return objects
    held = held_tables(manifest)
    missing = [show(db, t) for db, t in tables if (db, t) not in held]
    if missing:
        raise UsageError(
            f"not in backup {manifest.backup_id}: {', '.join(missing)}",
            hint="--tables picks tables the backup holds; one created after it (in a "
            "point-in-time restore, by the replayed binlog) comes back with its whole "
            "database: --databases DB",
        )
    wanted = set(tables)
    databases_wanted = {db for db, _ in wanted}
    return [
        o
        for o in objects
        if o.kind in (*TABLE_KINDS, *VIEW_KINDS, "database")
        and (
            (o.kind == "database" and o.database in databases_wanted)
            or any((o.database, t) in wanted for t in o.table_names())
        )
    ]


def restored_tables(
    objects: list[ObjectRecord], tables: Collection[TableName] = ()
) -> set[TableName]:
    """The (database, table) pairs ``objects`` create: schema objects' and bundle sections'
    (only those in ``tables`` when given)."""
    found = set()
    for o in objects:
        if o.kind in ("schema", "bundle") and o.database is not None:
            found |= {(o.database, t) for t in o.table_names()}
    if tables:
        found = {(db, t) for db, t in found if (db, t) in tables}
    return found


def restore_objects(manifest: Manifest, options: RestoreOptions) -> list[ObjectRecord]:
    """The objects a restore with ``options`` applies (grants only with ``options.grants``,
    first); UsageError naming what the backup does not hold."""
    selected = select_objects(manifest, options.tables, options.databases)
    objects = [o for o in selected if o.kind != "grants"]
    if options.grants:
        grants = [o for o in manifest.objects if o.kind == "grants"]
        if not grants:
            raise UsageError(
                f"backup {manifest.backup_id} holds no accounts or grants",
                hint="set source.include_grants = true in the policy for later backups",
            )
        objects = grants + objects
    return objects


class LogicalRestore(RestoreEngine):
    """Restores a ``mysql`` backup into a MySQL/MariaDB server (see module docstring)."""

    name = "mysql"

    @classmethod
    def for_manifest(
        cls, loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreOptions
    ) -> Self:
        if options.datadir or options.owner or options.external_dir:
            raise UsageError(f"--datadir, --owner and --external-dir are for physical backups; "
                             f"{manifest.backup_id} is a logical MySQL backup")  # fmt: skip
        if options.drop:
            raise UsageError("--drop is for Mongo restores; MySQL replaces tables with --force")
        server, role = resolve_target(loaded.config.mysql, options.target)
        return cls(manifest, options, server, role)

    def __init__(
        self, manifest: Manifest, options: RestoreOptions, server: Endpoint, role: str | None
    ) -> None:
        self.manifest = manifest
        self.options = options
        self.server = server
        self.role = role
        self.binlog = options.binlog
        self.targets: dict[str, str] = {}
        self._sequences: set[tuple[str, str]] = set()  # told by their objects (check_staged)
        self._changed: list[str] = []  # databases the last apply created or altered
        self._replaced: list[Conflict] = []  # target objects of another kind it dropped
        self._loader: SQLLoader | None = None
        self._claim: Claim | None = None  # held from claim_target to the end
        self._early: list[Present] = []  # replaced tables dropped first (check_kept_names)
        self._early_gone: list[Present] = []  # of them, those the last apply dropped
        self._definitions: tuple[Staged, set[tuple[str, str, str]]] | None = None
        self.tells_left = True  # check_target names what --force leaves (tell_left)

    # -- plan and refusals --------------------------------------------------------------------

    def plan(self) -> RestorePlan:
        manifest, options = self.manifest, self.options
        unknown = sorted(set(options.renames) - set(manifest.databases))
        if unknown:
            raise UsageError(f"--rename names databases not in the backup: {', '.join(unknown)}")
        objects = restore_objects(manifest, options)
        check_accounted(
            manifest, objects, options, others="`--tables` can restore the other tables"
        )
        sources = sorted({o.database for o in objects if o.database})
        self.targets = options.targets(sources)
        # every --rename is applied to references (mysql/renamed.py), also one of a
        # database this restore leaves out: its target must be a name, and its own
        everything = options.targets(sorted(set(sources) | set(options.renames)))
        for source, target in sorted(everything.items()):
            if source != target and target.lower() in SYSTEM_DATABASES:
                raise UsageError(
                    f"--rename {source}={target}: {target!r} is a system database (the "
                    "server's own, or datatier's heartbeat); a restore never renames into one",
                    hint="pick another name for the copy",
                )
        for target in sorted(set(everything.values()) - set(sources)):
            problem = bad_database_name(target)
            if problem:
                raise UsageError(
                    f"--rename: {target!r} cannot be a database name: {problem}",
                    hint="pick another name (the target is created by the restore)",
                )
        for source in sources:  # a tampered charset is refused before anything happens
            database_clause(manifest.databases.get(source, {}), f"manifest of {manifest.backup_id}")
        tables = len(restored_tables(objects, options.tables))
        rows = sum(
            sum(s.rows for s in self._sections(o)) if o.sections else o.rows for o in objects
        )
        names = ", ".join(f"{s}->{d}" if s != d else s for s, d in self.targets.items())
        return RestorePlan(
            manifest=manifest,
            objects=objects,
            target=self.server.label,
            details={"databases": self.targets, "tables": tables, "rows": rows},
            summary=[f"{names}; {tables} tables, {rows} rows"],
            touches=f"{', '.join(name_label(d) for d in sorted(set(self.targets.values())))} "
            f"on {self.server.label}",
        )

    @contextlib.contextmanager
    def claim_target(self, plan: RestorePlan) -> Iterator[None]:
        """Every target database's restore lock (:mod:`datatier.mysql.claim`), kept for
        ``apply`` to check before its writes."""
        with claim_databases(self.server, self.targets.values()) as claim:
            self._claim = claim
            try:
                yield
            finally:
                self._claim = None

    def on_claim_lost(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the restore's claim is lost (at once if it is); ClaimLost
        first if it already is, so that nothing is written without it. No claim (a dry
        run, or outside ``claim_target``): nothing."""
        if self._claim is not None:
            self._claim.check()
            self._claim.on_lost(hook)

    def check_claim(self) -> None:
        """ClaimLost if the restore's claim was lost (none held: nothing)."""
        if self._claim is not None:
            self._claim.check()

    def created_names(self, plan: RestorePlan) -> set[TableName]:
        """The (database, name) pairs of the tables, sequences and views ``plan`` creates
        (source names)."""
        views = {(o.database, o.table) for o in plan.objects
                 if o.kind in VIEW_KINDS and o.database and o.table}  # fmt: skip
        return restored_tables(plan.objects, self.options.tables) | views

    def check_target(self, plan: RestorePlan) -> None:
        check_case_collisions(self.server, self.targets, self.created_names(plan))
        check_packet_size(self.server, int(self.manifest.options.get("max_statement_bytes") or 0))
        if check_not_replica(self.server, self.role, allow=self.options.allow_replica_target):
            self.binlog = False  # allowed onto a replica: never into its binlog (no errant GTIDs)
        if self.options.force:  # told now from the manifest's kinds, again before loading
            kinds = {(t.database, t.name) for t in self.manifest.tables if t.kind == "sequence"}
            conflicts = self._other_kinds(plan, kinds)
            if conflicts:
                plan.details["replaced"] = [c.to_json() for c in conflicts]
                plan.summary.append(f"--force replaces {', '.join(map(str, conflicts))}")
        else:
            busy = busy_databases(self.server, sorted(set(self.targets.values())))
            if busy:
                listed = ", ".join(
                    f"{db} ({', '.join(f'{n} {kind}' for kind, n in held.items())})"
                    for db, held in sorted(busy.items())
                )
                raise UsageError(
                    f"target {self.server.label} is not empty: {listed}",
                    hint="restore elsewhere, --rename SRC=DST, or --force to replace",
                )
        if not self.options.tables:
            self._tell_defaults(plan)
            if self.options.force and self.tells_left:
                self.tell_left(plan, plan, False, set(), "the backup does not hold them")
        recorded = recorded_references(self.manifest)
        if recorded is not None:  # else after fetching, from the objects (check_staged)
            self._check_references(plan, recorded.views, recorded.sequences)

    def _referenced_keys(
        self,
    ) -> Callable[[tuple[str | None, str | None]], Collection[tuple[str, ...]] | None]:
        """Per table, the column lists foreign keys reference (their index stays in the
        CREATE TABLE); None for every table when the backup does not record them (older
        manifests: a child, maybe in a bundle, could need any index at its CREATE)."""
        recorded = recorded_references(self.manifest)
        if recorded is None or recorded.parents is None:
            return lambda _: None
        # names in any letter case (REFERENCES may spell one otherwise under
        # lower_case_table_names): matching too many only keeps an index more
        folded: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        for (db, name), keys in recorded.parents.items():
            folded.setdefault((db.lower(), name.lower()), set()).update(keys)
        return lambda table: folded.get(((table[0] or "").lower(), (table[1] or "").lower()), set())

    def tell_left(
        self,
        plan: RestorePlan,
        own: RestorePlan,
        fold: bool,
        created: set[TableName],
        why: str,
        *,
        skip: Collection[str] = (),
    ) -> None:
        """``--force`` of whole databases: ``plan``'s word on the target's tables, views
        and sequences a restore leaves as they are (``why``, for the plan): not created by
        it (:meth:`created_names` of this engine's ``own`` plan, and ``created``), nor left
        out by the backup; none of the target databases in ``skip``. Names compared as
        ``fold`` (lower-cased) says; ``created`` so compared."""
        accounted = set(created)
        held = self.created_names(own) | left_out_tables(self.manifest)
        accounted |= {(name_key(db, fold), name_key(t, fold)) for db, t in held}
        targets = {name_key(s, fold): d for s, d in self.targets.items() if d not in skip}
        left = tables_left(self.server, targets, accounted)
        if left:
            plan.details["left_as_they_are"] = [p.to_json() for p in left]
            plan.summary.append(f"--force leaves as they are ({why}): " + ", ".join(map(str, left)))
        if self.options.dry_run:
            plan.summary.append(
                "--force leaves as they are the routines and events the restore does not "
                "define either, and refuses a table it leaves holding a foreign key or "
                "trigger named like one it creates; it tells both once it has read the "
                "backup (not in a dry run)"
            )

    def tell_definitions_left(
        self,
        plan: RestorePlan,
        own: RestorePlan,
        staged: Staged,
        why: str,
        *,
        named: Collection[tuple[str, str, str]] = (),
        skip: Collection[str] = (),
    ) -> None:
        """``--force`` of whole databases: ``plan``'s word (``left_as_they_are``, ``why``)
        on the target's routines and events that neither this engine's ``own`` plan
        defines (its staged objects say which) nor ``named`` names ((kind, target
        database, name)); none of the databases in ``skip``. Reads only."""
        defined = self._staged_definitions(own, staged)
        accounted = {(k, self.targets[db], n) for k, db, n in defined if db in self.targets}
        databases = [d for d in self.targets.values() if d not in skip]
        left = definitions_left(self.server, databases, accounted | set(named))
        if left:
            plan.details.setdefault("left_as_they_are", []).extend(p.to_json() for p in left)
            plan.summary.append(
                f"--force leaves these routines and events as they are ({why}): "
                + ", ".join(map(str, left))
            )

    def check_kept_names(
        self,
        own: RestorePlan,
        staged: Staged,
        why: str,
        *,
        replaced: Collection[tuple[str, str]] = (),
        declared: dict[str, Declared] | None = None,
        skip: Collection[str] = (),
    ) -> None:
        """``--force``: UsageError (exit 2, nothing changed) when a target table the
        restore keeps (not created by this engine's ``own`` plan, nor in ``replaced``:
        target names; none of the databases in ``skip``) holds a foreign key named like
        one the restored tables declare (read from ``staged``), or ``declared`` adds
        (target database -> names): InnoDB names keys once per database, and the restore
        would fail part-way (:mod:`datatier.mysql.foreign_key_names`). ``why`` says why
        such tables are kept. A table the restore replaces holding a key another restored
        table declares (two tables that swapped names since) is dropped by ``apply``
        before any table is created. Likewise refused: a kept table's trigger named like
        one the restore creates (:mod:`datatier.mysql.kept_triggers`)."""
        restored = self.created_names(own)
        gone = {(self.targets[db], t) for db, t in restored if db in self.targets} | set(replaced)
        databases = [d for d in self.targets.values() if d not in skip]
        triggers = {
            (self.targets[db], name)
            for kind, db, name in self._staged_definitions(own, staged)
            if kind == "trigger" and db in self.targets
        }
        check_kept_triggers(self.server, databases, gone, triggers, why)
        kept, replacing = target_foreign_keys(self.server, databases, gone)
        if not kept and not replacing:
            return
        found = staged_declared(own.objects, staged.decompressed, restored, self.targets)
        for database, more in (declared or {}).items():
            found.setdefault(database, Declared()).merge(more)
        early = check_kept_foreign_keys(self.server, kept, found, why, replaced=replacing)
        self._early = [Present("table", db, t) for db, t in early]

    def _staged_definitions(self, own: RestorePlan, staged: Staged) -> set[tuple[str, str, str]]:
        """:func:`~datatier.mysql.staged_creates.staged_definitions` of ``own``'s objects,
        read once per staging (the kept-name check and the plan's word on what is left
        both ask)."""
        if self._definitions is None or self._definitions[0] is not staged:
            self._definitions = (staged, staged_definitions(own.objects, staged.decompressed))
        return self._definitions[1]

    def _tell_defaults(self, plan: RestorePlan) -> None:
        """The plan's word on existing target databases whose default character set or
        collation the restore changes (``ALTER DATABASE``, see ``apply``)."""
        changed = changed_defaults(self.server, self.targets, self.manifest.databases)
        if changed:
            plan.details["database_defaults"] = [
                {"database": db, "now": now, "restored": backup} for db, now, backup in changed
            ]
            plan.summary.append(
                "existing database(s) take the backup's default character set and collation "
                "(ALTER DATABASE; their tables are not converted): "
                + ", ".join(f"{name_label(db)} {now} -> {backup}" for db, now, backup in changed)
            )

    def check_staged(self, plan: RestorePlan, staged: Staged) -> None:
        """IntegrityFailure (exit 4), nothing applied, when a bundle's bytes do not match the
        sections its manifest record claims (:mod:`datatier.mysql.sections`); UsageError
        (exit 2) when the target lacks a table's storage engine
        (:mod:`datatier.mysql.engines`). For a manifest that records no references
        (:mod:`datatier.mysql.references`), the refusals check_target makes from them, from
        the objects' own text."""
        for record in plan.objects:
            if record.sections:
                problem = section_problem(record, staged.decompressed(record.key))
                if problem:
                    raise IntegrityFailure(
                        f"backup {self.manifest.backup_id} cannot be restored: {problem}",
                        hint="nothing was applied; the manifest does not describe the object",
                    )
        restored = restored_tables(plan.objects, self.options.tables)
        needed = needed_engines(plan.objects, staged.decompressed, restored)
        check_engines(self.server, needed, self.targets)
        if self.options.force and self.tells_left:
            self.check_kept_names(plan, staged, "the backup does not hold them")
            if not self.options.tables:
                self.tell_definitions_left(plan, plan, staged, "the backup does not hold them")
        if recorded_references(self.manifest) is not None:
            return  # checked in check_target
        facts = read_schema(plan.objects, staged.decompressed)
        self._sequences = facts.sequences
        self._check_references(
            plan, staged_view_reads(plan.objects, staged.decompressed), staged_sequence_refs(facts)
        )

    def _check_references(self, plan: RestorePlan, reads: Refs, sequence_refs: Refs) -> None:
        """Refuse views reading tables, and tables drawing from sequences, that neither this
        restore nor the target has (:mod:`datatier.mysql.view_deps`,
        :mod:`datatier.mysql.sequence_deps`): their definitions would fail half-way."""
        restored = restored_tables(plan.objects, self.options.tables)
        views = {(o.database, o.table) for o in plan.objects if o.kind == "views"}
        check_view_bases(
            self.server,
            self.manifest,
            {name: needs for name, needs in reads.items() if name in views},
            restored,
            self.targets,
        )
        sequences = self._sequences | {
            (t.database, t.name) for t in self.manifest.tables if t.kind == "sequence"
        }
        names = {**self.targets, **self._names}
        check_sequence_bases(self.server, self.manifest, sequence_refs, sequences, restored, names)

    # -- apply and check ----------------------------------------------------------------------

    def apply(
        self, plan: RestorePlan, staged: Staged, on_loaded: Callable[[ObjectRecord], None] | None
    ) -> None:
        """Create the databases, load the objects in restore order from ``staged``. On a
        failure, views whose placeholder was created but not their definition are dropped:
        a placeholder answers every query with constants."""
        targets = self.targets
        self._changed, self._replaced, self._loader, self._early_gone = [], [], None, []
        sequences = self._sequences | {
            (t.database, t.name) for t in self.manifest.tables if t.kind == "sequence"
        }
        self.check_claim()
        if self.options.force:
            self._replace_other_kinds(plan, sequences)
            for table in self._early:
                log.warning("restore.replacing_first", table=str(table), why="foreign key names")
            drop_present(self.server, self._early, binlog=self.binlog, dropped=self._early_gone)
            self.check_claim()
        create_databases(  # a whole database restored takes the backup's defaults (routines')
            self.server,
            targets,
            self.manifest.databases,
            binlog=self.binlog,
            defaults=not self.options.tables,
            changed=self._changed,
        )
        renamed = {src for src, dst in targets.items() if src != dst}

        originals = {o.key: o for o in plan.objects}

        def fetch(record: ObjectRecord) -> Iterator[bytes]:
            record = originals[record.key]  # as the manifest has it (see ``fed`` below)
            if record.sections and self.options.tables:
                keep = [(0, record.sections[0].start)]
                keep += [(s.start, s.end) for s in self._sections(record)]
                return sections_only(staged.decompressed(record.key), keep)
            if record.kind not in DEFINITION_KINDS or record.database not in renamed:
                return staged.decompressed(record.key)
            text = b"".join(staged.decompressed(record.key))
            warn_qualified(record, text, self._names)
            return iter([text])

        placeholders: dict[tuple[str, str], None] = {}  # (target db, view), in load order

        def loaded(record: ObjectRecord) -> None:
            if record.kind in VIEW_KINDS and record.database and record.table:
                view = (targets[record.database], record.table)
                if record.kind == "viewstubs":
                    placeholders[view] = None
                else:
                    placeholders.pop(view, None)
            if on_loaded is not None:
                on_loaded(record)

        loader = self._loader = SQLLoader(
            self.server,
            fetch,
            lambda db: targets[db],
            jobs=self.options.jobs,
            binlog=self.binlog,
            keys_after_data=self.options.keys_after_data,
            on_loaded=loaded,
            # A column's DEFAULT NEXT VALUE FOR s is checked at CREATE TABLE: s must exist.
            first=lambda record: (record.database, record.table) in sequences,
            # every --rename, those of databases outside this restore too (restored before)
            rewrite_create=rename_references(self._names) if self._names else None,
            referenced=self._referenced_keys(),
        )
        self.on_claim_lost(loader.stop)  # statements in progress killed, no new one
        kinds = [k for k in KIND_ORDER if k != "database"]
        # The loader sees a bundle's sections where its client gets them (to name a failing
        # table): with --tables, those kept, one after another.
        fed = [
            dataclasses.replace(o, sections=fed_sections(o, self._sections(o)))
            if o.sections and self.options.tables
            else o
            for o in plan.objects
        ]
        try:
            loader.load_all(fed, kinds)  # grants first: DEFINER accounts exist before routines
            self.check_claim()  # a loader stopped by a lost claim ends quietly
        except BaseException as exc:
            if placeholders and not (self._claim and self._claim.lost):  # else maybe not ours
                self._drop_placeholders(list(placeholders), exc)
            raise

    def _other_kinds(self, plan: RestorePlan, sequences: set[TableName]) -> list[Conflict]:
        """The target's objects named like a table, sequence or view this restore creates,
        but of another kind (:mod:`datatier.mysql.otherkinds`)."""
        restored = restored_tables(plan.objects, self.options.tables)
        views = {(o.database, o.table) for o in plan.objects
                 if o.kind in VIEW_KINDS and o.database and o.table}  # fmt: skip
        creates = created_kinds(restored, sequences, views, self.targets)
        return other_kinds(self.server, creates)

    def _replace_other_kinds(self, plan: RestorePlan, sequences: set[TableName]) -> None:
        """``--force``: drop them (what was dropped goes to the report's ``replaced``)."""
        conflicts = self._other_kinds(plan, sequences)
        for c in conflicts:
            log.warning("restore.replacing_other_kind", object=str(c))
        try:
            drop_conflicts(self.server, conflicts, binlog=self.binlog, dropped=self._replaced)
        finally:
            plan.details.pop("replaced", None)  # the check's forecast
            if self._replaced:
                plan.details["replaced"] = [c.to_json() for c in self._replaced]

    def _drop_placeholders(self, views: list[tuple[str, str]], exc: BaseException) -> None:
        shown = ", ".join(table_label(db, v) for db, v in views)
        try:
            drop_views(self.server, views, binlog=self.binlog)
        except Exception as failure:  # the target may be what failed: say what is left
            exc.add_note(f"the placeholders of views {shown} may be left: {failure}")
            return
        exc.add_note(f"placeholders of views {shown} were dropped")

    @property
    def _names(self) -> dict[str, str]:
        """Every database ``--rename`` moves (restored now or not) and its new name."""
        return {src: dst for src, dst in self.options.renames.items() if src != dst}

    def changed_target(self) -> bool:
        """False when the last apply failed before dropping an object of another kind,
        creating or altering a database or sending a statement of any object."""
        started = self._loader is not None and self._loader.started
        return bool(self._changed or self._replaced or self._early_gone) or started

    def _sections(self, record: ObjectRecord) -> list[Section]:
        """The sections of bundle ``record`` this restore loads (``--tables``: those named)."""
        wanted = set(self.options.tables)
        return [s for s in record.sections if not wanted or (record.database, s.table) in wanted]

    def post_check(self, plan: RestorePlan) -> None:
        restored = restored_tables(plan.objects, self.options.tables)
        check_row_counts(self.server, self.manifest, restored, self.targets, self.options.jobs)
