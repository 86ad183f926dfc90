"""``datatier restore``: find a backup, bring archived objects back, verify, then apply.

Contract, in order:

1. The backup is found by ID in the stores of the configured policies (a manifest must exist).
2. Every refusal comes before anything costs money (archive restore requests) or changes
   state: unknown names (exit 2); a manifest whose objects do not account for every row of
   the selected tables (exit 4); a read-only or replica target unless
   ``allow_replica_target`` (exit 2; when allowed, the load runs without binlogging); a
   target database that already holds tables unless ``force`` (exit 2). A dry run makes the
   same checks.
3. Objects in GLACIER/DEEP_ARCHIVE are restored next: requests go out for all of them at
   once; then either we wait (polling ``head``) or raise NotReadyYet (exit 5) so the same
   command can be run again later. ``dry_run`` only reports and requests nothing. The report
   gives the storage classes the store lists now, not those recorded at backup time.
   Accounts and grants (``source.include_grants``) are applied only with ``grants``, first,
   and never change an existing account (see :mod:`datatier.mysql.grants`).
4. Every selected object is downloaded and its size and SHA-256 checked *before anything is
   applied* (exit 4 on the first mismatch, nothing applied); each object is checked again as
   it is applied.
5. Objects are applied in restore order, tables in parallel; row counts are compared with
   the manifest afterwards. An interruption here says which databases may be partly loaded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datatier.backup.bringback import ArchiveState, bring_back
from datatier.backup.catalog import locate
from datatier.backup.completeness import missing_parts
from datatier.backup.manifest import KIND_ORDER, Manifest, ObjectRecord
from datatier.backup.service import open_catalogs
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, OperationFailed, UsageError
from datatier.log import get_logger
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.load import SQLLoader
from datatier.mysql.target import (
    busy_databases,
    check_not_replica,
    check_packet_size,
    create_databases,
    database_clause,
)
from datatier.pipeline import decompress, read_verified, verify_object
from datatier.storage.base import ObjectStore, RestoreTier

log = get_logger(__name__)

TABLE_KINDS = ("schema", "data", "triggers", "metadata", "collection")
DEFINITION_KINDS = ("triggers", "routines", "events", "viewstubs", "views")


@dataclass(frozen=True)
class RestoreOptions:
    """What the user asked for (see ``datatier restore --help``)."""

    target: Endpoint | None = None
    renames: dict[str, str] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    jobs: int = 4
    dry_run: bool = False
    binlog: bool = True
    force: bool = False
    allow_replica_target: bool = False
    target_role: str | None = None  # the target's role in [mysql.nodes], if it is a node
    drop: bool = False
    grants: bool = False
    wait: bool = False
    tier: RestoreTier = RestoreTier.STANDARD
    days: int = 3
    poll_seconds: float = 30.0
    timeout_seconds: float = 48 * 3600.0
    datadir: str | None = None  # physical: the datadir to restore into
    owner: str | None = None  # physical: USER[:GROUP] owning the restored files
    until: datetime | None = None  # point in time: replay archived binlogs up to here
    until_gtid: str | None = None  # ... or up to and including this GTID


@dataclass
class RestoreReport:
    """What was (or, on a dry run, would be) done."""

    backup_id: str
    policy: str
    target: str
    databases: dict[str, str]
    objects: int
    bytes: int
    raw_bytes: int
    by_class: dict[str, int]
    archived: int
    restore_requested: int
    tables: int
    rows: int
    dry_run: bool
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def plan(
        cls,
        manifest: Manifest,
        objects: list[ObjectRecord],
        target: str,
        databases: dict[str, str],
        archive: ArchiveState,
        tables: int,
        dry_run: bool,
    ) -> RestoreReport:
        """The report of a restore of ``objects`` before anything is applied; ``archive``
        (from :func:`bring_back`) gives the live storage classes."""
        return cls(
            backup_id=manifest.backup_id,
            policy=manifest.policy,
            target=target,
            databases=databases,
            objects=len(objects),
            bytes=sum(o.size for o in objects),
            raw_bytes=sum(o.raw_size for o in objects),
            by_class=archive.classes,
            archived=archive.archived,
            restore_requested=archive.requested,
            tables=tables,
            rows=sum(o.rows for o in objects),
            dry_run=dry_run,
        )


def find_backup(
    loaded: LoadedConfig, backup_id: str, policy: str | None = None
) -> tuple[Manifest, ObjectStore]:
    """The manifest of ``backup_id`` and the store holding it (UsageError if unknown)."""
    catalog, manifest = locate(open_catalogs(loaded), backup_id, policy)
    return manifest, catalog.store


def restore_objects(manifest: Manifest, options: RestoreOptions) -> list[ObjectRecord]:
    """The objects a restore with ``options`` applies (grants only with ``options.grants``);
    UsageError naming what the backup does not hold."""
    selected = select_objects(manifest, options.tables, options.databases)
    objects = [o for o in selected if o.kind != "grants"]
    if options.grants:
        grants = [o for o in manifest.objects if o.kind == "grants"]
        if not grants:
            raise UsageError(
                f"backup {manifest.backup_id} holds no accounts or grants",
                hint="set source.include_grants = true in the policy for later backups",
            )
        objects = grants + objects
    return objects


def select_objects(
    manifest: Manifest, tables: tuple[str, ...], databases: tuple[str, ...] = ()
) -> list[ObjectRecord]:
    """The manifest's objects, restricted to ``databases`` and to ``tables`` (``db.table``)
    when given; UsageError naming what the backup does not hold."""
    objects = list(manifest.objects)
    if databases:
        missing_dbs = sorted(set(databases) - set(manifest.databases))
        if missing_dbs:
            raise UsageError(f"not in backup {manifest.backup_id}: {', '.join(missing_dbs)}")
        objects = [o for o in objects if o.database in databases]
    if not tables:
        return objects
    known = {f"{t.database}.{t.name}" for t in manifest.tables}
    known |= {f"{o.database}.{o.table}" for o in manifest.objects if o.table}
    missing = sorted(set(tables) - known)
    if missing:
        raise UsageError(f"not in backup {manifest.backup_id}: {', '.join(missing)}")
    wanted = set(tables)
    return [
        o
        for o in objects
        if o.kind in (*TABLE_KINDS, "database")
        and (
            (o.kind == "database" and any(t.split(".", 1)[0] == o.database for t in wanted))
            or f"{o.database}.{o.table}" in wanted
        )
    ]


def check_accounted(manifest: Manifest, objects: list[ObjectRecord]) -> None:
    """IntegrityFailure (exit 4) when the manifest's objects do not account for every row of
    the selected tables (a data part missing from the manifest); checked before anything
    is requested, fetched or applied."""
    selected = {f"{o.database}.{o.table}" for o in objects if o.table}
    problems = missing_parts(manifest, selected)
    if problems:
        raise IntegrityFailure(
            f"backup {manifest.backup_id} cannot be restored whole: {'; '.join(problems[:5])}",
            hint="nothing was applied; `--tables` can restore the other tables",
        )


def fetch_verified(store: ObjectStore, record: ObjectRecord) -> bytes:
    """The object's compressed bytes, held whole (objects are chunk-sized) so nothing is
    applied before its size and SHA-256 are confirmed; IntegrityFailure otherwise."""
    return b"".join(read_verified(store, record.key, size=record.size, sha256=record.sha256))


def decompressed(store: ObjectStore, record: ObjectRecord) -> Iterator[bytes]:
    """Verified, then decompressed in 1 MiB pieces; IntegrityFailure on corrupt zstd data."""
    data = fetch_verified(store, record)
    return decompress([data], name=f"{store.url}/{record.key}")


def verify_objects(
    store: ObjectStore,
    objects: list[ObjectRecord],
    jobs: int,
    on_checked: Callable[[ObjectRecord], None] | None = None,
) -> None:
    """Check every object's size and SHA-256 (streaming, in parallel); raise on the first.
    ``on_checked`` is called with each object once it checked out (for progress)."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(verify_object, store, o.key, size=o.size, sha256=o.sha256) for o in objects
        ]
        for obj, future in zip(objects, futures, strict=True):
            future.result()
            if on_checked is not None:
                on_checked(obj)


