"""Seed a new, empty MariaDB server from a MySQL backup and make it a GTID replica.

Contract, in order (nothing is changed before step 4):

1. The backup (found by :func:`datatier.provision.seeding.plan_seeding`) is a logical MySQL
   backup whose manifest records the snapshot's GTID position.
2. The target must be reachable, not the primary or a configured node, replicate from
   nobody, hold no non-system database, and have a ``server_id`` no node of the topology uses.
3. Every non-system database of the primary must be in the backup (else the replica would
   stop at the first change to a missing table), except ``datatier``: see 5.
4. The backup is restored with :func:`datatier.backup.restore.restore_backup` (checksums
   verified before anything is applied) *without binlogging*, so the replica's own GTID
   history stays empty.
5. ``datatier`` (heartbeat, schema migrations; never in backups) is copied from one
   consistent snapshot of the primary, structure and rows, without binlogging; the
   snapshot's GTID position is noted.
6. ``gtid_slave_pos`` is set to the backup's position; the target follows the primary with
   the configured replication user (``MASTER_USE_GTID=slave_pos``). If ``datatier`` was
   copied, it first replicates UNTIL the copy's position ignoring ``datatier.%`` (those
   changes are in the copy already), then normally: exact even while the heartbeat writes.
7. We wait until it has applied everything the primary had written when the wait began,
   reporting lag; a replication error stops the wait (exit 1), and so does a timeout
   (exit 1, not 5: the target replicates and keeps catching up, and running the command
   again would be refused since it is a replica now).

A failure after step 4 wrote data says so ("left partially seeded; re-initialise it before
retrying"): the target is no longer empty, so a rerun is refused until it is re-initialised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from datatier.backup.catalog import Catalog
from datatier.backup.engine import RestoreOptions
from datatier.backup.manifest import Manifest
from datatier.backup.policy import SYSTEM_DATABASES
from datatier.backup.restore import restore_backup
from datatier.config import LoadedConfig
from datatier.errors import DatatierError, OperationFailed, ServiceUnavailable, UsageError
from datatier.log import get_logger
from datatier.mysql.connection import (
    Connection,
    Endpoint,
    MySQLError,
    connect,
    endpoint,
    primary_endpoint,
)
from datatier.mysql.inventory import base_tables, database_names, server_id
from datatier.mysql.replica_status import read_replica_status
from datatier.mysql.replicate import (
    FORGET_UPSTREAM,
    Upstream,
    follow,
    ignored_tables,
    set_gtid_slave_pos,
    set_ignored_tables,
    start_replication,
    start_replication_until,
    stop_replication,
)
from datatier.mysql.tablecopy import copy_tables
from datatier.provision.catchup import LagCallback, wait_caught_up
from datatier.provision.seeding import SeedOptions
from datatier.storage.base import ObjectStore

log = get_logger(__name__)

COPIED_DATABASE = "datatier"
IGNORED = (SYSTEM_DATABASES - {COPIED_DATABASE}) | {"test"}


REPLICATE_FROM = "a new replica follows the primary"


@dataclass
class SeedPlan:
    """What seeding will do; ``to_json`` for ``--json`` output."""

    backup_id: str
    policy: str
    target: str
    primary: str
    gtid_pos: str
    databases: list[str]
    objects: int
    bytes: int
    copied_tables: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SeedResult:
    """What seeding did: the plan, where the copy of ``datatier.*`` was taken, timings."""

    plan: SeedPlan
    datatier_copied_at: str
    load_seconds: float
    catch_up_seconds: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        done = {k: v for k, v in self.__dict__.items() if k != "plan"}
        return {**self.plan.to_json(), **done}

    def describe(self) -> str:
        return (
            f"{self.plan.target} is a replica of {self.plan.primary}, caught up "
            f"(load {self.load_seconds} s, catch-up {self.catch_up_seconds} s)"
        )


def user_databases(conn: Connection) -> set[str]:
    return database_names(conn) - IGNORED


def server_id_of(conn: Connection) -> int:
    return server_id(conn)


@dataclass(frozen=True)
class LogicalSeeding:
    """A checked seeding from a logical backup (:class:`~datatier.provision.seeding.Seeding`)."""

    loaded: LoadedConfig
    plan: SeedPlan
    manifest: Manifest
    store: ObjectStore
    target: Endpoint
    options: SeedOptions

    def to_json(self) -> dict[str, Any]:
        return self.plan.to_json()

    def describe(self) -> str:
        plan = self.plan
        return (
            f"would seed {plan.target} from backup {plan.backup_id} ({plan.policy}: "
            f"{len(plan.databases)} databases, {plan.objects} objects, {plan.bytes} bytes), "
            f"copy {', '.join(plan.copied_tables) or 'no datatier tables'} from the primary, "
            f"set gtid_slave_pos={plan.gtid_pos} and replicate from {plan.primary}"
        )

    def run(self, on_lag: LagCallback | None = None) -> SeedResult:
        return seed_replica(
            self.loaded, self.plan, self.manifest, self.store, self.target,
            timeout=self.options.timeout, on_lag=on_lag, jobs=self.options.jobs,
        )  # fmt: skip


def plan_logical_seeding(
    loaded: LoadedConfig,
    manifest: Manifest,
    catalog: Catalog,
    target: Endpoint,
    options: SeedOptions,
) -> LogicalSeeding:
    """The seeder of logical MySQL backups (:data:`~datatier.provision.seeding.Planner`)."""
    if options.datadir or options.start_command or options.external_dir:
        raise UsageError("--datadir, --start-command and --external-dir are for physical backups")
    plan = plan_seed(loaded, manifest, target)
    return LogicalSeeding(loaded, plan, manifest, catalog.store, target, options)


def plan_seed(loaded: LoadedConfig, manifest: Manifest, target: Endpoint) -> SeedPlan:
    """Check everything (steps 1-3 of the module docstring); changes nothing."""
    config = loaded.config
    backup_id = manifest.backup_id
    if manifest.engine != "mysql":
        raise UsageError(f"backup {backup_id} is a {manifest.engine} backup, not MySQL")
    gtid = str(manifest.consistency.get("gtid_pos") or "")
    if not gtid:
        raise UsageError(f"backup {backup_id} records no GTID position: it cannot seed a replica")
    primary = primary_endpoint(config.mysql, hint=REPLICATE_FROM)
    for name, node in config.mysql.nodes.items():
        if (node.host, node.port) == (target.host, target.port):
            raise UsageError(f"target {target.label} is the configured node {name!r}")
    with connect(primary) as conn:
        primary_dbs = user_databases(conn)
        used_ids = {server_id_of(conn)}
        copied = base_tables(conn, COPIED_DATABASE)
    for name in config.mysql.replicas():
        try:
            with connect(endpoint(config.mysql, name)) as conn:
                used_ids.add(server_id_of(conn))
        except ServiceUnavailable:
            continue  # a replica that is down uses its server_id nowhere right now
    with connect(target) as conn:
        if read_replica_status(conn) is not None:
            raise UsageError(f"target {target.label} is already a replica", hint=FORGET_UPSTREAM)
        busy = sorted(user_databases(conn))
        if busy:
            raise UsageError(
                f"target {target.label} is not empty: {', '.join(busy)}",
                hint="seed a freshly initialised server",
            )
        target_id = server_id_of(conn)
    if target_id in used_ids:
        raise UsageError(
            f"target {target.label} has server_id {target_id}, already used in the topology",
            hint="start it with a unique --server-id",
        )
    missing = sorted(primary_dbs - {COPIED_DATABASE} - set(manifest.databases))
    if missing:
        raise UsageError(
            f"backup {backup_id} lacks databases the primary has: {', '.join(missing)}; "
            "the replica would stop at their first change",
            hint="seed from a backup of a policy that covers every database",
        )
    return SeedPlan(
        backup_id=backup_id,
        policy=manifest.policy,
        target=target.label,
        primary=primary.label,
        gtid_pos=gtid,
        databases=sorted(manifest.databases),
        objects=len(manifest.objects),
        bytes=manifest.total_bytes,
        copied_tables=[f"{COPIED_DATABASE}.{table}" for table in copied],
    )


def _copy_datatier(primary: Endpoint, target: Endpoint, tables: list[str]) -> str:
    """Structure and rows of ``datatier.*`` from one consistent snapshot of the primary,
    written unbinlogged on the target; returns the snapshot's GTID position ("" if there
    is nothing to copy)."""
    names = [qualified.split(".", 1)[1] for qualified in tables]
    return copy_tables(primary, target, COPIED_DATABASE, names)


def follow_primary(
    target: Endpoint,
    primary: Endpoint,
    loaded: LoadedConfig,
    gtid: str,
    copied_at: str,
    timeout: float = 600.0,
) -> None:
    """Point ``target`` at the primary from ``gtid`` and start replicating.

    When ``datatier.*`` was copied at a later position ``copied_at``, events up to there for
    ``datatier.*`` are already in the copy: replicate with a temporary
    ``replicate_wild_ignore_table = datatier.%`` UNTIL ``copied_at`` (within ``timeout``
    seconds), then stop, restore the filter (MariaDB changes it only while the replica
    threads are stopped) and start for good. On a failure of the UNTIL phase replication
    is left stopped (starting it would replay ``datatier.*`` over the copy) and the filter
    is restored all the same; the original error is raised.
    """
    config = loaded.config
    upstream = Upstream(
        primary.host,
        primary.port,
        config.mysql.replication_user,
        config.mysql.replication_password.reveal(),
    )
    with connect(target) as conn:
        set_gtid_slave_pos(conn, gtid)
        follow(conn, upstream)
        if copied_at:
            original = ignored_tables(conn)
            ignore = ",".join(x for x in (original, f"{COPIED_DATABASE}.%") if x)
            set_ignored_tables(conn, ignore)
            try:
                start_replication_until(conn, copied_at)
                _await_sql_stop(conn, target, timeout)
            except BaseException:
                _restore_filter(conn, target, original)
                raise
            stop_replication(conn)
            set_ignored_tables(conn, original)
        start_replication(conn)


def _restore_filter(conn: Connection, target: Endpoint, original: str) -> None:
    """Best effort after a failure: stop both threads, then put the filter back. Errors
    are logged, not raised, so that the caller's original error is the one reported."""
    try:
        stop_replication(conn)
        set_ignored_tables(conn, original)
    except MySQLError as exc:
        log.warning(
            "replica.filter_not_restored",
            target=target.label,
            error=str(exc.args[-1]),
            filter=original,
        )


