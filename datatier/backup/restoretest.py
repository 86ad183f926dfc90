"""``backups verify --restore-test``: restore into scratch databases and compare.

Contract: the backup is restored (without binlogging, so replicas never see it) into
databases named ``dtv_<backup id>_<n>`` on the target; every restored table is read back the
way the backup read it (:mod:`datatier.mysql.digest`) and its row count and data SHA-256
must equal the manifest's. The scratch databases are dropped afterwards, also on failure.
Any mismatch raises IntegrityFailure (exit 4) naming the tables. Backups made before
manifest format 2 recorded digests of mariadb-dump's text, which cannot be recomputed:
for them only row counts are compared, and the report says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from datatier.backup.manifest import Manifest
from datatier.backup.restore import RestoreOptions, restore_mysql
from datatier.errors import IntegrityFailure, UsageError
from datatier.log import get_logger
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.digest import table_digests
from datatier.storage.base import ObjectStore

log = get_logger(__name__)


@dataclass(frozen=True)
class RestoreTestReport:
    tables: int
    rows: int
    seconds: float
    digests_compared: bool = True


def scratch_names(manifest: Manifest) -> dict[str, str]:
    """Source database -> scratch database on the target."""
    stem = "dtv_" + manifest.backup_id.replace("-", "_").lower()
    return {db: f"{stem}_{i}" for i, db in enumerate(sorted(manifest.databases))}


def restore_test(
    manifest: Manifest,
    store: ObjectStore,
    target: Endpoint,
    jobs: int = 4,
    *,
    target_role: str | None = None,
    allow_replica_target: bool = False,
) -> RestoreTestReport:
    """Restore to scratch, compare per-table rows and digests, drop the scratch databases."""
    if manifest.engine != "mysql":
        raise UsageError(f"--restore-test supports MySQL backups, not {manifest.engine}")
    started = time.monotonic()
    renames = scratch_names(manifest)
    points = {
        (renames[t.database], t.name): t.split_points
        for t in manifest.tables
        if t.database in renames
    }
    try:
        options = RestoreOptions(
            target=target,
            renames=renames,
            jobs=jobs,
            binlog=False,
            target_role=target_role,
            allow_replica_target=allow_replica_target,
        )
        restore_mysql(manifest, store, options)
        back = {v: k for k, v in renames.items()}
        found = {
            (back[db], table): value
            for (db, table), value in table_digests(
                target, sorted(renames.values()), points
            ).items()
        }
    finally:
        with connect(target) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            for scratch in renames.values():
                cur.execute(f"DROP DATABASE IF EXISTS `{scratch}`")
    digests = manifest.format_version >= 2
    bad = []
    for t in manifest.tables:
        if t.kind != "table":
            continue
        rows, digest = found.get((t.database, t.name), (0, ""))
        if rows != t.rows or (digests and digest != t.data_sha256):
            bad.append(f"{t.database}.{t.name} (rows {rows} vs {t.rows})")
    if bad:
        raise IntegrityFailure(
            f"restore test of {manifest.backup_id}: data differs from the manifest for "
            + ", ".join(bad)
        )
    report = RestoreTestReport(
        tables=len(manifest.tables),
        rows=sum(t.rows for t in manifest.tables),
        seconds=round(time.monotonic() - started, 3),
        digests_compared=digests,
    )
    if not digests:
        log.warning(
            "verify.restore_test_rows_only",
            backup_id=manifest.backup_id,
            note="made before manifest format 2: row counts compared, data digests not",
        )
    log.info("verify.restore_test_ok", backup_id=manifest.backup_id, tables=report.tables)
    return report
