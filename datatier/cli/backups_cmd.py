"""``datatier backups``: list, show, verify, prune and archive the backups in the stores.

Thin commands over :mod:`datatier.backup.catalog`, :mod:`datatier.backup.prune` and
:mod:`datatier.backup.archive`: the stores scanned are the config's default store and every
policy's store. Tables and reports (built by :mod:`datatier.cli.backups_view`) go to
stdout, progress to stderr (only on a terminal); ``--json`` prints one JSON document on
stdout.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from datatier.backup.accept import accept_chain
from datatier.backup.archive import archive_execute, archive_plan
from datatier.backup.catalog import BackupState, Catalog, locate
from datatier.backup.chain import resolve_chain
from datatier.backup.engine import RestoreTestOptions
from datatier.backup.engines import restore_test
from datatier.backup.manifest import Manifest, backup_prefix
from datatier.backup.parents import unless_deleted
from datatier.backup.prune import DEFAULT_GRACE, prune_execute, prune_plan
from datatier.backup.prunelock import PruneLock
from datatier.backup.service import (
    load_policy,
    open_catalogs,
    open_policy_catalog,
    usable_policies,
)
from datatier.binlog.retention import (
    binlog_archive_moves,
    binlog_prune_execute,
    binlog_prune_plan,
)
from datatier.cli.backup_cmd import METRICS_FILE_OPTION
from datatier.cli.backups_view import (
    archive_output,
    chain_labels,
    list_output,
    prune_output,
    show_json,
    show_output,
    verify_output,
)
from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import emit, failure, json_option
from datatier.cli.params import FiniteFloatRange
from datatier.cli.progress import Progress
from datatier.errors import IntegrityFailure, NotReadyYet, UsageError
from datatier.ops.job import run_job

JSON_OPTION = json_option()
POLICY_OPTION = click.option(
    "--policy", "-p", metavar="POLICY", help="The backup's policy (default: search all)."
)


def parse_now(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime:
    """A ``--now ISO-8601`` value as an aware datetime (UTC when it names no zone); the
    current time when the option is absent. UsageError (exit 2) otherwise."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--now {value!r} is not an ISO-8601 time", hint="e.g. 2027-01-31T02:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


FUTURE_TOLERANCE = timedelta(minutes=1)
"""How far ahead of this machine's clock ``prune --execute --now`` may be (clock skew)."""


def refuse_future_deletes(now: datetime) -> None:
    """UsageError unless ``now`` is at most :data:`FUTURE_TOLERANCE` ahead of the clock: a
    later time ages every backup, so deleting by it would remove backups today's retention
    keeps and take backups running now for abandoned ones."""
    ahead = now - datetime.now(UTC)
    if ahead > FUTURE_TOLERANCE:
        raise UsageError(
            f"--now {now.isoformat()} is {_span(ahead)} in the future: retention judged then "
            "would delete backups it keeps today",
            hint="rehearse without --execute; --now with --execute must not be in the future",
        )


def _span(delta: timedelta) -> str:
    return f"{delta.days} days" if delta.days else f"{round(delta.total_seconds() / 60)} minutes"


@click.group("backups")
def backups_group() -> None:
    """List, inspect, verify, prune and archive backups in the stores."""


