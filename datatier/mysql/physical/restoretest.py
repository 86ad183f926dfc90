"""``backups verify --restore-test`` for physical backups: restore, start, check, compare.

Contract: the backup's chain is restored (the same path as ``datatier restore --datadir``:
every object verified before anything is prepared) into a scratch datadir under
``scratch_dir``; a :class:`~datatier.mysql.physical.scratch.ScratchServer` starts on it at
``127.0.0.1:port``; then

* every database the manifest lists exists, with exactly the tables and views the backup's
  stream held (a physical copy records no row counts or checksums, so names are what it can
  honestly be compared on);
* ``CHECK TABLE`` passes for every base table of every database.

The server is stopped and the scratch directory removed afterwards, also on failure (a
killed test's server dies with it; its directory is removed by the next test into the same
``scratch_dir``). Any difference raises IntegrityFailure (exit 4) naming it.
"""

from __future__ import annotations

import getpass
import time
from pathlib import Path

import pymysql

from datatier.backup.catalog import Catalog
from datatier.backup.engine import RestoreOptions, RestoreTestOptions, RestoreTestReport
from datatier.backup.manifest import Manifest
from datatier.backup.restore import restore_backup
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, OperationFailed, ServiceUnavailable, UsageError
from datatier.log import get_logger
from datatier.mysql.connection import Connection, Endpoint, connect, query_dicts
from datatier.mysql.physical.restore import source_case
from datatier.mysql.physical.scratch import ScratchServer, free_port
from datatier.mysql.physical.tool import KeyFileMissing, missing_key_file
from datatier.mysql.sqltext import qualified
from datatier.tempdirs import held_directory

log = get_logger(__name__)

VIRTUAL = frozenset({"information_schema", "performance_schema"})
TABLE_TYPES = ("BASE TABLE", "SEQUENCE", "SYSTEM VERSIONED")


def compare_names(conn: Connection, manifest: Manifest) -> list[str]:
    """Differences between the manifest's databases, tables and views and the server's."""
    rows = query_dicts(
        conn,
        "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, TABLE_TYPE AS type "
        "FROM information_schema.TABLES",
    )
    found: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        slot = found.setdefault(str(row["db"]), {"tables": set(), "views": set()})
        slot["views" if row["type"] == "VIEW" else "tables"].add(str(row["name"]))
    listed = query_dicts(conn, "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA")
    schemas = {str(r["name"]) for r in listed}
    problems = []
    for database, held in sorted(manifest.databases.items()):
        if database in VIRTUAL or "tables" not in held:
            continue
        if database not in schemas:
            problems.append(f"database {database} is missing")
            continue
        slot = found.get(database, {"tables": set(), "views": set()})
        for kind in ("tables", "views"):
            wanted = set(held.get(kind, []))
            if slot[kind] != wanted:
                missing = sorted(wanted - slot[kind])
                extra = sorted(slot[kind] - wanted)
                problems.append(f"{database}: {kind} missing {missing}, unexpected {extra}")
    return problems


def check_tables(conn: Connection) -> tuple[int, list[str]]:
    """``CHECK TABLE`` of every base table; (tables checked, problems)."""
    marks = ",".join(["%s"] * len(TABLE_TYPES))
    tables = [  # schemas left out here: information_schema compares them case-insensitively
        r
        for r in query_dicts(
            conn,
            "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name FROM information_schema.TABLES "
            f"WHERE TABLE_TYPE IN ({marks}) ORDER BY 1, 2",
            TABLE_TYPES,
        )
        if str(r["db"]) not in ("information_schema", "performance_schema")
    ]
    problems = []
    with conn.cursor() as cur:
        for row in tables:
            name = qualified(str(row["db"]), str(row["name"]))
            cur.execute(f"CHECK TABLE {name}")
            results = cur.fetchall()
            status = [str(r[3]) for r in results if str(r[2]).lower() == "status"]
            errors = [str(r[3]) for r in results if str(r[2]).lower() == "error"]
            if errors or (status and status[-1] not in ("OK", "Table is already up to date")):
                problems.append(f"{row['db']}.{row['name']}: {'; '.join(errors or status)}")
    return len(tables), problems


def _without_key(manifest: Manifest, missing: Path) -> UsageError:
    """The refusal (exit 2) of a restore test whose copy names a key file, ``missing``,
    that is not readable here: a scratch server without its keys cannot read the encrypted
    tables, and would call a good backup corrupt."""
    return UsageError(
        f"cannot test {manifest.backup_id} on this host: its server read its encryption keys "
        f"through {missing} (file_key_management in backup-my.cnf), which is not readable "
        "here, so the copy's encrypted tables could not be read; the copy was removed, the "
        "backup is unchanged",
        hint="run the restore test where that file is (the database host), or put a copy of "
        "it at that path (a symlink will do)",
    )


def physical_restore_test(
    loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreTestOptions
) -> RestoreTestReport:
    """Restore into scratch, start a scratch server, compare and check; see module doc.
    ``options.target`` has no meaning here (refused): the scratch server is the target."""
    if options.target or options.allow_replica_target:
        raise UsageError("a physical restore test serves its own scratch copy: no --target")
    started = time.monotonic()
    mysql = loaded.config.mysql
    scratch = Path(options.scratch_dir) if options.scratch_dir else None
    with held_directory("datatier-verify-", scratch) as root:  # a dead test's: swept
        tmp = str(root)
        datadir = root / "datadir"
        restore = RestoreOptions(
            datadir=str(datadir),
            jobs=options.jobs,
            owner=getpass.getuser(),
            external_dir=str(root / "external"),  # never the source's own paths
            staging_dir=tmp,
        )
        try:
            restore_backup(loaded, manifest, catalog, restore)
        except KeyFileMissing as exc:  # a prepare that needed the keys
            raise _without_key(manifest, exc.path) from None
        missing = missing_key_file(datadir)  # the prepare did not need it; the server does
        if missing is not None:
            raise _without_key(manifest, missing)
        port = options.scratch_port or free_port()
        with ScratchServer(datadir, port, lower_case_table_names=source_case(manifest)) as server:
            ep = Endpoint(
                "scratch", server.host, server.port, mysql.user, mysql.password.reveal(), 30.0
            )
            try:
                conn = connect(ep)
            except ServiceUnavailable as exc:
                raise OperationFailed(
                    f"cannot log in to the restored copy of {manifest.backup_id}: {exc.message}",
                    hint=f"the backup's accounts must let {mysql.user} in from 127.0.0.1",
                ) from None
            with conn:
                problems = compare_names(conn, manifest)
                try:
                    checked, failed = check_tables(conn)
                except pymysql.MySQLError as exc:
                    raise OperationFailed(f"CHECK TABLE on the restored copy: {exc}") from None
    problems += failed
    if problems:
        raise IntegrityFailure(
            f"restore test of {manifest.backup_id}: "
            + "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        )
    held = [v for db, v in manifest.databases.items() if db not in VIRTUAL]
    databases, views = len(held), sum(len(v.get("views", [])) for v in held)
    tables = sum(len(v.get("tables", [])) for v in held)
    log.info("verify.restore_test_ok", backup_id=manifest.backup_id, checked=checked)
    return RestoreTestReport(
        summary=f"{checked} tables pass CHECK TABLE; {databases} databases, {tables} tables "
        f"and {views} views match the manifest",
        seconds=round(time.monotonic() - started, 3),
        details={
            "databases": databases,
            "tables": tables,
            "views": views,
            "checked": checked,
            "gtid_pos": str(manifest.consistency.get("gtid_pos") or ""),
        },
    )
