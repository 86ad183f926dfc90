"""The ledger of applied MySQL schema migrations, ``datatier.schema_migrations``, its lock,
and running a migration file with the stock client.

A row per applied file: version (the file name), the SHA-256 of its bytes, when and by
whom. One apply at a time holds ``GET_LOCK('datatier.schema_migrations')``. What a
migration *is* and in which order they apply is :mod:`datatier.provision.schema_mysql`'s.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from datatier.mysql.connection import Connection, Endpoint, MySQLError, client_options_file
from datatier.mysql.stock_client import client_binary

LEDGER = "`datatier`.`schema_migrations`"
DDL = (
    "CREATE DATABASE IF NOT EXISTS `datatier`",
    f"CREATE TABLE IF NOT EXISTS {LEDGER} (\n"
    "  `version` VARCHAR(255) NOT NULL PRIMARY KEY,\n"
    "  `checksum` CHAR(64) NOT NULL COMMENT 'SHA-256 of the file',\n"
    "  `applied_at` DATETIME(6) NOT NULL,\n"
    "  `applied_by` VARCHAR(255) NOT NULL\n"
    ") ENGINE=InnoDB",
)
INSERT = (
    f"INSERT INTO {LEDGER} (version, checksum, applied_at, applied_by) "
    "VALUES (%s, %s, UTC_TIMESTAMP(6), CURRENT_USER())"
)
LOCK_NAME = "datatier.schema_migrations"
DENIED = frozenset({1044, 1045, 1142, 1143, 1227, 1370})
"""Server errors that mean the account lacks a privilege."""


def access_denied(exc: MySQLError) -> bool:
    """Whether the server refused for lack of privileges."""
    return bool(exc.args) and exc.args[0] in DENIED


def applied_versions(conn: Connection) -> dict[str, str]:
    """version -> checksum of every recorded migration (empty without the ledger)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = 'datatier' AND TABLE_NAME = 'schema_migrations'"
        )
        row = cur.fetchone()
        if not row or not row[0]:
            return {}
        cur.execute(f"SELECT version, checksum FROM {LEDGER} ORDER BY version")
        return {str(v): str(c) for v, c in cur.fetchall()}


def check_recordable(conn: Connection, version: str, checksum: str) -> None:
    """Create the ledger if missing, and prove the account may record ``version``: the
    INSERT runs in a transaction that is rolled back (never binlogged)."""
    with conn.cursor() as cur:
        for statement in DDL:
            cur.execute(statement)
        cur.execute("START TRANSACTION")
        try:
            cur.execute(INSERT, (version, checksum))
        finally:
            cur.execute("ROLLBACK")


def record(conn: Connection, version: str, checksum: str) -> None:
    """Record an applied migration."""
    with conn.cursor() as cur:
        cur.execute(INSERT, (version, checksum))


def record_statement(version: str, checksum: str) -> str:
    """The SQL a person runs to record a migration that ran but was not recorded."""
    return (
        f"INSERT INTO {LEDGER} (version, checksum, applied_at, applied_by) VALUES "
        f"('{version.replace(chr(39), chr(39) * 2)}', '{checksum}', "
        "UTC_TIMESTAMP(6), CURRENT_USER())"
    )


def acquire_lock(conn: Connection, wait: float) -> bool:
    """Take the ledger's lock for this connection, waiting up to ``wait`` seconds; False
    when another connection holds it."""
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s)", (LOCK_NAME, wait))
        row = cur.fetchone()
    return row is not None and row[0] == 1


def release_lock(conn: Connection) -> None:
    """Release the ledger's lock (best effort: closing the connection releases it too)."""
    with contextlib.suppress(MySQLError), conn.cursor() as cur:
        cur.execute("SELECT RELEASE_LOCK(%s)", (LOCK_NAME,))


def run_sql_file(target: Endpoint, path: Path) -> tuple[int, str]:
    """Run ``path`` with the stock ``mariadb`` client (so ``DELIMITER`` works); its exit
    code and the last line it wrote on stderr (password scrubbed)."""
    with client_options_file(target) as cnf, path.open("rb") as sql:
        result = subprocess.run(
            [client_binary(), f"--defaults-file={cnf}", "--batch", "--binary-mode"],
            pass_fds=cnf.pass_fds,
            stdin=sql,
            capture_output=True,
            check=False,
        )
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    return result.returncode, target.scrub(lines[-1] if lines else "")