@backups_group.command("list")
@click.argument("policy", required=False)
@click.option("--all", "include_all", is_flag=True, help="Also show incomplete and unreadable.")
@JSON_OPTION
@pass_app
def list_cmd(app: AppContext, policy: str | None, include_all: bool) -> None:
    """List the complete backups of POLICY (default: of every policy), oldest first.

    A backup without a manifest (interrupted or still running) is incomplete and shown only
    with --all, as are backups whose manifest cannot be read.
    """
    loaded = app.loaded()
    if policy:
        catalogs = [open_policy_catalog(loaded, load_policy(loaded, policy), lookup=True)]
    else:
        catalogs = open_catalogs(loaded, lookup=True)
    found = [
        (entry, catalog.store.url)
        for catalog in catalogs
        for entry in catalog.backups(policy, include_all=True)
    ]
    found.sort(key=lambda item: (item[0].policy, item[0].created_at, item[0].backup_id))
    shown = [(e, url) for e, url in found if include_all or e.state is BackupState.COMPLETE]
    hidden = Counter(e.state.value for e, _ in found if e.state is not BackupState.COMPLETE)
    if include_all:
        hidden.clear()
    emit(list_output(shown, chain_labels([e for e, _ in found]), hidden))
    if hidden:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(hidden.items()))
        click.echo(f"not shown: {counts} (use --all)", err=True)


@backups_group.command("show")
@click.argument("backup_id", metavar="ID")
@POLICY_OPTION
@JSON_OPTION
@pass_app
def show_cmd(app: AppContext, backup_id: str, policy: str | None) -> None:
    """Summarise one backup: source, consistency point, tables, objects, timings."""
    catalog, manifest = locate(open_catalogs(app.loaded(), lookup=True), backup_id, policy)
    prefix = backup_prefix(manifest.policy, manifest.backup_id)
    live = Counter(o.storage_class for o in catalog.store.list_objects(prefix + "data/"))
    try:
        chain, problem = [m.backup_id for m in resolve_chain(catalog, manifest)], None
    except IntegrityFailure as exc:
        chain, problem = None, exc.message
    doc = show_json(manifest, catalog.store.url, dict(sorted(live.items())), chain)
    if problem:
        doc["chain_problem"] = problem
    emit(show_output(manifest, doc, dict(live)))


