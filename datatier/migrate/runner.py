"""``migrate run --execute``: copy planned tables from one consistent MySQL snapshot.

Contract: :func:`run_tables` reads every table inside one ``START TRANSACTION WITH
CONSISTENT SNAPSHOT`` (REPEATABLE READ) on the source connection, in key order, in
batches; each batch is converted completely (a value its cast cannot carry stops the run
with :class:`~datatier.migrate.documents.RowError` before that batch is written), inserted
with the conflict policy, and then recorded in the checkpoint. A rerun resumes after the
last recorded key (from a new snapshot: rows changed in between are caught by
``migrate verify``); because a batch may have been written just before an interruption,
the first batch after a resume is written with ``replace`` even under ``error`` (ids are
deterministic, so this rewrites the same documents). ``rate`` caps rows per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatier import log
from datatier.errors import OperationFailed, UsageError
from datatier.migrate.checkpoint import Checkpoint, TableProgress
from datatier.migrate.documents import DocumentBuilder
from datatier.migrate.plan import TablePlan
from datatier.migrate.reader import TableReader
from datatier.migrate.target import MigrationTarget
from datatier.mysql.connection import Connection, query_dicts

_log = log.get_logger(__name__)


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 500
    conflict: str = "error"
    rate: float | None = None  # rows per second, None: unlimited
    checkpoint: Path | None = None
    restart: bool = False


@dataclass
class TableRun:
    table: str
    target: str
    rows: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    resumed_after: int = 0
    seconds: float = 0.0
    indexes_created: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "target": self.target,
            "rows": self.rows,
            "inserted": self.inserted,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "resumed_after_rows": self.resumed_after,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds else None,
            "indexes_created": self.indexes_created,
        }


@dataclass
class RunReport:
    source: str
    snapshot: dict[str, Any]
    tables: list[TableRun]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        rows = sum(t.rows for t in self.tables)
        return {
            "source": self.source,
            "snapshot": self.snapshot,
            "tables": [t.to_dict() for t in self.tables],
            "rows": rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(rows / self.seconds, 1) if self.seconds else None,
        }


def _open_checkpoint(plans: list[TablePlan], source: str, options: RunOptions) -> Checkpoint:
    path = options.checkpoint
    found = None if path is None or options.restart else Checkpoint.load(path)
    if found is None:
        cp = Checkpoint(path or Path("/dev/null"), source)
    else:
        cp = found
        for plan in plans:
            prev = cp.tables.get(plan.name)
            if prev is not None and prev.target != plan.target:
                raise UsageError(
                    f"checkpoint {path} copied {plan.name} to {prev.target}, not {plan.target}",
                    hint="rerun with --restart to start over",
                )
    for plan in plans:
        cp.tables.setdefault(plan.name, TableProgress(plan.target))
    return cp


def _snapshot(conn: Connection) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    rows = query_dicts(conn, "SHOW STATUS LIKE 'binlog_snapshot_%'")
    info = {str(r["Variable_name"]): r["Value"] for r in rows}
    info.update(query_dicts(conn, "SELECT @@gtid_current_pos AS gtid_current_pos")[0])
    return info


def run_tables(
    conn: Connection,
    source: str,
    plans: list[TablePlan],
    target: MigrationTarget,
    options: RunOptions,
    on_progress: Callable[[int], None] | None = None,
) -> RunReport:
    """Copy ``plans`` (none of them blocked) to ``target`` (see module docstring)."""
    blocked = [p.name for p in plans if p.verdict == "blocked"]
    if blocked:
        raise OperationFailed(f"refusing to run: blocked table(s) {', '.join(blocked)}")
    cp = _open_checkpoint(plans, source, options)
    started = time.monotonic()
    snapshot = _snapshot(conn)
    runs: list[TableRun] = []
    try:
        for plan in plans:
            runs.append(_copy(conn, plan, target, options, cp, on_progress, started, runs))
    finally:
        conn.rollback()
    return RunReport(source, snapshot, runs, time.monotonic() - started)


def _copy(
    conn: Connection,
    plan: TablePlan,
    target: MigrationTarget,
    options: RunOptions,
    cp: Checkpoint,
    on_progress: Callable[[int], None] | None,
    run_started: float,
    earlier: list[TableRun],
) -> TableRun:
    progress = cp.tables[plan.name]
    result = TableRun(plan.name, plan.target, resumed_after=progress.rows)
    if progress.done:
        _log.info("migrate.table_already_done", table=plan.name, rows=progress.rows)
        return result
    started = time.monotonic()
    target.ensure_table(plan.target_table)
    for idx in plan.indexes:
        if target.ensure_index(plan.target_table, idx.name, idx.fields):
            result.indexes_created.append(idx.name)
    builder = DocumentBuilder(plan)
    reader = TableReader(plan, builder.select_columns)
    after = progress.last_key
    first_after_resume = after is not None
    done_before = sum(t.rows for t in earlier)
    while True:
        rows = reader.batch(conn, after, options.batch_size)
        if not rows:
            break
        docs = [builder.build(row) for row in rows]
        policy = (
            "replace" if first_after_resume and options.conflict == "error" else options.conflict
        )
        first_after_resume = False
        res = target.insert(plan.target_table, docs, policy)
        if res.errors:
            hint = "--conflict replace or update" if policy == "error" else None
            raise OperationFailed(
                f"{target.describe()} rejected {res.errors} of {len(docs)} documents of "
                f"{plan.name}: {res.first_error or 'conflict or invalid document'}",
                hint=hint,
            )
        result.inserted += res.inserted
        result.replaced += res.replaced
        result.unchanged += res.unchanged
        result.rows += len(rows)
        after = [rows[-1][i] for i in builder.key_positions]
        progress.last_key, progress.rows = after, progress.rows + len(rows)
        if options.checkpoint:
            cp.save()
        if on_progress:
            on_progress(len(rows))
        if options.rate:
            ahead = (done_before + result.rows) / options.rate - (time.monotonic() - run_started)
            if ahead > 0:
                time.sleep(ahead)
    progress.done = True
    if options.checkpoint:
        cp.save()
    result.seconds = time.monotonic() - started
    _log.info("migrate.table_copied", table=plan.name, target=plan.target, rows=result.rows)
    return result
