"""``datatier restore``: bring a backup back, safely, including from Glacier."""

from __future__ import annotations

import click

from datatier.backup.catalog import Catalog
from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.backup.restore import (
    RestoreOptions,
    find_backup,
    restore_mysql,
    restore_objects,
)
from datatier.cli.context import AppContext, pass_app
from datatier.cli.progress import Progress, human_bytes
from datatier.cli.render import emit_json
from datatier.cli.targets import mongo_target, target_endpoint, target_role
from datatier.errors import UsageError
from datatier.storage.base import RestoreTier


def _renames(pairs: tuple[str, ...]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src or not dst:
            raise UsageError(f"--rename {pair!r}: expected SRC=DST")
        renames[src] = dst
    return renames


@click.command("restore")
@click.argument("backup_id", required=False)
@click.option("--policy", "-p", metavar="POLICY", help="With --until: the policy to restore.")
@click.option(
    "--until",
    metavar="TIME",
    help="Point in time (ISO-8601, UTC unless it says): the newest backup before it, then "
    "the archived binlogs up to it (transactions committed before TIME's second).",
)
@click.option(
    "--until-gtid",
    metavar="GTID",
    help="Like --until, up to and including this transaction (e.g. 0-1-12345).",
)
@click.option(
    "--target",
    metavar="NODE|HOST:PORT|NAME",
    help="Where to restore. MySQL: a node or HOST:PORT (default: the primary). MongoDB: a "
    "[mongo.servers] NAME or `default` for [mongo] (default: the server backed up).",
)
@click.option(
    "--rename",
    "renames",
    multiple=True,
    metavar="SRC=DST",
    help="Restore database SRC as DST (repeatable).",
)
@click.option("--databases", default="", metavar="DB,...", help="Only these databases.")
@click.option("--tables", default="", metavar="DB.T,...", help="Only these tables.")
@click.option(
    "--jobs",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Objects loaded in parallel.",
)
@click.option(
    "--dry-run", is_flag=True, help="Show what would be fetched, from which tiers; change nothing."
)
@click.option(
    "--no-binlog",
    is_flag=True,
    help="Do not write the restored data to the target's binlog (faster; replicas of the "
    "target will NOT receive it). For scratch servers and per-node restores.",
)
@click.option("--drop", is_flag=True, help="Mongo: drop non-empty target collections first.")
@click.option(
    "--grants",
    is_flag=True,
    help="Also restore the accounts, roles and grants (policies with source.include_grants); "
    "existing accounts keep their passwords.",
)
@click.option(
    "--datadir",
    metavar="DIR",
    help="Physical backups: the datadir to restore into (a stopped server's; empty or new).",
)
@click.option(
    "--owner",
    metavar="USER[:GROUP]",
    help="Physical: who owns the restored files (default: DIR's owner, else mysql).",
)
@click.option("--force", is_flag=True, help="Replace tables in a non-empty target.")
@click.option(
    "--allow-replica-target",
    is_flag=True,
    help="Restore into a read-only server or a replica anyway (never binlogged there).",
)
@click.option(
    "--wait/--no-wait",
    default=False,
    show_default=True,
    help="Wait for archive restores (else exit 5 and run again later).",
)
@click.option(
    "--tier",
    type=click.Choice([t.value for t in RestoreTier]),
    default="Standard",
    show_default=True,
    help="Archive restore speed.",
)
@click.option(
    "--days",
    default=3,
    show_default=True,
    type=click.IntRange(1, 365),
    help="Days restored archive copies stay readable.",
)
@click.option(
    "--poll",
    "poll_seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.05),
    help="Seconds between archive checks with --wait.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def restore(
    app: AppContext,
    backup_id: str | None,
    policy: str | None,
    until: str | None,
    until_gtid: str | None,
    target: str | None,
    renames: tuple[str, ...],
    databases: str,
    tables: str,
    jobs: int,
    dry_run: bool,
    no_binlog: bool,
    drop: bool,
    grants: bool,
    datadir: str | None,
    owner: str | None,
    force: bool,
    allow_replica_target: bool,
    wait: bool,
    tier: str,
    days: int,
    poll_seconds: float,
    as_json: bool,
) -> None:
    """Restore BACKUP_ID (see `datatier backups list`), or, with --until/--until-gtid, the
    state of --policy's databases at a point in time (base backup + archived binlogs).

    Safe by default: refuses a read-only or replica target (--allow-replica-target) and a
    target database that already has tables (--force or --rename), before any archive
    restore is requested; verifies every object's SHA-256 before applying anything (exit 4
    if one is corrupt); for data in GLACIER/DEEP_ARCHIVE requests restores for all objects
    at once, then waits (--wait) or exits 5 so you can run the same command again later.

    A physical backup (and its chain of incrementals) goes into --datadir DIR: extracted,
    prepared in order, owned as the server expects; mariadbd then starts on DIR.
    """
    loaded = app.loaded()
    if until is not None or until_gtid is not None:
        from datatier.cli.restore_pitr import run_pitr  # lazy: only point-in-time restores

        run_pitr(
            loaded,
            backup_id=backup_id,
            policy=policy,
            until=until,
            until_gtid=until_gtid,
            target=target,
            renames=_renames(renames),
            databases=databases,
            tables=tables,
            flags={
                "jobs": jobs,
                "dry_run": dry_run,
                "binlog": not no_binlog,
                "force": force,
                "allow_replica_target": allow_replica_target,
                "target_role": target_role(loaded, target),
                "wait": wait,
                "tier": RestoreTier(tier),
                "days": days,
                "poll_seconds": poll_seconds,
            },
            as_json=as_json,
        )
        return
    if backup_id is None:
        raise UsageError("give a BACKUP_ID, or --policy with --until TIME or --until-gtid GTID")
    manifest, store = find_backup(loaded, backup_id, policy)
    is_mongo = manifest.engine == "mongo"
    if is_mongo and grants:
        raise UsageError("--grants is for MySQL backups")
    is_physical = manifest.engine == "mariabackup"
    if is_physical and (target or no_binlog or drop or allow_replica_target):
        raise UsageError("a physical backup restores into --datadir DIR: no --target, "
                         "--no-binlog, --drop or --allow-replica-target")  # fmt: skip
    if datadir and not is_physical:
        raise UsageError(f"--datadir is for physical backups; {backup_id} is {manifest.engine}")
    mongo = mongo_target(loaded, manifest, target) if is_mongo else None
    options = RestoreOptions(
        target=None if is_mongo or is_physical else target_endpoint(loaded, target),
        drop=drop,
        grants=grants,
        renames=_renames(renames),
        tables=tuple(t.strip() for t in tables.split(",") if t.strip()),
        databases=tuple(d.strip() for d in databases.split(",") if d.strip()),
        jobs=jobs,
        dry_run=dry_run,
        binlog=not no_binlog,
        force=force,
        allow_replica_target=allow_replica_target,
        target_role=target_role(loaded, target),
        wait=wait,
        tier=RestoreTier(tier),
        days=days,
        poll_seconds=poll_seconds,
        datadir=datadir,
        owner=owner,
    )
    if is_physical:
        _restore_physical(Catalog(store, [manifest.policy]), manifest, options, as_json)
        return
    chosen = manifest.objects if is_mongo else restore_objects(manifest, options)
    archive = Progress("waiting for archive restores", unit="objects")
    checking = Progress(f"checking {backup_id}", total=sum(o.size for o in chosen))
    loaded_progress = Progress(f"restore {backup_id}", total=sum(o.raw_size for o in chosen))
    try:

        def on_loaded(obj: ObjectRecord) -> None:
            if checking.done and not loaded_progress.done:
                checking.close()  # the check is over: its line stays, the load's starts
            loaded_progress.advance(obj.raw_size)

        def on_wait(done: int, total: int) -> None:
            archive.set(done, total)

        def on_checked(obj: ObjectRecord) -> None:
            checking.advance(obj.size)

        if is_mongo:
            from datatier.mongo.load import restore_mongo  # lazy: pymongo is slow to import

            assert mongo is not None
            report = restore_mongo(manifest, store, mongo, options, on_loaded, on_wait)
        else:
            report = restore_mysql(manifest, store, options, on_loaded, on_wait, on_checked)
    finally:
        if loaded_progress.done:
            loaded_progress.close()
    if as_json:
        emit_json(report.to_json())
        return
    verb = "would restore" if report.dry_run else "restored"
    dbs = ", ".join(f"{s}->{d}" if s != d else s for s, d in report.databases.items())
    click.echo(
        f"{verb} {report.backup_id} ({report.policy}) into {report.target}: {dbs}; "
        f"{report.tables} tables, {report.rows} rows, {report.objects} objects, "
        f"{human_bytes(report.bytes)} compressed ({human_bytes(report.raw_bytes)} raw)"
    )
    classes = ", ".join(f"{n} in {c}" for c, n in sorted(report.by_class.items())) or "none"
    requested = f", restore requested for {report.restore_requested}" if report.archived else ""
    click.echo(f"objects now: {classes}; archived: {report.archived}{requested}")
    if not report.dry_run:
        click.echo(f"done in {report.seconds} s")


def _restore_physical(
    catalog: Catalog, manifest: Manifest, options: RestoreOptions, as_json: bool
) -> None:
    """A physical restore into ``options.datadir`` (the chain, prepared in order)."""
    from datatier.mysql.physical.restore import restore_physical

    progress = Progress(f"restore {manifest.backup_id}", total=None)
    archive = Progress("waiting for archive restores", unit="objects")
    try:
        report = restore_physical(
            manifest,
            catalog,
            options,
            on_loaded=lambda obj: progress.advance(obj.raw_size),
            on_wait=archive.set,
        )
    finally:
        progress.close()
    if as_json:
        emit_json(report.to_json())
        return
    verb = "would restore" if report.dry_run else "restored"
    click.echo(
        f"{verb} {report.backup_id} ({report.policy}) into {report.datadir}: "
        f"{len(report.chain)} backup(s) in the chain, {report.objects} objects, "
        f"{human_bytes(report.bytes)} compressed ({human_bytes(report.raw_bytes)} raw); "
        f"GTID {report.gtid_pos or '-'}"
    )
    for member in report.chain:
        click.echo(
            f"  {member['type']:<12} {member['id']}  {member['objects']} objects, "
            f"{human_bytes(member['bytes'])}  GTID {member['gtid_pos'] or '-'}"
        )
    classes = ", ".join(f"{n} in {c}" for c, n in sorted(report.by_class.items()))
    click.echo(f"objects: {classes}; archived: {report.archived}")
    if not report.dry_run:
        click.echo(f"done in {report.seconds} s; start mariadbd with --datadir={report.datadir}")