@backups_group.command("verify")
@click.argument("backup_id", metavar="ID")
@POLICY_OPTION
@click.option(
    "--request-restore",
    is_flag=True,
    help="First ask S3 to restore archived objects (3 days, Standard tier); exit 5 until done.",
)
@click.option(
    "--restore-test",
    is_flag=True,
    help="Also restore into scratch databases (not binlogged) and compare every table's "
    "rows and data checksum with the manifest; the scratch databases are dropped after.",
)
@click.option(
    "--target", metavar="NODE|HOST:PORT", help="Server for --restore-test (default: primary)."
)
@click.option(
    "--allow-replica-target",
    is_flag=True,
    help="Let --restore-test write its scratch databases on a read-only server or a replica.",
)
@click.option(
    "--scratch-port",
    type=click.IntRange(1, 65535),
    help="Physical --restore-test: the local port of the scratch mariadbd (default: a free one).",
)
@click.option(
    "--scratch-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Physical --restore-test: where the scratch datadir goes (default: the temp dir).",
)
@click.option(
    "--accept-etags",
    is_flag=True,
    help="Once every object verifies, record in the manifest the ETags the store now lists "
    "for them (a backup listed damaged because its objects were copied with their bytes).",
)
@JSON_OPTION
@METRICS_FILE_OPTION
@pass_app
def verify_cmd(
    app: AppContext,
    backup_id: str,
    policy: str | None,
    request_restore: bool,
    restore_test: bool,
    target: str | None,
    allow_replica_target: bool,
    scratch_port: int | None,
    scratch_dir: Path | None,
    accept_etags: bool,
    metrics_file: Path | None,
) -> None:
    """Read every object of a backup and check its size and SHA-256 against the manifest.

    An incremental is checked with its whole chain (exit 4 if the chain is broken). Exits 4
    naming the first missing, truncated or corrupt object; 5 when objects are archived and
    not restored yet (--request-restore asks for that). Changes nothing else (but the
    manifest, with --accept-etags). Progress goes to stderr when it is a terminal. The
    outcome is recorded in the store as the policy's `verify` job (`restore_test` with
    --restore-test) for metrics; a failure is sent to notify.command / notify.webhook_url.

    With --restore-test a logical backup is restored into scratch databases and every
    table's rows and data checksum compared with the manifest; a physical backup is
    restored into a scratch datadir, a scratch mariadbd starts on it (127.0.0.1,
    --scratch-port), every table is CHECKed and the databases, tables and views compared
    with the manifest; then it is stopped and removed.

    With --accept-etags, once every object of the backup (and of its chain) has verified
    between two listings that agree, the ETags the store lists for them are written into
    the manifests whose records differ (written last, in one PUT, as backups write them):
    a backup listed damaged because its objects were rewritten with the same bytes (copied
    by a tool that changed their ETags) is then listed complete. An object that fails, or is
    rewritten while it is read, leaves every manifest unchanged (exit 4).
    """
    loaded = app.loaded()
    job_name = "restore_test" if restore_test else "verify"
    head = failure()  # the --json document of a failure: these, "ok": false and the error
    head.update(id=backup_id, policy=policy, ok=False)
    with run_job(
        loaded, job_name, policy=policy, metrics_file=metrics_file, reported=app.reported
    ) as job:
        progress: Progress | None = None
        try:
            catalog, manifest = locate(open_catalogs(loaded), backup_id, policy)
            job.policy, job.store = manifest.policy, catalog.store
            job.details["backup_id"] = manifest.backup_id
            head.update(id=manifest.backup_id, policy=manifest.policy, store=catalog.store.url)
            chain = resolve_chain(catalog, manifest)
            progress = Progress(f"verify {manifest.backup_id}", sum(m.total_bytes for m in chain))
            advance = progress.advance
            if request_restore and (
                waiting := [w for m in chain for w in catalog.request_restore(m)]
            ):
                raise NotReadyYet(
                    f"restore requested for {len(waiting)} archived object(s) of backup "
                    f"{manifest.backup_id}; run verify again once it completes (GLACIER: hours)"
                )
            accepted: dict[str, list[str]] | None = None
            with unless_deleted(catalog.store, manifest.policy, manifest.backup_id):
                if accept_etags:
                    reports, accepted = accept_chain(catalog, chain, lambda _k, n: advance(n))
                else:
                    reports = [catalog.verify(m, lambda _key, size: advance(size)) for m in chain]
            if progress is not None:
                progress.close()
                progress = None
            tested = (
                _restore_test(
                    app, catalog, manifest, target, allow_replica_target, scratch_port, scratch_dir
                )
                if restore_test
                else None
            )
        finally:
            if progress is not None:
                progress.close()
    emit(verify_output(manifest, catalog.store.url, chain, reports, tested, accepted))


def _restore_test(
    app: AppContext,
    catalog: Catalog,
    manifest: Manifest,
    target: str | None,
    allow_replica_target: bool,
    scratch_port: int | None,
    scratch_dir: Path | None,
) -> dict[str, Any]:
    """Run the restore test of the backup's engine; its JSON form (with a ``summary``)."""
    options = RestoreTestOptions(
        target=target,
        allow_replica_target=allow_replica_target,
        scratch_port=scratch_port,
        scratch_dir=str(scratch_dir) if scratch_dir else None,
    )
    return restore_test(app.loaded(), manifest, catalog, options).to_json()


