"""The MySQL/MariaDB backup engine: a parallel dump from one consistent snapshot.

``jobs`` worker connections share one snapshot (:mod:`datatier.mysql.consistent`); tables,
and integer-keyed tables larger than a share of the dump in key ranges, are read in
parallel, largest first, and each table's objects are produced by its own task
(:mod:`datatier.mysql.dumptasks`): names, comments and bodies can never move data into
another table's object, because no object is ever found by looking at dump text. What a
backup holds comes from the server's catalogue (:mod:`datatier.mysql.catalogue`), and
before the engine returns it checks that every table of the catalogue got its schema object
and that its data objects account for every row. The manifest records what its views and
tables need on a target (:mod:`datatier.mysql.references`).

Objects are plain SQL for the stock client (``zstd -d | mariadb DB``): each starts with
:data:`~datatier.mysql.sqltext.PRELUDE` and holds no ``USE``; each INSERT follows a comment
giving its size (:mod:`datatier.mysql.dumprows`). Definitions objects and the key layout:
:mod:`datatier.mysql.dumpdefs`; small tables go to ``DB/_bundle-00001.sql.zst`` ... (each
one's DROP/CREATE, then its rows).

Small tables (:func:`bundles`) are written together, a few dozen per object of their
database: one request per table costs more than its rows on a store, and a restore would
start one client per table. Each table is a section of the bundle (its offsets and rows in
the manifest, :class:`~datatier.backup.manifest.Section`), written by one task in turn on one
connection of the same snapshot, so names still cannot move rows between tables, and a
restore of chosen tables loads just their sections. Every statement of a bundle is framed,
its tables' DROP and CREATE too, under a format line after the PRELUDE
(:mod:`datatier.mysql.bundle_frames`): a restore runs them without a stock client.

The manifest's per-table records and their checks: :mod:`datatier.mysql.dumpstate`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import MySQLdb

from datatier.backup.engine import BackupEngine, BackupPlan, DumpResult
from datatier.backup.objects import DEFAULT_CHUNK, ObjectWriter
from datatier.backup.policy import Policy
from datatier.config import LoadedConfig
from datatier.errors import DatatierError, OperationFailed, ServiceUnavailable
from datatier.log import get_logger
from datatier.mysql.catalogue import Catalogue, Table, read_catalogue
from datatier.mysql.connection import Endpoint, query_dicts
from datatier.mysql.consistent import SnapshotGroup, SnapshotPoint
from datatier.mysql.dumpdefs import put_grants, write_definitions
from datatier.mysql.dumpplan import (
    bundles,
    check_not_empty,
    plan_dump,
    range_count,
    range_share,
    split_points,
)
from datatier.mysql.dumpstate import TableState, table_records
from datatier.mysql.dumptasks import Task, TaskDumper
from datatier.mysql.event_status import resolve_on_primary
from datatier.mysql.fastreader import RawConnection
from datatier.mysql.references import record_references
from datatier.mysql.rowtext import ROW_TEXT_VERSION, range_filters
from datatier.mysql.source import SourceChoice, select_source
from datatier.mysql.sqltext import ident, qualified
from datatier.storage.base import MiB

log = get_logger(__name__)

LOST = (1927, 2006, 2013, 2055)  # 1927: our connection was KILLed
DEF_CHANGED = 1412


class ParallelDumpEngine(BackupEngine):
    """Backs up the policy's databases from ``source`` (normally a replica) with ``jobs``
    connections. ``raw_threshold`` (bytes of large values per row) is where rows switch to
    client-side rendering; None derives it from the server's ``max_allowed_packet``."""

    name = "mysql"

    @classmethod
    def for_policy(
        cls, loaded: LoadedConfig, policy: Policy, *, max_lag: float | None = None
    ) -> ParallelDumpEngine:
        """Chooses the freshest listed node first (:mod:`datatier.mysql.source`)."""
        limit = policy.spec.source.max_lag_seconds if max_lag is None else max_lag
        choice = select_source(policy, loaded.config.mysql, limit)
        return cls(
            choice.endpoint,
            policy,
            chunk_bytes=policy.spec.chunk_mb * MiB,
            jobs=policy.spec.jobs,
            bundle=policy.spec.bundle_tables,
            choice=choice,
        )

    def __init__(
        self,
        source: Endpoint,
        policy: Policy,
        *,
        chunk_bytes: int = DEFAULT_CHUNK,
        jobs: int = 4,
        raw_threshold: int | None = None,
        choice: SourceChoice | None = None,
        bundle: bool = True,
    ) -> None:
        self.source = source
        self.bundle = bundle
        self.choice = choice
        self.policy = policy
        self.chunk_bytes = chunk_bytes
        self.jobs = max(1, jobs)
        self.raw_threshold = raw_threshold
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._states: dict[tuple[str, str], TableState] = {}

    def plan(self) -> BackupPlan:
        """The catalogue's tables with estimates, key ranges, jobs and snapshot method
        (:mod:`datatier.mysql.dumpplan`), on the chosen source."""
        return plan_dump(self.source, self.policy, self.choice, self.jobs, self.chunk_bytes)

    # -- the whole dump -------------------------------------------------------------------

    def dump(self, writer: ObjectWriter) -> DumpResult:
        started = time.monotonic()
        for attempt in range(3):
            with SnapshotGroup(self.source, self.jobs) as group:
                locked = group.block_ddl()
                catalogue = self._catalogue(group)
                point = group.open()
                if not locked and self._catalogue(group) != catalogue:
                    log.warning("backup.ddl_during_start", node=self.source.name, attempt=attempt)
                    continue
                check_not_empty(catalogue, self.policy, self.source)
                threshold = self.raw_threshold or self._threshold(group)
                return self._run(group, catalogue, point, writer, threshold, started)
        raise OperationFailed(
            f"the schema of {self.source.label} kept changing while the backup started "
            "(DDL); run it again, or grant RELOAD so DDL can be held off for a moment"
        )

    def _catalogue(self, group: SnapshotGroup) -> Catalogue:
        assert group.coordinator is not None
        return read_catalogue(
            group.coordinator, self.policy.includes_database, self.policy.includes_table
        )

    def _threshold(self, group: SnapshotGroup) -> int:
        assert group.coordinator is not None
        packet = int(query_dicts(group.coordinator, "SELECT @@max_allowed_packet AS p")[0]["p"])
        return max(64 << 10, (packet - (1 << 20)) // 2)

    def _run(
        self,
        group: SnapshotGroup,
        catalogue: Catalogue,
        point: SnapshotPoint,
        writer: ObjectWriter,
        threshold: int,
        started: float,
    ) -> DumpResult:
        self._states = {(t.database, t.name): TableState(t) for t in catalogue.tables}
        untransactional = [t for t in catalogue.tables if not t.transactional and t.has_rows]
        grouped = bundles(catalogue.tables, group.jobs, self.chunk_bytes) if self.bundle else []
        for members in grouped:
            for table in members:
                self._states[(table.database, table.name)].bundled = True
        alone = [
            t
            for t in catalogue.tables
            if t.transactional and t.has_rows and not self._states[(t.database, t.name)].bundled
        ]
        tasks = self._plan(group, alone) + self._bundle_tasks(grouped)
        tasks.sort(key=lambda t: t.estimate, reverse=True)
        early = [Task(t, 0, "", t.data_bytes) for t in untransactional]
        dumper = TaskDumper(
            writer, self._states, chunk_bytes=self.chunk_bytes, threshold=threshold, stop=self._stop
        )
        if early:
            if group.locked:
                self._work(group, early, dumper)
            else:
                tasks = early + tasks
                log.warning(
                    "backup.untransactional_unlocked",
                    tables=[f"{t.database}.{t.name}" for t in untransactional],
                    note="read without a lock: they may not match the snapshot",
                )
        ddl_blocked = group.release()
        if self.choice is not None and self.choice.role == "replica":
            catalogue.events, unknown = resolve_on_primary(catalogue.events, self.choice.primary)
            if unknown:
                log.warning(
                    "backup.event_status_unknown",
                    events=unknown,
                    note="read on a replica as DISABLE ON SLAVE, and the primary could not "
                    "say their status: they are restored disabled",
                )
        views = write_definitions(
            catalogue, writer, lambda t: self._states[(t.database, t.name)].bundled
        )
        self._work(group, tasks, dumper)
        grants = put_grants(self.source, writer) if self.policy.spec.source.include_grants else None
        tables = table_records(catalogue, self._states)
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "backup.dumped",
            source=self.source.label,
            databases=len(catalogue.databases),
            tables=len(tables),
            rows=sum(t.rows for t in tables),
            jobs=group.jobs,
            seconds=seconds,
        )
        consistency = {
            **point.to_json(),
            "ddl_block_seconds": ddl_blocked,
            "untransactional_tables": [f"{t.database}.{t.name}" for t in untransactional],
        }
        return DumpResult(
            source={
                "engine": "mysql",
                "node": self.source.name,
                "host": self.source.host,
                "port": self.source.port,
                **self._server_facts(group),
                **(self.choice.manifest_fields() if self.choice else {}),
            },
            consistency=consistency,
            tables=tables,
            databases={
                db: {"charset": cs, "collation": coll}
                for db, (cs, coll) in catalogue.databases.items()
            },
            options={
                "dumper": "datatier parallel dump",
                "jobs": group.jobs,
                "ignored_tables": catalogue.excluded,
                "raw_threshold": threshold,
                "row_text": ROW_TEXT_VERSION,
                "max_statement_bytes": dumper.largest_statement,
                "references": record_references(catalogue, views),
                **(
                    {"renamed_foreign_keys": renamed}
                    if (renamed := catalogue.renamed_keys())
                    else {}
                ),
                **({"grants": grants} if grants is not None else {}),
            },
        )

    def _server_facts(self, group: SnapshotGroup) -> dict[str, Any]:
        assert group.coordinator is not None
        facts = query_dicts(
            group.coordinator,
            "SELECT @@server_id AS server_id, @@version AS version, @@hostname AS hostname, "
            "@@read_only AS read_only, @@gtid_current_pos AS gtid_current_pos, "
            "@@lower_case_table_names AS lower_case_table_names",
        )[0]
        facts["read_only"] = bool(facts.get("read_only"))
        return facts

    # -- planning -------------------------------------------------------------------------

    def _plan(self, group: SnapshotGroup, tables: list[Table]) -> list[Task]:
        """Tasks largest first; tables above a fair share split into integer key ranges
        (the rule of :mod:`datatier.mysql.dumpplan`)."""
        share = range_share(sum(t.data_bytes for t in tables), group.jobs)
        tasks: list[Task] = []
        for table in tables:
            column = table.split_column
            pieces = range_count(table, share)
            if column is None or pieces < 2:
                tasks.append(Task(table, 0, "", table.data_bytes))
                continue
            bounds = self._key_bounds(group, table, column.name)
            if bounds is None:
                tasks.append(Task(table, 0, "", table.data_bytes))
                continue
            points = list(split_points(*bounds, pieces))
            self._states[(table.database, table.name)].split_points = tuple(points)
            filters = range_filters(table, points)
            tasks.extend(
                Task(table, i, where, table.data_bytes // len(filters))
                for i, where in enumerate(filters)
            )
        return sorted(tasks, key=lambda t: t.estimate, reverse=True)

    def _bundle_tasks(self, grouped: list[tuple[Table, ...]]) -> list[Task]:
        numbers: dict[str, int] = {}
        tasks = []
        for members in grouped:
            database = members[0].database
            numbers[database] = numbers.get(database, 0) + 1
            estimate = sum(t.data_bytes for t in members)
            tasks.append(Task(members[0], 0, "", estimate, members, numbers[database]))
        return tasks

    def _key_bounds(
        self, group: SnapshotGroup, table: Table, column: str
    ) -> tuple[int, int] | None:
        worker = group.workers[0]
        c = ident(column)
        (row,) = worker.rows(
            f"SELECT MIN({c}), MAX({c}) FROM {qualified(table.database, table.name)}"
        )
        worker.execute("ROLLBACK TO SAVEPOINT datatier")  # releases the table's MDL
        if row[0] is None or row[1] is None:
            return None
        return int(row[0]), int(row[1])

    # -- parallel work --------------------------------------------------------------------

    def _work(self, group: SnapshotGroup, tasks: list[Task], dumper: TaskDumper) -> None:
        """Run ``tasks`` on the group's workers; the first failure stops all and is raised."""
        if not tasks:
            return
        queue = list(reversed(tasks))  # pop() takes the largest first
        threads = [
            threading.Thread(
                target=self._worker_loop,
                args=(conn, queue, dumper),
                name=f"dump-{i}",
                daemon=True,
            )
            for i, conn in enumerate(group.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)
        except BaseException:
            self._stop.set()
            self._kill_workers(group)
            for thread in threads:
                thread.join(timeout=10)
            raise
        if self._errors:
            raise self._errors[0]

    def _worker_loop(self, conn: RawConnection, queue: list[Task], dumper: TaskDumper) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    if not queue:
                        return
                    task = queue.pop()
                dumper.dump(conn, task)
                conn.execute("ROLLBACK TO SAVEPOINT datatier")  # releases the table's MDL
        except BaseException as exc:  # handed to the main thread
            with self._lock:
                self._errors.append(self._mapped(exc))
            self._stop.set()

    def _kill_workers(self, group: SnapshotGroup) -> None:
        """Interrupt the workers' queries (a blocked read never notices a flag)."""
        if group.coordinator is None:
            return
        for conn in group.workers:
            try:
                with group.coordinator.cursor() as cur:
                    cur.execute(f"KILL {conn.thread_id()}")
            except Exception as exc:  # best effort: the connection may be gone
                log.debug("backup.kill_failed", reason=self.source.scrub(str(exc)))

    def _mapped(self, exc: BaseException) -> BaseException:
        if isinstance(exc, DatatierError) or not isinstance(exc, MySQLdb.MySQLError):
            return exc
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        reason = self.source.scrub(str(exc.args[-1] if exc.args else exc))
        if code in LOST or code >= 2000:
            return ServiceUnavailable(f"lost MySQL {self.source.label} during the dump: {reason}")
        if code == DEF_CHANGED:
            return OperationFailed(
                f"a table changed (DDL) on {self.source.label} during the backup: {reason}",
                hint="run the backup again",
            )
        return OperationFailed(f"reading from {self.source.label} failed: {reason}")
