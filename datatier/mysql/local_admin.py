"""Administration of a server on this host as ``root`` over its Unix socket (the sandbox's
servers): is it up, its accounts, and replication set up from nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pymysql

from datatier.mysql.connection import Connection, MySQLError
from datatier.mysql.replica_status import read_replica_status
from datatier.mysql.replicate import (
    Upstream,
    follow,
    set_gtid_slave_pos,
    start_replication,
)


def root_connection(socket_path: Path, timeout: float = 10.0) -> Connection:
    """An autocommit ``root`` connection over ``socket_path``; every read and write is
    bounded by ``timeout`` (a frozen server must not hang a status check)."""
    return pymysql.connect(
        unix_socket=str(socket_path),
        user="root",
        connect_timeout=2,
        read_timeout=timeout,
        write_timeout=timeout,
        autocommit=True,
        ssl_disabled=True,  # a local socket; no per-connection TLS context (see Endpoint)
    )


def answers(socket_path: Path, timeout: float = 2.0) -> bool:
    """Whether the server behind ``socket_path`` runs a query."""
    try:
        with root_connection(socket_path, timeout) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True
    except (MySQLError, OSError):
        return False


@dataclass(frozen=True)
class LocalAccount:
    """``user``@``host`` with ``password`` and ``grants`` (``PRIVILEGES ON *.*``)."""

    user: str
    password: str
    grants: str
    grant_option: bool = False

    def __repr__(self) -> str:
        return f"LocalAccount({self.user})"


def ensure_accounts(
    conn: Connection, accounts: Sequence[LocalAccount], host: str = "127.0.0.1"
) -> None:
    """Create (or reset the password of) each account and grant it its privileges, without
    binlogging: accounts made on every node never replicate and never clash."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        for account in accounts:
            cur.execute(
                "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                (account.user, host, account.password),
            )
            cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (account.user, host, account.password))
            option = " WITH GRANT OPTION" if account.grant_option else ""
            cur.execute(f"GRANT {account.grants} TO %s@%s{option}", (account.user, host))
        cur.execute("SET SESSION sql_log_bin = 1")


def replicate_from_start(conn: Connection, upstream: Upstream) -> None:
    """Make the server a GTID replica of ``upstream`` from the beginning of its binlog; a
    server that already replicates is only (re)started."""
    if read_replica_status(conn) is not None:
        start_replication(conn)  # a no-op when running; resumes after a restart
        return
    set_gtid_slave_pos(conn, "")
    follow(conn, upstream)
    start_replication(conn)
