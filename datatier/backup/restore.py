"""``datatier restore``: find a backup, bring archived objects back, verify, then apply.

Contract, in order:

1. The backup is found by ID in the stores of the configured policies (a manifest must exist).
2. Objects in GLACIER/DEEP_ARCHIVE are restored first: requests go out for all of them at
   once; then either we wait (polling ``head``) or raise NotReadyYet (exit 5) so the same
   command can be run again later. ``dry_run`` only reports and requests nothing.
3. A target database that already holds tables is refused unless ``force``.
4. Every selected object is downloaded and its size and SHA-256 checked *before anything is
   applied* (exit 4 on the first mismatch, nothing applied); each object is checked again as
   it is applied.
5. Objects are applied in restore order, tables in parallel; row counts are compared with
   the manifest afterwards.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datatier.backup.catalog import locate
from datatier.backup.manifest import KIND_ORDER, Manifest, ObjectRecord
from datatier.backup.service import open_catalogs
from datatier.config import LoadedConfig
from datatier.errors import NotReadyYet, OperationFailed, UsageError
from datatier.log import get_logger
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.load import SQLLoader
from datatier.pipeline import decompress, read_verified, verify_object
from datatier.storage.base import ObjectInfo, ObjectStore, RestoreState, RestoreTier

log = get_logger(__name__)

TYPICAL_WAIT = {
    ("GLACIER", "Expedited"): "1-5 minutes",
    ("GLACIER", "Standard"): "3-5 hours",
    ("GLACIER", "Bulk"): "5-12 hours",
    ("DEEP_ARCHIVE", "Standard"): "up to 12 hours",
    ("DEEP_ARCHIVE", "Bulk"): "up to 48 hours",
}
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
    drop: bool = False
    wait: bool = False
    tier: RestoreTier = RestoreTier.STANDARD
    days: int = 3
    poll_seconds: float = 30.0
    timeout_seconds: float = 48 * 3600.0
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
        archive: tuple[int, int],
        tables: int,
        dry_run: bool,
    ) -> RestoreReport:
        """The report of a restore of ``objects`` before anything is applied.

        ``archive`` is (archived objects, restore requests sent) from :func:`bring_back`.
        """
        by_class: dict[str, int] = {}
        for obj in objects:
            by_class[obj.storage_class] = by_class.get(obj.storage_class, 0) + 1
        return cls(
            backup_id=manifest.backup_id,
            policy=manifest.policy,
            target=target,
            databases=databases,
            objects=len(objects),
            bytes=sum(o.size for o in objects),
            raw_bytes=sum(o.raw_size for o in objects),
            by_class=by_class,
            archived=archive[0],
            restore_requested=archive[1],
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


def fetch_verified(store: ObjectStore, record: ObjectRecord) -> bytes:
    """The object's compressed bytes, held whole (objects are chunk-sized) so nothing is
    applied before its size and SHA-256 are confirmed; IntegrityFailure otherwise."""
    return b"".join(read_verified(store, record.key, size=record.size, sha256=record.sha256))


def decompressed(store: ObjectStore, record: ObjectRecord) -> Iterator[bytes]:
    """Verified, then decompressed in 1 MiB pieces; IntegrityFailure on corrupt zstd data."""
    data = fetch_verified(store, record)
    return decompress([data], name=f"{store.url}/{record.key}")


def verify_objects(store: ObjectStore, objects: list[ObjectRecord], jobs: int) -> None:
    """Check every object's size and SHA-256 (streaming, in parallel); raise on the first."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(verify_object, store, o.key, size=o.size, sha256=o.sha256) for o in objects
        ]
        for future in futures:
            future.result()


