"""GTID positions for read-your-writes: read one, wait for one, compare two.

Both flavours are handled: MariaDB positions are comma-separated ``domain-server-seq``
triples (``0-1-42,1-2-7``); MySQL's are GTID sets (``uuid:1-42:50-60,uuid2:1-3``).
"""

from __future__ import annotations

import pymysql

from datatier.mysql.connection import Connection, query_dicts
from datatier.mysql.flavor import GTID_POSITION_VARIABLES, MARIADB, wait_statement
from datatier.mysql.pool import PooledConnection

UNKNOWN_VARIABLE = 1193


def _raw(conn: Connection | PooledConnection) -> Connection:
    return conn.raw if isinstance(conn, PooledConnection) else conn


def gtid_position(conn: Connection | PooledConnection) -> str:
    """The server's executed GTID position, to pass as ``after=`` once a write committed:
    MariaDB's ``@@gtid_binlog_pos``, else MySQL's ``@@GLOBAL.gtid_executed``. ``conn`` is a
    pymysql connection or a pooled one."""
    raw = _raw(conn)
    for variable in GTID_POSITION_VARIABLES:
        try:
            rows = query_dicts(raw, f"SELECT @@GLOBAL.{variable} AS pos")
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == UNKNOWN_VARIABLE:
                continue
            raise
        return " ".join(str(rows[0]["pos"] or "").split())
    return ""


def wait_for(
    conn: Connection | PooledConnection, position: str, timeout: float, flavour: str = MARIADB
) -> bool:
    """Whether the server behind ``conn`` applied ``position`` within ``timeout`` seconds
    (False on any server error)."""
    try:
        with _raw(conn).cursor() as cur:
            cur.execute(wait_statement(flavour), (position, timeout))
            row = cur.fetchone()
    except pymysql.MySQLError:
        return False
    return row is not None and row[0] is not None and int(row[0]) == 0


def _mariadb(position: str) -> dict[int, int] | None:
    """{domain: seq} of a MariaDB position, None if it is not one."""
    found: dict[int, int] = {}
    for part in position.replace(" ", "").split(","):
        if not part:
            continue
        pieces = part.split("-")
        if len(pieces) != 3 or not all(p.isdigit() for p in pieces):
            return None
        domain, seq = int(pieces[0]), int(pieces[2])
        found[domain] = max(seq, found.get(domain, 0))
    return found


def _mysql(position: str) -> dict[str, list[tuple[int, int]]] | None:
    """{uuid: [(first, last), ...]} of a MySQL GTID set, None if it is not one."""
    found: dict[str, list[tuple[int, int]]] = {}
    for part in position.replace(" ", "").replace("\n", "").split(","):
        if not part:
            continue
        uuid, *ranges = part.split(":")
        if not ranges:
            return None
        for text in ranges:
            first, _, last = text.partition("-")
            if not first.isdigit() or (last and not last.isdigit()):
                return None
            found.setdefault(uuid.lower(), []).append((int(first), int(last or first)))
    return found


def contains(applied: str, target: str) -> bool | None:
    """Whether position ``applied`` includes everything in ``target``; None when the two
    cannot be compared (different or unknown formats)."""
    if not target.strip():
        return True
    mine, theirs = _mariadb(applied), _mariadb(target)
    if mine is not None and theirs is not None:
        return all(mine.get(domain, -1) >= seq for domain, seq in theirs.items())
    have, want = _mysql(applied), _mysql(target)
    if have is None or want is None:
        return None
    for uuid, ranges in want.items():
        covered = have.get(uuid, [])
        for first, last in ranges:
            if not any(a <= first and last <= b for a, b in covered):
                return False
    return True