def check_target_empty(target: Endpoint, databases: list[str]) -> None:
    """UsageError naming the databases that already hold tables."""
    busy = busy_databases(target, databases)
    if busy:
        listed = ", ".join(f"{db} ({n} tables)" for db, n in sorted(busy.items()))
        raise UsageError(
            f"target {target.label} is not empty: {listed}",
            hint="restore elsewhere, --rename SRC=DST, or --force to replace",
        )


def restore_mysql(
    manifest: Manifest,
    store: ObjectStore,
    options: RestoreOptions,
    on_loaded: Callable[[ObjectRecord], None] | None = None,
    on_wait: Callable[[int, int], None] | None = None,
    on_checked: Callable[[ObjectRecord], None] | None = None,
) -> RestoreReport:
    """Restore a MySQL backup into ``options.target`` (see module docstring). Progress:
    ``on_wait`` while archived objects come back, ``on_checked`` per object verified before
    anything is applied, ``on_loaded`` per object applied."""
    started = time.monotonic()
    if manifest.engine != "mysql":
        raise UsageError(f"backup {manifest.backup_id} is a {manifest.engine} backup")
    server = options.target
    if server is None:
        raise UsageError("a MySQL restore needs a target server")
    unknown = sorted(set(options.renames) - set(manifest.databases))
    if unknown:
        raise UsageError(f"--rename names databases not in the backup: {', '.join(unknown)}")
    objects = restore_objects(manifest, options)
    check_accounted(manifest, objects)
    check_packet_size(server, int(manifest.options.get("max_statement_bytes") or 0))
    sources = sorted({o.database for o in objects if o.database})
    targets = {db: options.renames.get(db, db) for db in sources}
    for source in sources:  # a tampered charset is refused before anything happens
        database_clause(manifest.databases.get(source, {}), f"manifest of {manifest.backup_id}")
    binlog = options.binlog
    if check_not_replica(server, options.target_role, allow=options.allow_replica_target):
        binlog = False  # allowed onto a replica: never into its binlog (no errant GTIDs)
    if not options.force:
        check_target_empty(server, sorted(targets.values()))
    archive = bring_back(store, objects, options, on_wait)
    tables = len({(o.database, o.table) for o in objects if o.kind == "schema"})
    report = RestoreReport.plan(
        manifest, objects, server.label, targets, archive, tables, options.dry_run
    )
    if options.dry_run:
        return report
    verify_objects(store, objects, options.jobs, on_checked)
    try:
        _apply(manifest, store, server, objects, targets, binlog, options, on_loaded)
    except BaseException as exc:
        names = ", ".join(sorted(set(targets.values())))
        exc.add_note(f"the restore was interrupted: {names} on {server.label} may be partly loaded")
        raise

    report.seconds = round(time.monotonic() - started, 3)
    log.info(
        "restore.completed",
        backup_id=manifest.backup_id,
        target=server.label,
        objects=len(objects),
        seconds=report.seconds,
    )
    return report


