"""``datatier backup``: take backups according to the policies in ``backup.policies_dir``."""

from __future__ import annotations

from pathlib import Path

import click

from datatier.backup.policy import find_policies
from datatier.backup.service import load_policy, policies_dir, run_backup
from datatier.backup.stores import store_for
from datatier.cli.context import AppContext, pass_app
from datatier.cli.progress import Progress, human_bytes
from datatier.cli.render import emit_json, table
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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@METRICS_FILE_OPTION
@pass_app
def run(app: AppContext, policy: str, as_json: bool, metrics_file: Path | None) -> None:
    """Back up POLICY now: dump, compress, checksum, upload; the manifest is written last.

    A failed or interrupted run leaves no manifest: it never shows in `backups list`
    and `backups prune` removes its leftovers. Every run, good or bad, is recorded in the
    store (for metrics); a failed one is sent to notify.command / notify.webhook_url.
    """
    loaded = app.loaded()
    with run_job(
        loaded, "backup", policy=policy, metrics_file=metrics_file, reported=app.reported
    ) as job:
        spec = load_policy(loaded, policy)
        job.store = store_for(spec.store_url, loaded.config)
        progress = Progress(f"backup {policy}")
        try:
            manifest = run_backup(loaded, spec, on_progress=progress.advance)
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
        "seconds": manifest.timings.get("total_seconds"),
    }
    if as_json:
        emit_json(summary)
        return
    click.echo(
        f"backup {manifest.backup_id} of {policy}: {summary['tables']} tables, "
        f"{summary['rows']} rows, {human_bytes(manifest.raw_bytes)} -> "
        f"{human_bytes(manifest.total_bytes)} in {len(manifest.objects)} objects, "
        f"{summary['seconds']} s"
    )


@backup_group.command("policies")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def policies(app: AppContext, as_json: bool) -> None:
    """List the backup policies and validate every policy file."""
    loaded = app.loaded()
    rows = [
        {
            "name": p.name,
            "engine": p.spec.engine,
            "source": p.spec.source.node or "mongo",
            "store": p.store_url,
            "schedule": p.spec.schedule,
            "initial_class": p.spec.storage.initial_class,
            "archive": (
                f"{p.spec.storage.archive_class} after {p.spec.storage.archive_after_days} d"
                if p.spec.storage.archive_after_days
                else "-"
            ),
        }
        for p in find_policies(policies_dir(loaded), loaded.config.backup.default_store)
    ]
    if as_json:
        emit_json(rows)
    else:
        click.echo(table(rows, ("name", "engine", "source", "store", "schedule", "archive")))
