"""``migrate run --execute``: copy planned tables from one consistent MySQL snapshot.

Contract: :func:`run_tables` reads every table inside one ``START TRANSACTION WITH
CONSISTENT SNAPSHOT`` (REPEATABLE READ) on the source connection, in key order, in
batches; each batch is converted completely (a value its cast cannot carry stops the run
with :class:`~datatier.migrate.documents.RowError` before that batch is written), inserted
with the conflict policy, and then recorded in the checkpoint. A rerun resumes after the
last recorded key (from a new snapshot: rows changed in between are caught by
``migrate verify``).

Before a batch is sent its key range is saved as the checkpoint's ``inflight`` marker and
cleared when the batch is recorded, so a rerun knows exactly which range an interrupted
run may have written part of. Only that range is treated specially on resume, and under
``error`` only so far: a document whose identical copy (same :func:`digest`) is in the
target already is skipped (counted ``unchanged``), every other one is inserted with
``error``, so an id that exists with different content - another writer's document, or
ours from an older snapshot - still fails the run and is never overwritten. ``replace`` and
``update`` apply as given everywhere. ``rate`` caps rows per second with the shared token
bucket (:class:`datatier.ratelimit.RateLimit`, one for the whole run). A MySQL connection
lost while reading raises :class:`~datatier.errors.ServiceUnavailable` (exit 3), as a lost
RethinkDB connection does (in :class:`~datatier.migrate.target.RethinkDBTarget`).

The snapshot's position is recorded for the server's flavour
(:func:`datatier.mysql.consistent.open_snapshot`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatier import log
from datatier.errors import OperationFailed, ServiceUnavailable, UsageError
from datatier.migrate.checkpoint import Checkpoint, TableProgress
from datatier.migrate.documents import DocumentBuilder, canonical, digest
from datatier.migrate.plan import TablePlan
from datatier.migrate.reader import TableReader
from datatier.migrate.target import Conflict, InsertResult, MigrationTarget
from datatier.mysql.connection import Connection, MySQLError, connection_lost
from datatier.mysql.consistent import open_snapshot
from datatier.ratelimit import RateLimit

_log = log.get_logger(__name__)


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 500
    conflict: Conflict = "error"
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

    def to_json(self) -> dict[str, Any]:
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
    rate_waited: float = 0.0  # seconds the rate limit made the run wait

    def to_json(self) -> dict[str, Any]:
        rows = sum(t.rows for t in self.tables)
        return {
            "source": self.source,
            "snapshot": self.snapshot,
            "tables": [t.to_json() for t in self.tables],
            "rows": rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(rows / self.seconds, 1) if self.seconds else None,
            "rate_limit_waited_seconds": round(self.rate_waited, 3),
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


def run_tables(
    conn: Connection,
    source: str,
    plans: list[TablePlan],
    target: MigrationTarget,
    options: RunOptions,
    on_progress: Callable[[int], None] | None = None,
    *,
    limiter: RateLimit | None = None,
) -> RunReport:
    """Copy ``plans`` (none of them blocked) to ``target`` (see module docstring).

    ``limiter`` replaces the one built from ``options.rate`` (tests inject a clock)."""
    blocked = [p.name for p in plans if p.verdict == "blocked"]
    if blocked:
        raise OperationFailed(f"refusing to run: blocked table(s) {', '.join(blocked)}")
    cp = _open_checkpoint(plans, source, options)
    limit = limiter if limiter is not None else RateLimit(options.rate)
    started = time.monotonic()
    runs: list[TableRun] = []
    try:
        snapshot = open_snapshot(conn)
        for plan in plans:
            runs.append(_copy(conn, plan, target, options, cp, on_progress, limit))
    except MySQLError as exc:
        if not connection_lost(exc):
            raise
        raise ServiceUnavailable(f"MySQL {source}: connection lost during the run: {exc}") from None
    finally:
        with contextlib.suppress(MySQLError):
            conn.rollback()  # a lost connection has lost its snapshot already
    return RunReport(source, snapshot, runs, time.monotonic() - started, limit.waited)


def _id_text(value: Any) -> str:
    return json.dumps(canonical(value), sort_keys=True)


def _without_identical(
    target: MigrationTarget, table: str, docs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """``docs`` minus those whose identical copy the target holds, and how many those were."""
    found = {
        _id_text(d.get("id")): digest(d) for d in target.get_many(table, [d["id"] for d in docs])
    }
    rest = [d for d in docs if found.get(_id_text(d["id"])) != digest(d)]
    return rest, len(docs) - len(rest)


def _copy(
    conn: Connection,
    plan: TablePlan,
    target: MigrationTarget,
    options: RunOptions,
    cp: Checkpoint,
    on_progress: Callable[[int], None] | None,
    limiter: RateLimit,
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
    # The range an interrupted run had sent (see module docstring); None: no such range.
    upto = progress.inflight[1] if progress.inflight is not None else None
    if upto is not None:
        _log.info("migrate.resume_inflight", table=plan.name, after=str(after), upto=str(upto))
    while True:
        rows = reader.batch(conn, after, options.batch_size, upto)
        if not rows:
            if upto is not None:  # past the interrupted batch: back to the plain policy
                upto, progress.inflight = None, None
                continue
            break
        limiter.take(len(rows))
        docs = [builder.build(row) for row in rows]
        last = [rows[-1][i] for i in builder.key_positions]
        skipped = 0
        if upto is None:
            progress.inflight = (after, last)
            if options.checkpoint:
                cp.save()
        elif options.conflict == "error":
            docs, skipped = _without_identical(target, plan.target_table, docs)
        res = (
            target.insert(plan.target_table, docs, options.conflict)
            if docs
            else InsertResult(0, 0, 0, 0)
        )
        if res.errors:
            hint = "--conflict replace or update" if options.conflict == "error" else None
            raise OperationFailed(
                f"{target.describe()} rejected {res.errors} of {len(docs)} documents of "
                f"{plan.name}: {res.first_error or 'conflict or invalid document'}",
                hint=hint,
            )
        result.inserted += res.inserted
        result.replaced += res.replaced
        result.unchanged += res.unchanged + skipped
        result.rows += len(rows)
        after = last
        progress.last_key, progress.rows = after, progress.rows + len(rows)
        if upto is None:
            progress.inflight = None
        if options.checkpoint:
            cp.save()
        if on_progress:
            on_progress(len(rows))
    progress.done = True
    if options.checkpoint:
        cp.save()
    result.seconds = time.monotonic() - started
    _log.info("migrate.table_copied", table=plan.name, target=plan.target, rows=result.rows)
    return result
