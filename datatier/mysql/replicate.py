"""Replication control on a MariaDB replica: where it starts, whom it follows, start and
stop (also UNTIL a position), the table filter, and waiting for a GTID position.

MariaDB syntax (``CHANGE MASTER ... MASTER_USE_GTID=slave_pos``, ``gtid_slave_pos``,
``MASTER_GTID_WAIT``): datatier provisions MariaDB replicas only (see
:mod:`datatier.mysql.flavor`). Every function runs on the connection it is given and raises
:data:`~datatier.mysql.connection.MySQLError` when the server refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

from datatier.mysql.connection import Connection, query_dicts


@dataclass(frozen=True)
class Upstream:
    """The server a replica follows and the replication account it uses (password kept out
    of repr)."""

    host: str
    port: int
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Upstream({self.user}@{self.host}:{self.port})"


FORGET_UPSTREAM = "RESET SLAVE ALL"
"""What a person runs to make a server stop being a replica (a hint in refusals)."""


def _run(conn: Connection, sql: str, args: object = None) -> None:
    with conn.cursor() as cur:
        cur.execute(sql, args)


def set_gtid_slave_pos(conn: Connection, gtid: str) -> None:
    """Where the replica starts: the GTID position its data already holds ('' for none)."""
    _run(conn, "SET GLOBAL gtid_slave_pos = %s", (gtid,))


def follow(conn: Connection, upstream: Upstream) -> None:
    """Point the replica at ``upstream``, from ``gtid_slave_pos``, retrying every second."""
    _run(
        conn,
        "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, "
        "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
        (upstream.host, upstream.port, upstream.user, upstream.password),
    )


def start_replication(conn: Connection) -> None:
    """Start both replica threads (a no-op when they run)."""
    _run(conn, "START SLAVE")


def stop_replication(conn: Connection) -> None:
    _run(conn, "STOP SLAVE")


def start_replication_until(conn: Connection, gtid: str) -> None:
    """Start replicating; the SQL thread stops by itself once it applied ``gtid``."""
    _run(conn, "START SLAVE UNTIL master_gtid_pos = %s", (gtid,))


def ignored_tables(conn: Connection) -> str:
    """``replicate_wild_ignore_table``: comma-separated ``db.table`` patterns ('' for none)."""
    rows = query_dicts(conn, "SELECT @@GLOBAL.replicate_wild_ignore_table AS patterns")
    return str(rows[0]["patterns"]) if rows and rows[0]["patterns"] else ""


def set_ignored_tables(conn: Connection, patterns: str) -> None:
    """Set ``replicate_wild_ignore_table`` (MariaDB changes it only while the replica
    threads are stopped)."""
    _run(conn, "SET GLOBAL replicate_wild_ignore_table = %s", (patterns,))


def binlog_gtid_pos(conn: Connection) -> str:
    """The GTID position of everything the server has written to its binlog."""
    return str(query_dicts(conn, "SELECT @@gtid_binlog_pos AS pos")[0]["pos"])


def wait_for_gtid(conn: Connection, gtid: str, timeout: float) -> bool:
    """Whether the replica applied ``gtid`` within ``timeout`` seconds."""
    with conn.cursor() as cur:
        cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (gtid, timeout))
        row = cur.fetchone()
    return row is not None and row[0] == 0
