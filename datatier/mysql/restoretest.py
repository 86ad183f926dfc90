"""``backups verify --restore-test`` for logical MySQL backups: restore and compare.

Contract: the backup is restored (without binlogging, so replicas never see it) into
scratch databases of this run's own, ``dtv_<backup id>_r<run>_<n>`` on the target
(:mod:`datatier.mysql.scratch`: another restore test of the backup still running refuses
this one, exit 5; databases a killed one left are dropped first), through the same
restore every restore goes through; every restored table is read back the way the backup read it
(:mod:`datatier.mysql.table_digest`) and its row count and data SHA-256 must equal the
manifest's. The scratch databases are dropped afterwards, also on failure. Any mismatch raises
IntegrityFailure (exit 4) naming the tables. Backups made before manifest format 2
recorded digests of mariadb-dump's text, which cannot be recomputed: for them only row
counts are compared, and the report says so.
Backups are read back by the row text rules they were written with (the manifest's
``row_text`` option, see :data:`~datatier.mysql.rowtext.ROW_TEXT_VERSION`); rules newer
than this code's are refused (OperationFailed, exit 1) before anything is restored.
"""

from __future__ import annotations

import time

from datatier.backup.catalog import Catalog
from datatier.backup.engine import RestoreOptions, RestoreTestOptions, RestoreTestReport
from datatier.backup.manifest import Manifest
from datatier.backup.restore import restore_backup
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, OperationFailed
from datatier.log import get_logger
from datatier.mysql import scratch
from datatier.mysql.connection import connect, resolve_target
from datatier.mysql.rowtext import ROW_TEXT_VERSION
from datatier.mysql.table_digest import table_digests

log = get_logger(__name__)


def restore_test(
    loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreTestOptions
) -> RestoreTestReport:
    """Restore to scratch, compare per-table rows and digests, drop the scratch databases."""
    started = time.monotonic()
    # the rules the backup's rows were written (and its digests taken) with
    rules = manifest.options.get("row_text", 1)
    if not isinstance(rules, int) or isinstance(rules, bool) or rules < 1:
        raise IntegrityFailure(
            f"manifest of backup {manifest.backup_id}: options.row_text is {rules!r:.40}, "
            "not a row text rules version (1 or more)"
        )
    if rules > ROW_TEXT_VERSION:
        raise OperationFailed(
            f"backup {manifest.backup_id} renders rows by row text rules {rules}, newer than "
            f"this datatier's ({ROW_TEXT_VERSION}): its digests cannot be recomputed here",
            hint="run the restore test with the datatier version that made the backup, or a "
            "newer one",
        )
    target, _ = resolve_target(loaded.config.mysql, options.target)
    run = scratch.new_run()
    renames = scratch.names(manifest.backup_id, run, manifest.databases)
    points = {
        (renames[t.database], t.name): t.split_points
        for t in manifest.tables
        if t.database in renames
    }
    restore = RestoreOptions(
        target=options.target,
        renames=renames,
        jobs=options.jobs,
        binlog=False,
        allow_replica_target=options.allow_replica_target,
        staging_dir=options.scratch_dir,
    )
    with scratch.run_held(target, manifest.backup_id, run):
        scratch.clear_leftovers(target, manifest.backup_id, run)
        try:
            restore_backup(loaded, manifest, catalog, restore)
            back = {v: k for k, v in renames.items()}
            found = {
                (back[db], table): value
                for (db, table), value in table_digests(
                    target, sorted(renames.values()), points, rules=rules
                ).items()
            }
            scratch.require(target, renames.values())
        finally:
            with connect(target) as conn:
                scratch.drop(conn, renames.values())
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
    tables = len(manifest.tables)
    rows = sum(t.rows for t in manifest.tables)
    if not digests:
        log.warning(
            "verify.restore_test_rows_only",
            backup_id=manifest.backup_id,
            note="made before manifest format 2: row counts compared, data digests not",
        )
    log.info("verify.restore_test_ok", backup_id=manifest.backup_id, tables=tables)
    compared = "rows and data checksums" if digests else "rows (no data checksums: format 1)"
    return RestoreTestReport(
        summary=f"{tables} tables, {rows} rows match the manifest ({compared})",
        seconds=round(time.monotonic() - started, 3),
        details={"tables": tables, "rows": rows, "digests_compared": digests},
    )