def bring_back(
    store: ObjectStore,
    objects: list[ObjectRecord],
    options: RestoreOptions,
    on_wait: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Make archived objects readable. Returns (archived, newly requested).

    Raises NotReadyYet when some are still restoring and ``options.wait`` is off.
    """
    if not objects:
        return 0, 0
    # One listing gives every object's class; only archived objects need a HEAD (for their
    # restore state). Objects missing from the listing are left to verification (exit 4).
    prefix = posixpath.commonpath([posixpath.dirname(o.key) for o in objects])
    listed = {i.key: i for i in store.list_objects(f"{prefix}/" if prefix else "")}
    wanted = {o.key for o in objects}
    archived: list[ObjectInfo] = [
        store.head(key) for key, info in listed.items() if key in wanted and info.is_archived
    ]
    if not archived or options.dry_run:
        return len(archived), 0
    requested = 0
    for info in archived:
        if info.restore is RestoreState.NONE:
            store.request_restore(info.key, days=options.days, tier=options.tier)
            requested += 1
    classes = sorted({i.storage_class for i in archived})
    log.info(
        "restore.archive_requested",
        objects=len(archived),
        requested=requested,
        tier=options.tier.value,
        classes=classes,
    )
    deadline = time.monotonic() + options.timeout_seconds
    while True:
        pending = [i.key for i in archived if not store.head(i.key).readable]
        if not pending:
            return len(archived), requested
        if on_wait:
            on_wait(len(archived) - len(pending), len(archived))
        if not options.wait:
            waits = ", ".join(
                f"{c}: typically {TYPICAL_WAIT.get((c, options.tier.value), 'hours')}"
                for c in classes
            )
            raise NotReadyYet(
                f"{len(pending)} of {len(archived)} archived objects are still being restored "
                f"(tier {options.tier.value}; {waits})",
                hint="run the same command again later, or add --wait",
            )
        if time.monotonic() > deadline:
            raise NotReadyYet(f"archive restore not finished after {options.timeout_seconds:.0f} s")
        time.sleep(options.poll_seconds)


def check_packet_size(target: Endpoint, manifest: Manifest) -> None:
    """UsageError when the target's ``max_allowed_packet`` is smaller than the backup's
    largest INSERT statement (a row with large values): the load would fail midway."""
    needed = int(manifest.options.get("max_statement_bytes") or 0)
    if not needed:
        return
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.max_allowed_packet")
        row = cur.fetchone()
    allowed = int(row[0]) if row else 0
    if allowed < needed + 1024:
        mib = -(-(needed + 1024) // (1 << 20))
        raise UsageError(
            f"target {target.label} has max_allowed_packet = {allowed} bytes, but backup "
            f"{manifest.backup_id} holds a statement of {needed} bytes (a row with large values)",
            hint=f"SET GLOBAL max_allowed_packet = {mib}*1024*1024 on the target, then retry",
        )


def check_target_empty(target: Endpoint, databases: list[str]) -> None:
    """UsageError naming the databases that already hold tables."""
    with connect(target) as conn, conn.cursor() as cur:
        marks = ",".join(["%s"] * len(databases))
        cur.execute(
            "SELECT TABLE_SCHEMA, COUNT(*) FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA IN ({marks}) GROUP BY TABLE_SCHEMA",
            tuple(databases),
        )
        busy = {row[0]: row[1] for row in cur.fetchall()}
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
) -> RestoreReport:
    """Restore a MySQL backup into ``options.target`` (see module docstring)."""
    started = time.monotonic()
    if manifest.engine != "mysql":
        raise UsageError(f"backup {manifest.backup_id} is a {manifest.engine} backup")
    server = options.target
    if server is None:
        raise UsageError("a MySQL restore needs a target server")
    unknown = sorted(set(options.renames) - set(manifest.databases))
    if unknown:
        raise UsageError(f"--rename names databases not in the backup: {', '.join(unknown)}")
    objects = select_objects(manifest, options.tables, options.databases)
    check_packet_size(server, manifest)
    sources = sorted({o.database for o in objects if o.database})
    targets = {db: options.renames.get(db, db) for db in sources}
    archived, requested = bring_back(store, objects, options, on_wait)
    tables = len({(o.database, o.table) for o in objects if o.kind == "schema"})
    report = RestoreReport.plan(
        manifest, objects, server.label, targets, (archived, requested), tables, options.dry_run
    )
    if options.dry_run:
        return report
    if not options.force:
        check_target_empty(server, sorted(targets.values()))
    verify_objects(store, objects, options.jobs)
    with connect(server) as conn, conn.cursor() as cur:
        if not options.binlog:
            cur.execute("SET SESSION sql_log_bin = 0")
        for source, target in targets.items():
            charset = manifest.databases.get(source, {})
            clause = ""
            if charset.get("charset"):
                clause = f" CHARACTER SET {charset['charset']} COLLATE {charset['collation']}"
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{target.replace('`', '``')}`{clause}")
    renamed = {src for src, dst in targets.items() if src != dst}

    def fetch(record: ObjectRecord) -> Iterator[bytes]:
        if record.kind not in DEFINITION_KINDS or record.database not in renamed:
            return decompressed(store, record)
        text = b"".join(decompressed(store, record))
        warn_qualified(record, text)
        return iter([text])

    loader = SQLLoader(
        server,
        fetch,
        lambda db: targets[db],
        jobs=options.jobs,
        binlog=options.binlog,
        on_loaded=on_loaded,
    )
    kinds = [k for k in KIND_ORDER if k != "database"]
    loader.load_all(objects, kinds)
    check_row_counts(server, manifest, objects, targets, options.jobs)
    report.seconds = round(time.monotonic() - started, 3)
    log.info(
        "restore.completed",
        backup_id=manifest.backup_id,
        target=server.label,
        objects=len(objects),
        seconds=report.seconds,
    )
    return report


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
