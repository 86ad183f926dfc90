"""``migrate run --execute``: copy planned tables from one consistent MySQL snapshot.

Contract: :func:`run_tables` reads every table inside one ``START TRANSACTION WITH
CONSISTENT SNAPSHOT`` (REPEATABLE READ) on the source connection, in key order, in
batches; each batch is converted completely (a value its cast cannot carry stops the run
with :class:`~datatier.migrate.documents.RowError` before that batch is written) and
inserted with the conflict policy. Up to ``connections`` batches are in flight at once,
each on a writer connection of its own (:class:`~datatier.migrate.window.WriteWindow`),
while the next batch is read and converted. The checkpoint's ``last_key`` moves only over
an unbroken prefix of batches the target has made durable: acknowledged under ``hard``
durability; acknowledged and then covered by a ``sync()`` of the table under ``soft``
(one every ``sync_every`` rows and one at the end of each table). A rerun resumes after
the last recorded key (from a new snapshot: rows changed in between are caught by
``migrate verify``).

Before batches are sent the checkpoint's ``inflight`` marker is saved as (``last_key``,
the last key sent) - one save for all the batches that go at once - and it is cleared
once everything sent is durable, so a rerun knows exactly which range an interrupted run
(killed, or stopped by an error while later batches were still being written) may have
written part of. Only that range is treated specially on resume, and under
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
from collections import deque
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
from datatier.migrate.window import Acked, Batch, WriteWindow
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
    connections: int = 4  # writer connections: batches in flight at once
    durability: str = "soft"  # soft: the checkpoint moves after a sync of the table
    sync_every: int = 20_000  # rows acknowledged between syncs (soft durability)


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
    after, base_rows = progress.last_key, progress.rows
    # The range an interrupted run had sent (see module docstring); None: no such range.
    upto = progress.inflight[1] if progress.inflight is not None else None
    if upto is not None:
        _log.info("migrate.resume_inflight", table=plan.name, after=str(after), upto=str(upto))
    covered = upto  # the checkpoint's inflight end: every key sent is at or before it

    def read() -> Batch | None:
        """The next batch, read and converted (RowError before anything of it is sent)."""
        nonlocal after, upto
        rows = reader.batch(conn, after, options.batch_size, upto)
        while not rows and upto is not None:  # past the interrupted range: plain policy
            upto = None
            rows = reader.batch(conn, after, options.batch_size)
        if not rows:
            return None
        limiter.take(len(rows))
        docs = [builder.build(row) for row in rows]
        after = [rows[-1][i] for i in builder.key_positions]
        return Batch(after, len(rows), docs, resume=upto is not None)

    def write(handle: MigrationTarget, batch: Batch) -> Acked:
        docs, skipped = batch.docs, 0
        if batch.resume and options.conflict == "error":
            docs, skipped = _without_identical(handle, plan.target_table, docs)
        res = (
            handle.insert(plan.target_table, docs, options.conflict)
            if docs
            else InsertResult(0, 0, 0, 0)
        )
        return Acked(batch, res, len(docs), skipped)

    window = WriteWindow(
        target,
        plan.target_table,
        write,
        size=options.connections,
        durability=options.durability,
        sync_every=options.sync_every,
        start=after,
    )

    def save(sending: bool = False) -> None:
        """Record the durable prefix and what may be written beyond it (module docstring);
        ``sending``: a batch ending at ``covered`` is about to be sent."""
        durable = window.durable
        progress.last_key, progress.rows = durable.key, base_rows + durable.rows
        settled = durable.batches == window.sent and upto is None and not sending
        progress.inflight = None if settled or covered is None else (durable.key, covered)
        if options.checkpoint:
            cp.save()

    ready: deque[Batch] = deque()  # read and converted, not sent yet
    exhausted = False

    def read_ahead(n: int) -> None:
        nonlocal exhausted
        while len(ready) < n and not exhausted:
            batch = read()
            exhausted = batch is None
            if batch is not None:
                ready.append(batch)

    try:
        read_ahead(1)
        saved = window.durable
        while ready or not window.idle():
            free = window.free()
            if ready and free:
                if ready[0].resume:  # inside the recorded range: nothing to record
                    window.send(ready.popleft())
                else:  # record the range of every batch that goes now, with one save
                    read_ahead(free)
                    covered = ready[min(free, len(ready)) - 1].last
                    save(sending=True)
                    saved = window.durable
                    for _ in range(min(free, len(ready))):
                        window.send(ready.popleft())
                read_ahead(1)  # the next batch is read while these are written
                continue
            if saved != window.durable:
                save()
                saved = window.durable
            for ack in window.collect():
                res = ack.result
                if res.errors:
                    hint = "--conflict replace or update" if options.conflict == "error" else None
                    raise OperationFailed(
                        f"{target.describe()} rejected {res.errors} of {ack.sent} documents of "
                        f"{plan.name}: {res.first_error or 'conflict or invalid document'}",
                        hint=hint,
                    )
                result.inserted += res.inserted
                result.replaced += res.replaced
                result.unchanged += res.unchanged + ack.skipped
                result.rows += ack.batch.rows
                if on_progress:
                    on_progress(ack.batch.rows)
        window.finish()
    finally:
        window.close()
    progress.done = True
    save()
    result.seconds = time.monotonic() - started
    _log.info("migrate.table_copied", table=plan.name, target=plan.target, rows=result.rows)
    return result