def _apply(
    manifest: Manifest,
    store: ObjectStore,
    server: Endpoint,
    objects: list[ObjectRecord],
    targets: dict[str, str],
    binlog: bool,
    options: RestoreOptions,
    on_loaded: Callable[[ObjectRecord], None] | None,
) -> None:
    """Create the databases, load the objects in restore order, compare row counts."""
    create_databases(server, targets, manifest.databases, binlog=binlog)
    renamed = {src for src, dst in targets.items() if src != dst}

    def fetch(record: ObjectRecord) -> Iterator[bytes]:
        if record.kind not in DEFINITION_KINDS or record.database not in renamed:
            return decompressed(store, record)
        text = b"".join(decompressed(store, record))
        warn_qualified(record, text)
        return iter([text])

    loader = SQLLoader(
        server, fetch, lambda db: targets[db], jobs=options.jobs, binlog=binlog, on_loaded=on_loaded
    )
    kinds = [k for k in KIND_ORDER if k != "database"]
    loader.load_all(objects, kinds)  # grants first: DEFINER accounts exist before routines
    check_row_counts(server, manifest, objects, targets, options.jobs)


def warn_qualified(record: ObjectRecord, text: bytes) -> None:
    """Log a warning when a trigger/view/routine/event names its own database explicitly:
    after ``--rename`` that reference still points at the original database."""
    assert record.database is not None
    name = record.database.encode()
    quoted = b"`" + name.replace(b"`", b"``") + b"`."
    if quoted in text or re.search(rb"(?<![\w`])" + re.escape(name) + rb"\.", text):
        log.warning(
            "restore.qualified_reference",
            object=record.key,
            database=record.database,
            note="the definition names its database explicitly; after --rename it still "
            "refers to the original database",
        )


def check_row_counts(
    target: Endpoint,
    manifest: Manifest,
    objects: list[ObjectRecord],
    targets: dict[str, str],
    jobs: int = 2,
) -> None:
    """OperationFailed if a restored table's row count differs from the manifest
    (tables counted in parallel, one connection per worker)."""
    restored = {(o.database, o.table) for o in objects if o.kind == "schema"}
    expected = {(t.database, t.name): t.rows for t in manifest.tables}
    wanted = sorted((db, t) for db, t in restored if db and t and (db, t) in expected)

    def count(key: tuple[str, str]) -> None:
        database, table = key
        qdb, qt = targets[database].replace("`", "``"), table.replace("`", "``")
        with connect(target) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{qdb}`.`{qt}`")
            row = cur.fetchone()
        found = int(row[0]) if row else -1
        if found != expected[key]:
            raise OperationFailed(
                f"{targets[database]}.{table}: {found} rows after restore, "
                f"the backup has {expected[key]}"
            )

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, 4))) as pool:
        for future in [pool.submit(count, key) for key in wanted]:
            future.result()