def _await_sql_stop(conn: Connection, target: Endpoint, timeout: float = 600.0) -> None:
    """Wait for the SQL thread to stop at its UNTIL position; raise on a replication error
    (either thread) or after ``timeout`` seconds (OperationFailed: a rerun would be refused,
    the target is no longer empty)."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_replica_status(conn)
        if status is None:
            raise OperationFailed(f"{target.label} stopped being a replica")
        if status.last_sql_error or status.last_io_errno not in (0, 2003, 2013):
            raise OperationFailed(f"replication on {target.label} failed: {status.last_error}")
        if status.sql_running == "No":
            return
        if time.monotonic() > deadline:
            raise OperationFailed(
                f"{target.label} did not reach the position of the datatier copy within "
                f"{timeout:.0f} s"
            )
        time.sleep(0.1)


def _partially_seeded(exc: DatatierError, target: Endpoint) -> DatatierError:
    """``exc`` with a hint that the target holds data now (a rerun would be refused)."""
    note = f"{target.label} left partially seeded; re-initialise it before retrying"
    exc.hint = f"{exc.hint}; {note}" if exc.hint else note
    return exc


def _written(target: Endpoint) -> bool:
    """Whether the target holds a non-system database now (True when it cannot be read)."""
    try:
        with connect(target) as conn:
            return bool(user_databases(conn))
    except (DatatierError, MySQLError):
        return True


def seed_replica(
    loaded: LoadedConfig,
    plan: SeedPlan,
    manifest: Manifest,
    store: ObjectStore,
    target: Endpoint,
    *,
    timeout: float = 600.0,
    on_lag: LagCallback | None = None,
    jobs: int = 4,
) -> SeedResult:
    """Steps 4-7 of the module docstring."""
    primary = primary_endpoint(loaded.config.mysql, hint=REPLICATE_FROM)
    started = time.monotonic()
    try:
        # the target is checked above (empty, replicating from nobody); it may already be
        # read-only like the replica it is becoming: loaded without binlogging either way
        options = RestoreOptions(
            target=target.name, binlog=False, jobs=jobs, allow_replica_target=True
        )
        restore_backup(loaded, manifest, Catalog(store, [manifest.policy]), options)
    except DatatierError as exc:
        if _written(target):
            raise _partially_seeded(exc, target) from exc
        raise
    try:
        copied_at = _copy_datatier(primary, target, plan.copied_tables)
        loaded_seconds = round(time.monotonic() - started, 3)
        try:
            follow_primary(target, primary, loaded, plan.gtid_pos, copied_at, timeout)
        except MySQLError as exc:
            raise OperationFailed(
                f"could not start replication on {target.label}: {exc.args[-1]}"
            ) from None
    except MySQLError as exc:
        raise _partially_seeded(
            OperationFailed(f"could not copy datatier.* to {target.label}: {exc.args[-1]}"),
            target,
        ) from None
    except DatatierError as exc:
        raise _partially_seeded(exc, target) from exc
    log.info("replica.seeded", target=target.label, backup_id=plan.backup_id, gtid=plan.gtid_pos)
    waited = wait_caught_up(primary, target, timeout=timeout, on_lag=on_lag)
    return SeedResult(plan, copied_at, loaded_seconds, waited, round(time.monotonic() - started, 3))
