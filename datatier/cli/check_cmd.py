"""``datatier check``: one line per preflight check; exit 0 only if none failed (a
warning does not fail it)."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import click

from datatier.backup.policy import find_policies
from datatier.backup.service import load_policy, policies_dir
from datatier.cli.backups_cmd import parse_now
from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option
from datatier.cli.params import FiniteFloatRange
from datatier.errors import OperationFailed
from datatier.ops.checks import NAMES, CheckContext, CheckResult, Status, run_checks
from datatier.ops.job import run_job


@click.command("check")
@click.argument("policies", nargs=-1, metavar="[POLICY]...")
@click.option(
    "--only", default="", metavar="CHECK,...", help=f"Only these checks ({', '.join(NAMES)})."
)
@click.option(
    "--max-lag",
    type=FiniteFloatRange(min=0),
    default=None,
    help="Replica lag limit in seconds. Default: health.replica_max_lag.",
)
@click.option(
    "--staging-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where restores stage data (free space check). Default: the temp directory.",
)
@click.option(
    "--grace-hours",
    type=FiniteFloatRange(min=0),
    default=None,
    help="How long a due backup may still be running. Default: 6 h or the schedule's "
    "period if shorter.",
)
@click.option("--now", "now", metavar="ISO-8601", callback=parse_now, help="Check as of then.")
@json_option("Print the results as JSON.")
@pass_app
def check(
    app: AppContext,
    policies: tuple[str, ...],
    only: str,
    max_lag: float | None,
    staging_dir: Path | None,
    grace_hours: float | None,
    now: datetime,
) -> None:
    """Check what backups and health rely on, like pgBackRest's and Barman's `check`.

    Per policy (default: all): the MySQL account's privileges for each job, the store is
    reachable and writable, S3 buckets are set up as `provision plan` wants, the newest
    good backup is as fresh as the schedule allows, free space where restores stage;
    for the topology: the heartbeat writer runs, replicas replicate within --max-lag.
    One line per check (PASS, WARN, FAIL or SKIP); exit 0 only if none failed (1
    otherwise; 2 for bad arguments). WARN: it works, doing less than it could (e.g. the
    binlog archiver's account lacks PROCESS); it does not fail the run. A failure is sent
    to the notify channels.
    """
    loaded = app.loaded()
    config = loaded.config
    with run_job(loaded, "check", reported=app.reported):
        chosen = (
            [load_policy(loaded, name) for name in policies]
            if policies
            else find_policies(policies_dir(loaded), config.backup.default_store)
        )
        ctx = CheckContext(
            loaded=loaded,
            policies=tuple(chosen),
            now=now,
            max_lag=config.health.replica_max_lag if max_lag is None else max_lag,
            staging_dir=staging_dir or Path(tempfile.gettempdir()),
            grace_hours=grace_hours,
        )
        results = run_checks(ctx, [n.strip() for n in only.split(",") if n.strip()])
        bad = [r for r in results if r.status is Status.FAIL]
        doc = {
            "checks": [r.to_json() for r in results],
            "ok": not bad,
            "counts": {s.value: sum(r.status is s for r in results) for s in Status},
        }
        emit(Output(doc, lambda: _text(results), legacy_list="checks"))
        if bad:
            names = ", ".join(dict.fromkeys(f"{r.check} ({r.target})" for r in bad))
            raise OperationFailed(f"{len(bad)} of {len(results)} checks failed: {names}")


def _text(results: list[CheckResult]) -> str:
    """One line per check, and the hint of each failed or warned one."""
    lines = []
    for r in results:
        lines.append(f"{r.status.value.upper():<4}  {r.check:<16}  {r.target}: {r.detail}")
        if r.hint and r.status in (Status.FAIL, Status.WARN):
            lines.append(f"{'':<4}  {'':<16}  hint: {r.hint}")
    return "\n".join(lines)
