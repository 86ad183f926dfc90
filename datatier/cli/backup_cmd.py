"""``datatier backup``: take backups according to the policies in ``backup.policies_dir``."""

from __future__ import annotations

from pathlib import Path

import click

from datatier.backup.engine import BackupPlan
from datatier.backup.policy import scan_policies
from datatier.backup.service import load_policy, plan_backup, policies_dir, run_backup
from datatier.backup.stores import store_in_background
from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option, table
from datatier.cli.params import FiniteFloatRange
from datatier.cli.progress import Progress
from datatier.display import human_bytes
from datatier.errors import ExitCode, UsageError
from datatier.ops.job import run_job

METRICS_FILE_OPTION = click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH.prom",
    help="Write the policy's metrics here at the end (node_exporter textfile, atomic).",
)


@click.group("backup")
def backup_group() -> None:
    """Take backups (cron runs `datatier backup run POLICY` nightly)."""


@backup_group.command("run")
@click.argument("policy")
@click.option(
    "--max-lag",
    type=FiniteFloatRange(0),
    metavar="SECONDS",
    help="Refuse a replica lagging more (default: the policy's source.max_lag_seconds, 300).",
)
@click.option(
    "--incremental/--full",
    default=None,
    help="Physical policies: an incremental on the newest backup, or a full backup "
    "(default: as the policy's full_every_days says).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what the backup would read and how (source, tables with estimates, "
    "ranges, consistency, store) and write nothing.",
)
@json_option("Print the result as JSON.")
@METRICS_FILE_OPTION
@pass_app
def run(
    app: AppContext,
    policy: str,
    max_lag: float | None,
    incremental: bool | None,
    dry_run: bool,
    metrics_file: Path | None,
) -> None:
    """Back up POLICY now: dump, compress, checksum, upload; the manifest is written last.

    MySQL reads from the first node of source.nodes that answers and lags at most
    --max-lag seconds (heartbeat lag; a stopped SQL thread is refused): exit 5 when none
    does. A failed or interrupted run leaves no manifest and deletes what it wrote (or
    says what it left for `backups prune`). Every run, good or bad, is recorded in the
    store (for metrics); a failed one is sent to notify.command / notify.webhook_url.

    --dry-run makes every decision and refusal of a run (same exit codes) and prints the
    plan; it writes nothing to the store, records no job and notifies no one.
    """
    loaded = app.loaded()
    if dry_run:
        if metrics_file is not None:
            raise UsageError("--metrics-file records a run; a dry run has none to record")
        plan = plan_backup(
            loaded, load_policy(loaded, policy), max_lag=max_lag, incremental=incremental
        )
        emit(Output(plan.to_json(), lambda: _plan_text(plan)))
        return
    with run_job(
        loaded, "backup", policy=policy, metrics_file=metrics_file, reported=app.reported
    ) as job:
        spec = load_policy(loaded, policy)
        # opened while the source is connected to and the dump planned
        job.store = store_in_background(spec.store_url, loaded.config)
        job.read_record_early()
        progress = Progress(f"backup {policy}")
        try:
            manifest = run_backup(
                loaded,
                spec,
                max_lag=max_lag,
                on_progress=progress.advance,
                incremental=incremental,
                store=job.store,
            )
        finally:
            progress.close()
        job.details.update(backup_id=manifest.backup_id, bytes=manifest.total_bytes)
    summary = {
        "id": manifest.backup_id,
        "policy": manifest.policy,
        "engine": manifest.engine,
        "store": manifest.options.get("store"),
        "objects": len(manifest.objects),
        "tables": len(manifest.tables),
        "rows": sum(t.rows for t in manifest.tables),
        "bytes": manifest.total_bytes,
        "raw_bytes": manifest.raw_bytes,
        "consistency": manifest.consistency,
        "parent": manifest.parent,
        "seconds": manifest.timings.get("total_seconds"),
    }
    held = (
        f"{summary['tables']} tables, {summary['rows']} rows"
        if manifest.tables
        else f"{len(manifest.databases)} databases"
    )
    chained = f" (incremental on {manifest.parent})" if manifest.parent else ""
    text = (
        f"backup {manifest.backup_id} of {policy}{chained}: {held}, "
        f"{human_bytes(manifest.raw_bytes)} -> "
        f"{human_bytes(manifest.total_bytes)} in {len(manifest.objects)} objects, "
        f"{summary['seconds']} s"
    )
    emit(Output(summary, text))


def _plan_text(plan: BackupPlan) -> str:
    """The plan for people: what is decided, then the tables in scope."""
    store = plan.store
    chained = f" on {plan.parent}" if plan.parent else ""
    encrypted = (
        f"encrypted to {store['recipients']} recipient(s)" if store.get("encrypted") else "plain"
    )
    lines = [
        f"would back up {plan.policy} ({plan.engine}, {plan.kind}{chained}) to "
        f"{store.get('url')}/{store.get('prefix')}: {store.get('storage_class')}, "
        f"{store.get('compression')}, {encrypted}",
        *(f"  {line}" for line in plan.summary),
    ]
    rows = [
        {
            "table": t.qualified,
            "kind": t.kind,
            "rows~": t.rows,
            "bytes~": None if t.bytes is None else human_bytes(t.bytes),
            "ranges": t.ranges,
        }
        for t in plan.tables
    ]
    if rows:
        lines += ["", table(rows, ("table", "kind", "rows~", "bytes~", "ranges"))]
    lines.append("(~: the server's estimates; nothing was written)")
    return "\n".join(lines)


@backup_group.command("policies")
@json_option("Print JSON.")
@pass_app
def policies(app: AppContext) -> None:
    """List the backup policies and validate every policy file.

    An invalid file is listed with its error (the other policies stay usable by every
    command); the exit code is then 2. What a policy backs up: source.databases (empty:
    every non-system database) less exclude_databases and exclude_tables; source.tables,
    when set, alone picks the tables (databases may be left out; one listed that no tables
    entry names is refused, as it would silently not be backed up).
    """
    loaded = app.loaded()
    config = loaded.config
    good, broken = scan_policies(
        policies_dir(loaded), config.backup.default_store, config.mysql.nodes
    )
    rows = [
        {
            "name": p.name,
            "valid": True,
            "engine": p.spec.engine,
            "source": ",".join(p.spec.source.nodes or [p.spec.source.node or ""])
            or f"mongo:{p.spec.source.server or 'default'}",
            "store": p.store_url,
            "schedule": p.spec.schedule,
            "initial_class": p.spec.storage.initial_class,
            "archive": (
                f"{p.spec.storage.archive_class} after {p.spec.storage.archive_after_days} d"
                if p.spec.storage.archive_after_days
                else "-"
            ),
        }
        for p in good
    ]
    rows += [{"name": b.name, "valid": False, "error": b.error.problem} for b in broken]
    rows.sort(key=lambda row: str(row["name"]))
    shown = [{**r, "engine": r.get("engine", "INVALID")} for r in rows]
    doc = {"policies": rows, "count": len(rows), "valid": len(good), "invalid": len(broken)}
    emit(
        Output(
            doc,
            lambda: table(shown, ("name", "engine", "source", "store", "schedule", "archive")),
            [f"invalid policy {bad.name}: {bad.error}" for bad in broken],
            legacy_list="policies",
        )
    )
    if broken:
        raise click.exceptions.Exit(int(ExitCode.USAGE))
