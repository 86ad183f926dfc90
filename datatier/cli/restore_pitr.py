"""The point-in-time side of ``datatier restore`` (``--until``/``--until-gtid``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from datatier.backup.manifest import ObjectRecord
from datatier.backup.restore import RestoreOptions, find_backup
from datatier.backup.service import load_policy, open_policy_catalog
from datatier.binlog.pitr import parse_until, plan_pitr
from datatier.binlog.restore import PitrReport, restore_pitr
from datatier.cli.progress import Progress, human_bytes
from datatier.cli.render import emit_json, table
from datatier.cli.targets import target_endpoint
from datatier.config import LoadedConfig
from datatier.errors import UsageError
from datatier.mysql.binlog.positions import Gtid


def run_pitr(
    loaded: LoadedConfig,
    *,
    backup_id: str | None,
    policy: str | None,
    until: str | None,
    until_gtid: str | None,
    target: str | None,
    renames: dict[str, str],
    databases: str,
    tables: str,
    flags: dict[str, Any],
    as_json: bool,
) -> None:
    """Plan (refusing bad targets first), then restore and replay, then report."""
    if until is not None and until_gtid is not None:
        raise UsageError("give --until or --until-gtid, not both")
    moment = parse_until(until, datetime.now(UTC)) if until is not None else None
    if until_gtid is not None:
        Gtid.parse(until_gtid, "--until-gtid")
    if policy is None:
        if backup_id is None:
            raise UsageError("--until and --until-gtid need --policy POLICY (or a BACKUP_ID)")
        policy = find_backup(loaded, backup_id)[0].policy
    chosen = load_policy(loaded, policy)
    if chosen.spec.engine != "mysql":
        raise UsageError(
            f"point-in-time restores are for MySQL policies; {policy} is {chosen.spec.engine}"
        )
    plan = plan_pitr(
        loaded,
        open_policy_catalog(loaded, chosen),
        chosen,
        until=moment,
        until_gtid=until_gtid,
        backup_id=backup_id,
    )
    options = RestoreOptions(
        target=target_endpoint(loaded, target),
        renames=renames,
        tables=tuple(t.strip() for t in tables.split(",") if t.strip()),
        databases=tuple(d.strip() for d in databases.split(",") if d.strip()),
        until=moment,
        until_gtid=until_gtid,
        **flags,
    )
    loading = Progress(f"restore {plan.manifest.backup_id}", total=plan.manifest.raw_bytes)
    archive = Progress("waiting for archive restores", unit="objects")

    def on_loaded(obj: ObjectRecord) -> None:
        loading.advance(obj.raw_size)

    try:
        report = restore_pitr(
            plan, options, on_loaded, lambda done, total: archive.set(done, total)
        )
    finally:
        loading.close()
    if as_json:
        emit_json(report.to_json())
        return
    render(report)


def render(report: PitrReport) -> None:
    base = report.base
    verb = "would restore" if report.dry_run else "restored"
    dbs = ", ".join(f"{s}->{d}" if s != d else s for s, d in base["databases"].items())
    click.echo(
        f"{verb} {base['backup_id']} ({base['policy']}, at GTID {report.start}) into "
        f"{base['target']}: {dbs}; {base['tables']} tables, {base['objects']} objects "
        f"({human_bytes(base['bytes'])})"
    )
    rows = [
        {
            "segment": r["key"].rsplit("/", 1)[-1],
            "class": r["storage_class"],
            "size": human_bytes(r["size"]),
            "transactions": r["transactions"],
            "from": r["first_time"],
            "to": r["last_time"],
        }
        for r in report.segments
    ]
    if rows:
        click.echo(table(rows, ("segment", "class", "size", "transactions", "from", "to")))
    classes = ", ".join(f"{n} in {c}" for c, n in sorted(report.by_class.items())) or "none"
    click.echo(
        f"replay to {report.target}: {len(report.segments)} binlog segment(s) ({classes}), "
        f"{human_bytes(report.replay_bytes)} of binlog ({human_bytes(report.replay_stored_bytes)} "
        f"stored); archived objects: {report.archived}"
    )
    if report.replayed is not None:
        replayed = report.replayed
        click.echo(
            f"replayed {replayed['transactions']} transaction(s) up to {replayed['last'] or '-'} "
            f"in {replayed['seconds']} s; done in {report.seconds} s"
        )
