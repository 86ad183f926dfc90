"""``datatier restore``: bring a backup back, safely, including from Glacier."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
from click.core import ParameterSource

from datatier.backup.engine import RestoreOptions, RestoreProgress
from datatier.backup.manifest import ObjectRecord
from datatier.backup.names import (
    held_tables,
    parse_databases,
    parse_rename,
    parse_tables,
    resolve_databases,
    resolve_tables,
)
from datatier.backup.restore import RestoreReport, locate_backup, restore_backup
from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option
from datatier.cli.progress import Progress
from datatier.display import human_bytes
from datatier.errors import UsageError
from datatier.storage.base import RestoreTier


def _renames(pairs: tuple[str, ...]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for pair in pairs:
        src, dst = parse_rename(pair)
        if renames.get(src, dst) != dst:  # the last one silently won
            raise UsageError(
                f"--rename {src}={renames[src]} and {pair}: {src} renamed twice",
                hint="give one --rename per database",
            )
        renames[src] = dst
    return renames


@click.command("restore")
@click.argument("backup_id", required=False)
@click.option("--policy", "-p", metavar="POLICY", help="With --until: the policy to restore.")
@click.option(
    "--until",
    metavar="TIME",
    help="Point in time (ISO-8601, UTC unless it says): the newest backup before it, then "
    "the archived binlogs up to it (transactions stamped before TIME's second; the stamp "
    "is when the committing statement started).",
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
    help="Restore database SRC as DST (repeatable). Quote a name holding = or a backtick "
    "with backticks, a backtick doubled inside: --rename '`e=q`=new'.",
)
@click.option(
    "--databases",
    multiple=True,
    metavar="DB,...",
    help="Only these databases (repeatable). Quote a name holding a comma or backtick with "
    "backticks, MySQL style: --databases '`my,db`,other'. Quoted names are exact; an unquoted "
    "' sp' is `sp` or ` sp`, whichever the backup holds (refused if both).",
)
@click.option(
    "--tables",
    multiple=True,
    metavar="DB.T,...",
    help="Only these tables or views (repeatable). Quote a part holding a dot, comma or backtick "
    "with backticks, MySQL style (`` inside is one backtick): --tables '`my,db`.`t.1`,shop.a'. "
    "An unquoted entry that fits two tables of the backup (a.b.c: `a`.`b.c` and `a.b`.`c`; "
    "' sp.t': `sp`.`t` and ` sp`.`t`) is refused.",
)
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
    "--scan",
    is_flag=True,
    help="With --dry-run and --until/--until-gtid: also download the binlog segments "
    "(SHA-256 checked, not the base backup) and scan them as the restore would, so what it "
    "would refuse (exit 2) and the point the replay reaches show now. Nothing is applied.",
)
@click.option(
    "--no-binlog",
    is_flag=True,
    help="Do not write the restored data to the target's binlog (faster; replicas of the "
    "target will NOT receive it). For scratch servers and per-node restores.",
)
@click.option(
    "--keys-after-data/--keys-with-data",
    default=True,
    show_default=True,
    help="MySQL: create the plain secondary indexes of large InnoDB tables after their rows "
    "(one sort per index, as myloader's --innodb-optimize-keys) rather than row by row.",
)
@click.option(
    "--drop",
    is_flag=True,
    help="Mongo: drop the selected collections the target holds first (empty ones too).",
)
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
@click.option(
    "--external-dir",
    metavar="ROOT",
    help="Physical: put tables created with DATA DIRECTORY under ROOT (ROOT/db/table.ibd; "
    "outside DIR, reachable by the server's user) rather than at the path each was created "
    "with; needed where those paths hold files, as on the source's own host.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace objects in a non-empty target (physical: DIR's contents, and the DATA "
    "DIRECTORY files DIR's own .isl files name).",
)
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
@click.option(
    "--staging-dir",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, writable=True),
    help="Where verified copies of the objects wait before they are applied (default: the "
    "system's temp dir; its free space is checked first).",
)
@json_option("Print the report as JSON.")
@pass_app
def restore(
    app: AppContext,
    backup_id: str | None,
    policy: str | None,
    until: str | None,
    until_gtid: str | None,
    target: str | None,
    renames: tuple[str, ...],
    databases: tuple[str, ...],
    tables: tuple[str, ...],
    jobs: int,
    dry_run: bool,
    scan: bool,
    no_binlog: bool,
    keys_after_data: bool,
    drop: bool,
    grants: bool,
    datadir: str | None,
    owner: str | None,
    external_dir: str | None,
    force: bool,
    allow_replica_target: bool,
    wait: bool,
    tier: str,
    days: int,
    poll_seconds: float,
    staging_dir: str | None,
) -> None:
    """Restore BACKUP_ID (see `datatier backups list`), or, with --until/--until-gtid, the
    state of --policy's databases at a point in time (base backup + archived binlogs).

    Safe by default: refuses a read-only or replica target (--allow-replica-target) and a
    target database that already has tables (--force or --rename), before any archive
    restore is requested; verifies every object's SHA-256 before applying anything (exit 4
    if one is corrupt); for data in GLACIER/DEEP_ARCHIVE requests restores for all objects
    at once, then waits (--wait) or exits 5 so you can run the same command again later.
    A view whose base tables neither the restore nor the target has is refused (exit 2,
    nothing changed; add them to --tables), and so are names differing only by letter case
    (Orders and orders) on a target with lower_case_table_names 1 or 2, where they are one
    (exit 2, nothing changed; --tables, --databases or --rename restore one of them).

    A physical backup (and its chain of incrementals) goes into --datadir DIR: extracted,
    prepared in order, owned as the server expects; mariadbd then starts on DIR. With
    --until/--until-gtid and a physical --policy, the whole server's archived binlog is
    replayed on the prepared copy (a private mariadbd, mariadb-binlog, the mariadb client)
    before DIR is replaced; the result gives the GTID position DIR then holds.

    \b
    Point in time (say, after an accidental DROP TABLE in shop):
      datatier binlogs status                  # the archive's window
      datatier restore --policy P --until-gtid GTID_BEFORE_IT \\
          --rename shop=shop_before --dry-run --scan  # the plan, segments read
    then again without --dry-run --scan (or --until 2026-12-01T11:59:00Z). A target the
    archive cannot reach, a gap, or a transaction that cannot be replayed is refused (exit
    2) before anything changes.
    Exit codes: 0 ok, 1 failed, 2 refused/usage, 3 unreachable, 4 corrupt, 5 run again later
    (archived objects not readable yet, or another restore into a target database running).
    """
    loaded = app.loaded()
    entries, listed_databases = parse_tables(tables), parse_databases(databases)  # before I/O
    point_in_time = until is not None or until_gtid is not None
    if scan and not (dry_run and point_in_time):
        raise UsageError(
            "--scan goes with --dry-run and --until or --until-gtid",
            hint="a restore always scans the segments before it applies anything",
        )
    if until is not None and until_gtid is not None:  # before either is judged on its own
        raise UsageError(
            "give --until or --until-gtid, not both",
            hint="--until-gtid stops at one transaction, --until at a moment",
        )
    if point_in_time:
        from datatier.binlog.pitr import locate_base, parse_until  # lazy: PITR only

        moment = parse_until(until, datetime.now(UTC)) if until is not None else None
        with _naming_other_bases():
            catalog, manifest = locate_base(
                loaded, policy=policy, backup_id=backup_id, until=moment, until_gtid=until_gtid
            )
    elif backup_id is None:
        raise UsageError("give a BACKUP_ID, or --policy with --until TIME or --until-gtid GTID")
    else:
        moment = None
        catalog, manifest = locate_backup(loaded, backup_id, policy)
    options = RestoreOptions(
        target=target,
        drop=drop,
        grants=grants,
        renames=_renames(renames),
        tables=resolve_tables(entries, held_tables(manifest), manifest.backup_id),
        databases=resolve_databases(
            listed_databases,
            set(manifest.databases) | {db for db, _ in held_tables(manifest)},
            manifest.backup_id,
        ),
        jobs=jobs,
        dry_run=dry_run,
        binlog=not no_binlog,
        keys_after_data=keys_after_data,
        force=force,
        allow_replica_target=allow_replica_target,
        wait=wait,
        tier=RestoreTier(tier),
        days=days,
        poll_seconds=poll_seconds,
        datadir=datadir,
        owner=owner,
        external_dir=external_dir,
        staging_dir=staging_dir,
        until=moment,
        until_gtid=until_gtid,
        scan=scan,
    )
    total = manifest.raw_bytes
    archive = Progress("waiting for archive restores", unit="objects")
    checking = Progress(f"checking {backup_id}", total=manifest.total_bytes)
    applying = Progress(f"restore {backup_id}", total=total)

    def on_checked(_key: str, size: int) -> None:
        checking.advance(size)

    replaying: list[Progress] = []  # started with the replay: its rate is the replay's

    def on_loaded(obj: ObjectRecord) -> None:
        if checking.done and not applying.done:
            checking.close()  # the check is over: its line stays, the load's starts
        applying.advance(obj.raw_size)

    def on_replayed(done: int, everything: int) -> None:
        if not replaying:
            if applying.done:
                applying.close()  # the base is in: its line stays, the replay's starts
            replaying.append(Progress("replaying the binlog", total=everything))
        replaying[0].set(done, everything)

    progress = RestoreProgress(
        on_wait=archive.set, on_checked=on_checked, on_loaded=on_loaded, on_replayed=on_replayed
    )
    try:
        with _naming_other_bases():
            report = restore_backup(loaded, manifest, catalog, options, progress)
    finally:
        if replaying:
            replaying[0].close()
        elif applying.done:
            applying.close()
    emit(Output(report.to_json(), lambda: _text(report)))


@contextlib.contextmanager
def _naming_other_bases() -> Iterator[None]:
    """A point-in-time restore refused for an unusable base gets, as its hint, this very
    command naming the newest backup that could serve instead (never run unasked); after
    a partial apply, to be run once what it loaded is dropped."""
    from datatier.binlog.base import UnusableBase  # lazy: PITR only

    try:
        yield
    except UnusableBase as exc:
        if exc.alternatives:
            command = _this_command(exc.alternatives[0])
            exc.hint = f"to start from {exc.alternatives[0]} instead, run: {command}"
            if exc.partly_loaded:
                exc.hint = (
                    f"{exc.partly_loaded} may hold part of {exc.backup_id}: drop what this "
                    f"restore loaded there, then, {exc.hint}"
                )
            exc.details["command"] = command
        raise


def _this_command(backup_id: str) -> str:
    """The command line being run, with ``backup_id`` as BACKUP_ID: the options given on
    it (``--config`` too), in the order the command defines them."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    words = ["datatier"]
    if root.get_parameter_source("config_path") is ParameterSource.COMMANDLINE:
        words += ["--config", str(root.params["config_path"])]
    words += [ctx.info_name or "restore", backup_id]
    for param in ctx.command.params:
        name = param.name
        if not isinstance(param, click.Option) or name is None:
            continue
        if ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
            continue
        value: Any = ctx.params.get(name)
        if param.is_flag:
            words.append(
                param.opts[0] if value or not param.secondary_opts else param.secondary_opts[0]
            )
        else:
            for item in value if param.multiple else (value,):
                words += [_long(param), str(item)]
    return shlex.join(words)


def _long(option: click.Option) -> str:
    return next((o for o in option.opts if o.startswith("--")), option.opts[0])


def _text(report: RestoreReport) -> str:
    verb = "would restore" if report.dry_run else "restored"
    lines = [
        f"{verb} {report.backup_id} ({report.policy}, {report.engine}) into {report.target}: "
        f"{report.objects} objects, {human_bytes(report.bytes)} compressed "
        f"({human_bytes(report.raw_bytes)} raw)"
    ]
    lines += [f"  {line}" for line in report.summary]
    classes = ", ".join(f"{n} in {c}" for c, n in sorted(report.by_class.items())) or "none"
    requested = f", restore requested for {report.restore_requested}" if report.archived else ""
    lines.append(f"objects now: {classes}; archived: {report.archived}{requested}")
    if not report.dry_run:
        lines.append(f"done in {report.seconds} s")
    return "\n".join(lines)
