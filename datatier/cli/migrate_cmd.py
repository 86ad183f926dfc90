"""``datatier migrate``: the MySQL -> RethinkDB move, dry-run first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option
from datatier.cli.progress import Progress
from datatier.errors import DatatierError, IntegrityFailure, OperationFailed, UsageError
from datatier.migrate.plan import TablePlan
from datatier.migrate.report import plan_text, plans_summary, verify_text, why_blocked
from datatier.migrate.runner import RunOptions, run_tables
from datatier.migrate.service import (
    make_plans,
    mapping_for,
    open_source,
    open_target,
    source_node,
    table_names,
)
from datatier.migrate.target import CONFLICT_POLICIES, DURABILITIES, Conflict
from datatier.migrate.verify import verify_table


@click.group("migrate")
def migrate_group() -> None:
    """Plan, rehearse and verify moving MySQL tables to RethinkDB (nothing written unless
    --execute)."""


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--tables",
            metavar="DB.T[,DB.T]",
            help="Tables, comma-separated (default: the mapping's); backtick-quote a name "
            "holding a comma: `my,db`.t. A value naming none ('') is refused.",
        ),
        click.option(
            "--mapping",
            metavar="FILE|NAME",
            help="Mapping file (path or name in rethinkdb.mappings_dir).",
        ),
        click.option("--source", metavar="NODE", help="MySQL node to read (default: a replica)."),
        json_option("Print JSON."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _plans(
    app: AppContext,
    tables: str | None,
    mapping: str | None,
    source: str | None,
    **kw: Any,
) -> tuple[str, Any, list[TablePlan]]:
    loaded = app.loaded()
    mapping_file = mapping_for(loaded, mapping)
    names = table_names(tables, mapping_file)
    node = source_node(loaded, source)
    conn = open_source(loaded, node)
    return node, conn, make_plans(conn, loaded, names, mapping_file, **kw)


def _plans_output(plans: list[TablePlan], extra: dict[str, Any], tail: str = "") -> Output:
    """The plans as the ``--json`` document (``extra`` first) and as text (``tail`` after
    the summary)."""

    def text() -> str:
        shown = [plan_text(plan) + "\n" for plan in plans]
        return "\n".join([*shown, plans_summary(plans), *([tail] if tail else [])])

    return Output({**extra, "tables": [p.to_json() for p in plans]}, text)


def _refuse_blocked(plans: list[TablePlan]) -> None:
    blocked = [p for p in plans if p.verdict == "blocked"]
    if blocked:
        reasons = "; ".join(f"{p.name} ({why_blocked(p)})" for p in blocked)
        raise OperationFailed(f"migration blocked for {len(blocked)} table(s): {reasons}")


@migrate_group.command("plan")
@_common
@click.option("--sample", default=1000, show_default=True, help="Rows to sample per table.")
@click.option("--full", is_flag=True, help="Check every row instead of a sample.")
@click.option("--seed", type=int, help="Random seed for the sample (repeatable plans).")
@pass_app
def plan_cmd(
    app: AppContext,
    tables: str | None,
    mapping: str | None,
    source: str | None,
    sample: int,
    full: bool,
    seed: int | None,
) -> None:
    """Dry run: propose tables, keys, indexes and casts, sample the risks, give a verdict.

    Read-only. Exit 1 if any table is blocked (no usable key, values that would fail).
    """
    node, conn, plans = _plans(app, tables, mapping, source, sample=sample, full=full, seed=seed)
    with conn:
        emit(_plans_output(plans, {"source": node, "dry_run": True}))
    _refuse_blocked(plans)


@migrate_group.command("run")
@_common
@click.option("--execute", is_flag=True, help="Really write (default: the dry run only).")
@click.option(
    "--conflict",
    type=click.Choice(CONFLICT_POLICIES),
    default="error",
    show_default=True,
    help="When a document id exists already.",
)
@click.option(
    "--batch-size",
    default=RunOptions.batch_size,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Rows per insert.",
)
@click.option(
    "--connections",
    default=RunOptions.connections,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Writer connections to RethinkDB: batches in flight while the next are read.",
)
@click.option(
    "--durability",
    type=click.Choice(DURABILITIES),
    default=RunOptions.durability,
    show_default=True,
    help="soft: the server acknowledges inserts from memory and the checkpoint moves only "
    "after a sync of the table (every --sync-every rows and at the end of each table); "
    "hard: every insert is on disk when acknowledged.",
)
@click.option(
    "--sync-every",
    default=RunOptions.sync_every,
    show_default=True,
    type=click.IntRange(1, None),
    metavar="ROWS",
    help="With soft durability: rows acknowledged between syncs (what a resume may redo).",
)
@click.option("--rate", type=click.FloatRange(min=1), help="At most this many rows per second.")
@click.option("--checkpoint", metavar="PATH", help="Checkpoint file (default: per target db).")
@click.option("--restart", is_flag=True, help="Ignore the checkpoint and start over.")
@click.option("--sample", default=1000, show_default=True, help="Rows sampled by the plan.")
@pass_app
def run_cmd(
    app: AppContext,
    tables: str | None,
    mapping: str | None,
    source: str | None,
    execute: bool,
    conflict: Conflict,
    batch_size: int,
    connections: int,
    durability: str,
    sync_every: int,
    rate: float | None,
    checkpoint: str | None,
    restart: bool,
    sample: int,
) -> None:
    """Copy the tables from one consistent snapshot (a replica by default).

    Without --execute this is the plan; blocked tables stop the run before anything is
    written. With it: batches in key order, several in flight on --connections writer
    connections while the next are read, the conflict policy, a checkpoint that names only
    rows durably written (a rerun resumes, redoing only what was not yet durable), an
    optional rate limit and progress. A run that fails part-way says how many rows it wrote
    and where its checkpoint is: rerun the same command.
    """
    node, conn, plans = _plans(app, tables, mapping, source, sample=sample)
    with conn:
        if not execute:
            rows = sum(p.estimates.documents for p in plans if p.estimates)
            blocked = any(p.verdict == "blocked" for p in plans)
            tail = (
                "" if blocked else f"dry run: nothing written; add --execute to copy ~{rows:,} rows"
            )
            emit(_plans_output(plans, {"source": node, "dry_run": True, "rows": rows}, tail))
            _refuse_blocked(plans)
            return
        _refuse_blocked(plans)
        loaded = app.loaded()
        target_db = plans[0].target_db
        cp_path = (
            Path(checkpoint)
            if checkpoint
            else loaded.base_dir / ".datatier-migrate" / f"{target_db}.checkpoint.json"
        )
        target = open_target(loaded, target_db)
        total = sum(p.estimates.documents for p in plans if p.estimates) or None
        progress = Progress("migrate", total, unit="rows")
        options = RunOptions(
            batch_size,
            conflict,
            rate,
            cp_path,
            restart,
            connections=connections,
            durability=durability,
            sync_every=sync_every,
        )
        written = 0

        def advance(n: int) -> None:
            nonlocal written
            written += n
            progress.advance(n)

        try:
            report = run_tables(conn, node, plans, target, options, advance)
        except DatatierError as exc:
            if written and not isinstance(exc, UsageError):  # failed part-way: say how to go on
                resume = (
                    f"{written:,} rows written; checkpoint {cp_path}; "
                    "rerun the same command to resume"
                )
                exc.hint = resume if exc.hint is None else f"{exc.hint}; {resume}"
            raise
        finally:
            progress.close()
    data = report.to_json() | {"checkpoint": str(cp_path), "target": target.describe()}
    lines = [
        f"{t.table} -> {t.target}: {t.rows:,} rows ({t.inserted:,} inserted, "
        f"{t.replaced:,} replaced, {t.unchanged:,} unchanged), {t.seconds:.1f} s"
        + (f", resumed after {t.resumed_after:,}" if t.resumed_after else "")
        for t in report.tables
    ]
    waited = f", {report.rate_waited:.1f} s waiting for --rate" if report.rate_waited else ""
    lines.append(
        f"copied {data['rows']:,} rows in {data['seconds']} s ({data['rows_per_second']} rows/s"
        f"{waited}) from {node}; checkpoint {cp_path}"
    )
    emit(Output(data, "\n".join(lines)))


@migrate_group.command("verify")
@_common
@click.option("--sample", default=1000, show_default=True, help="Rows compared per table.")
@click.option("--all", "all_rows", is_flag=True, help="Compare every row.")
@pass_app
def verify_cmd(
    app: AppContext,
    tables: str | None,
    mapping: str | None,
    source: str | None,
    sample: int,
    all_rows: bool,
) -> None:
    """Compare counts and per-row checksums of MySQL rows and RethinkDB documents.

    Read-only on both sides. Exit 4 if anything is missing or differs.
    """
    node, conn, plans = _plans(app, tables, mapping, source, sampled=False)
    loaded = app.loaded()
    target = open_target(loaded, plans[0].target_db)
    with conn:
        results = [
            verify_table(conn, p, target, sample=None if all_rows else sample) for p in plans
        ]
    doc = {"source": node, "target": target.describe(), "tables": results}
    emit(Output(doc, lambda: verify_text(results)))
    bad = [r["table"] for r in results if not r["ok"]]
    if bad:
        raise IntegrityFailure(f"RethinkDB differs from MySQL for {', '.join(bad)}")