@backups_group.command("prune")
@click.argument("policy")
@click.option("--execute", is_flag=True, help="Delete (default: only print the plan).")
@click.option(
    "--grace-hours",
    type=FiniteFloatRange(min=0),
    default=DEFAULT_GRACE.total_seconds() / 3600,
    show_default=True,
    help="Incomplete backups and uploads written to more recently may still be running.",
)
@click.option(
    "--now",
    "now",
    metavar="ISO-8601",
    callback=parse_now,
    help="Evaluate retention at this time instead of the current time (for rehearsals; "
    "not in the future with --execute).",
)
@JSON_OPTION
@METRICS_FILE_OPTION
@pass_app
def prune_cmd(
    app: AppContext,
    policy: str,
    execute: bool,
    grace_hours: float,
    now: datetime,
    metrics_file: Path | None,
) -> None:
    """Delete the backups POLICY's retention does not keep, and old incomplete leftovers.

    Without --execute only prints the plan: what is kept and why, what would be deleted and
    the bytes freed. Retention counts good backups only (every object listed as the
    manifest says): the newest good backup is always kept. A damaged backup is reported and
    left in place unless it is older than every kept backup. If any manifest of the policy
    is unreadable nothing is deleted (exit 4). One --execute per policy at a time: another
    one running (its lock in POLICY/_prune/) makes it exit 5, deleting nothing. An executed
    prune is recorded in the store as
    the policy's `prune` job; a failure is sent to the notify channels. --now in the
    future is for rehearsals only: with --execute it is refused (exit 2).
    """
    if execute:
        refuse_future_deletes(now)
    loaded = app.loaded()
    with run_job(
        loaded,
        "prune",
        policy=policy,
        metrics_file=metrics_file,
        reported=app.reported,
        record=execute,
    ) as job:
        chosen = load_policy(loaded, policy)
        catalog = open_policy_catalog(loaded, chosen)
        job.store = catalog.store
        grace = timedelta(hours=min(grace_hours, timedelta.max // timedelta(hours=1)))
        with contextlib.ExitStack() as held:
            # executed: planned and carried out under the policy's prune lock
            lock = held.enter_context(PruneLock(catalog.store, chosen.name)) if execute else None
            plan = prune_plan(catalog, chosen, now, grace=grace)
            kept = {k.backup_id for k in plan.keep}
            binlogs = binlog_prune_plan(loaded, catalog, chosen, kept, plan.now, plan.grace)
            result = prune_execute(catalog, plan, lock) if lock is not None else None
            if lock is not None and binlogs is not None:
                lock.check()
                binlog_prune_execute(catalog.store, binlogs)
        job.details.update(deleted=len(plan.delete), kept=len(plan.keep))
    emit(prune_output(chosen.name, plan, result, binlogs, execute))


def _count(progress: Progress) -> Callable[[str, int], None]:
    """An object callback advancing ``progress`` by one object."""
    return lambda _key, _size: progress.advance()


@backups_group.command("archive")
@click.argument("policy", required=False)
@click.option("--execute", is_flag=True, help="Re-class objects (default: only print the plan).")
@click.option(
    "--now",
    "now",
    metavar="ISO-8601",
    callback=parse_now,
    help="Evaluate ages at this time instead of the current time (for rehearsals).",
)
@JSON_OPTION
@pass_app
def archive_cmd(app: AppContext, policy: str | None, execute: bool, now: datetime) -> None:
    """Move data objects older than the policy's storage.archive_after_days to its
    storage.archive_class, for stores that apply no lifecycle rules. Manifests, the newest
    complete backup and objects under archive.min_object_kb (128) stay where they are.

    Covers POLICY, or every policy with archive_after_days > 0. Only prints the plan
    without --execute.
    """
    loaded = app.loaded()
    policies = [load_policy(loaded, policy)] if policy else usable_policies(loaded)
    done = []
    for chosen in policies:
        if not policy and chosen.spec.storage.archive_after_days <= 0:
            continue
        with run_job(
            loaded, "archive", policy=chosen.name, reported=app.reported, record=execute
        ) as job:
            catalog = open_policy_catalog(loaded, chosen)
            job.store = catalog.store
            plan = archive_plan(catalog, chosen, now)
            plan.moves.extend(binlog_archive_moves(catalog, chosen, now))
            moved = 0
            if execute:
                progress = Progress(f"archive {chosen.name}", len(plan.moves), unit="objects")
                try:
                    moved = archive_execute(catalog, plan, _count(progress))
                finally:
                    progress.close()
            job.details["moved"] = moved
        done.append((plan, moved))
    emit(archive_output(done, execute, now))
