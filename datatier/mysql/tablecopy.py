"""Copy a few small tables from one consistent snapshot of a server to another server,
unbinlogged, and say at which GTID position the copy was taken (MariaDB)."""

from __future__ import annotations

from datatier.errors import OperationFailed
from datatier.mysql.connection import Endpoint, connect, query_dicts


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def copy_tables(source: Endpoint, target: Endpoint, database: str, tables: list[str]) -> str:
    """Structure and rows of ``database``'s ``tables`` from one consistent snapshot of
    ``source``, written on ``target`` without binlogging (the database is created if
    missing); returns the snapshot's GTID position ("" when ``tables`` is empty).

    OperationFailed when the source reports no GTID position for the snapshot (its binlog
    is off); :data:`~datatier.mysql.connection.MySQLError` when either server refuses.
    """
    if not tables:
        return ""
    db = _quote(database)
    with connect(source) as src, connect(target) as dst, dst.cursor() as out:
        with src.cursor() as cur:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            status = {
                r["Variable_name"]: r["Value"]
                for r in query_dicts(src, "SHOW STATUS LIKE 'binlog_snapshot_%'")
            }
            cur.execute(
                "SELECT BINLOG_GTID_POS(%s, %s)",
                (status["Binlog_snapshot_file"], int(status["Binlog_snapshot_position"])),
            )
            found = cur.fetchone()
            snapshot_gtid = str(found[0]) if found and found[0] is not None else ""
            contents = []
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE {db}.{_quote(table)}")
                ddl = cur.fetchone()[1]  # type: ignore[index]
                cur.execute(f"SELECT * FROM {db}.{_quote(table)}")
                contents.append((table, ddl, list(cur.fetchall())))
            cur.execute("COMMIT")
        if not snapshot_gtid:
            raise OperationFailed(f"{source.label} did not report the snapshot's GTID position")
        out.execute("SET SESSION sql_log_bin = 0")
        out.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
        out.execute(f"USE {db}")
        for table, ddl, rows in contents:
            out.execute(ddl)
            if rows:
                marks = ",".join(["%s"] * len(rows[0]))
                out.executemany(f"INSERT INTO {_quote(table)} VALUES ({marks})", rows)
    return snapshot_gtid
