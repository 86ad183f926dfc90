"""What a physical backup needs to know from the server itself (all of its SQL lives here).

The server's identity (:class:`ServerIdentity`) goes into every manifest; an incremental is
only taken on a parent from the same server (same ``server_uid``, ``server_id`` and
version) whose LSN the server has passed. MariaDB has no ``server_uuid``; its
``server_uid`` (a hash of the host's MAC address and the server's port) is the closest:
it changes when the server moves to another host or port.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pymysql

from datatier.errors import OperationFailed
from datatier.log import get_logger
from datatier.mysql.connection import Connection, query_dicts

log = get_logger(__name__)

LSN_LINE = re.compile(r"^Log sequence number\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class ServerIdentity:
    """The facts a manifest records about the server a physical backup was taken from."""

    version: str
    server_uid: str
    server_id: int
    hostname: str
    port: int
    datadir: str
    log_bin: bool
    innodb_log_file_size: int = 0  # not identity: what a restored server's redo log needs
    innodb_page_size: int = 16384  # not identity: how its tablespace pages are read
    lower_case_table_names: int = 0  # how its files are named: a server on them needs it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def differs_from(self, recorded: dict[str, Any]) -> list[str]:
        """``what: recorded -> now`` for each identity fact that changed since ``recorded``
        (a manifest's ``source``); empty when it is the same server."""
        changed = []
        for key in ("server_uid", "server_id", "version"):
            before, now = recorded.get(key), getattr(self, key)
            if str(before) != str(now):
                changed.append(f"{key} {before} -> {now}")
        return changed


def read_identity(conn: Connection) -> ServerIdentity:
    """The server's identity facts."""
    row = query_dicts(
        conn,
        "SELECT @@version AS version, @@server_uid AS server_uid, @@server_id AS server_id, "
        "@@hostname AS hostname, @@port AS port, @@datadir AS datadir, @@log_bin AS log_bin, "
        "@@innodb_log_file_size AS log_size, @@innodb_page_size AS page_size, "
        "@@lower_case_table_names AS lctn",
    )[0]
    return ServerIdentity(
        version=str(row["version"]),
        server_uid=str(row["server_uid"]),
        server_id=int(row["server_id"]),
        hostname=str(row["hostname"]),
        port=int(row["port"]),
        datadir=str(row["datadir"]),
        log_bin=bool(row["log_bin"]),
        innodb_log_file_size=int(row["log_size"]),
        innodb_page_size=int(row["page_size"]),
        lower_case_table_names=int(row["lctn"]),
    )


def last_checkpoint(conn: Connection) -> int | None:
    """InnoDB's latest checkpoint LSN (``Innodb_lsn_last_checkpoint``), None where the
    server does not report it."""
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_lsn_last_checkpoint'")
        row = cur.fetchone()
    try:
        return int(row[1]) if row else None
    except (TypeError, ValueError):
        return None


def checkpoint_now(conn: Connection) -> int | None:
    """Ask InnoDB for a checkpoint (``innodb_log_checkpoint_now``, as mariabackup's
    ``--innodb-log-checkpoint-now`` does; skipped without the privilege) and return its
    latest checkpoint LSN then (:func:`last_checkpoint`). Read before a copy starts, every
    change at or below it is on disk before the copy reads any page."""
    with conn.cursor() as cur:
        try:
            cur.execute("SET GLOBAL innodb_log_checkpoint_now = ON")
        except pymysql.MySQLError as exc:
            log.info("backup.checkpoint_not_forced", error=str(exc))
    return last_checkpoint(conn)


def current_lsn(conn: Connection) -> int:
    """InnoDB's current log sequence number (from ``SHOW ENGINE INNODB STATUS``)."""
    with conn.cursor() as cur:
        cur.execute("SHOW ENGINE INNODB STATUS")
        row = cur.fetchone()
    match = LSN_LINE.search(str(row[2])) if row else None
    if match is None:
        raise OperationFailed("the server did not report InnoDB's log sequence number")
    return int(match.group(1))


@dataclass(frozen=True)
class BinlogPoint:
    """What the server's binlog says now about point ``file``:``position`` (an earlier
    backup's): ``files`` its binlog files (``SHOW BINARY LOGS``, oldest first) and ``gtid``
    what ``BINLOG_GTID_POS(file, position)`` returns, the binlog's GTID state there. That
    is None (SQL NULL) when the file is not listed, or the position is past the file's
    end or is no event boundary in it (MariaDB scans the file from its start for an event
    starting exactly there): a binlog rewritten since that point rarely has one there."""

    file: str
    position: int
    files: tuple[str, ...]
    gtid: str | None
    tail: str | None = None  # binlog_tail(): the bytes there, None when unreadable here


TAIL_BYTES = 512
FLAGS_END = 4 + 19  # the magic and the format event's header: its flags change on close


def binlog_tail(path: Path, position: int) -> str | None:
    """A fingerprint of binlog file ``path`` at ``position``: SHA-256 of the timestamp of
    its format event (when the file was created) and of the up to :data:`TAIL_BYTES`
    bytes before ``position`` (the events ending there, their timestamps included). Bytes
    once written stay (only the format event's in-use flag changes, left out), so a
    server that still holds the history has the same; a file created anew under the same
    name (a rollback, then the same statements again: the same GTIDs, the same sizes)
    has another. None when the file cannot be read here or is shorter than ``position``."""
    try:
        with path.open("rb") as f:
            head = f.read(FLAGS_END)
            start = max(FLAGS_END, position - TAIL_BYTES)
            f.seek(start)
            tail = f.read(position - start)
    except OSError:
        return None
    if len(head) < FLAGS_END or len(tail) != position - start:
        return None
    return hashlib.sha256(head[4:8] + tail).hexdigest()


def binlog_path(conn: Connection, file: str) -> Path | None:
    """Where binlog ``file`` of the server is (``@@log_bin_basename``'s directory), None
    when the server does not say."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@log_bin_basename")
        row = cur.fetchone()
    if row is None or not row[0] or "/" in file:
        return None
    return Path(str(row[0])).parent / file


def binlog_point(conn: Connection, file: str, position: int) -> BinlogPoint | None:
    """The server's answer about ``file``:``position`` (see :class:`BinlogPoint`); None
    when it cannot answer (binlog off, or no privilege for ``SHOW BINARY LOGS``): logged.
    ``BINLOG_GTID_POS`` reads the file from its start up to ``position``."""
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            files = tuple(str(r[0]) for r in cur.fetchall())
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, position))
            row = cur.fetchone()
    except pymysql.MySQLError as exc:
        log.warning("backup.binlog_unreadable", file=file, position=position, error=str(exc))
        return None
    try:  # where the file is: without it, only its bytes go unchecked
        path = binlog_path(conn, file)
    except pymysql.MySQLError:
        path = None
    gtid = None if row is None or row[0] is None else str(row[0])
    tail = None if path is None or file not in files else binlog_tail(path, position)
    return BinlogPoint(file, position, files, gtid, tail)


@dataclass(frozen=True)
class StoredTable:
    """A table, sequence or view with files in the datadir, and the server's estimates."""

    database: str
    name: str
    kind: str  # table | sequence | view
    rows: int | None
    bytes: int  # data + indexes + free space in its tablespace (what a copy reads)


NO_FILES = ("information_schema", "performance_schema")
"""Databases whose tables are no files in the datadir (a copy holds at most a ``db.opt``)."""


def stored_tables(conn: Connection) -> tuple[list[str], list[StoredTable]]:
    """Every database of the server and every table and view it keeps in the datadir
    (``information_schema``'s estimates: rows and bytes are not counted)."""
    # Schema names are left out here, not in SQL: information_schema compares them
    # case- and accent-insensitively (a user's `Performance_Schema` would go too).
    databases = [
        str(r["name"])
        for r in query_dicts(
            conn, "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA ORDER BY 1"
        )
        if str(r["name"]) != "information_schema"
    ]
    rows = [
        r
        for r in query_dicts(
            conn,
            "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, TABLE_TYPE AS type, "
            "TABLE_ROWS AS r, "
            "COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) + COALESCE(DATA_FREE, 0) AS b "
            "FROM information_schema.TABLES "
            "WHERE TABLE_TYPE IN ('BASE TABLE', 'SEQUENCE', 'VIEW', 'SYSTEM VERSIONED') "
            "ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        if str(r["db"]) not in NO_FILES
    ]
    kinds = {"VIEW": "view", "SEQUENCE": "sequence"}
    tables = [
        StoredTable(
            database=str(r["db"]),
            name=str(r["name"]),
            kind=kinds.get(str(r["type"]), "table"),
            rows=None if r["type"] == "VIEW" or r["r"] is None else int(r["r"]),
            bytes=int(r["b"] or 0),
        )
        for r in rows
    ]
    return databases, tables


def decode_filenames(conn: Connection, names: list[str]) -> dict[str, str]:
    """File-name encoded identifiers (``weird@002ddb``) -> the names the server shows
    (``weird-db``), decoded by the server itself (the ``_filename`` character set)."""
    decoded: dict[str, str] = {}
    plain = re.compile(r"^[A-Za-z0-9_$]*$")
    todo = [n for n in dict.fromkeys(names) if not plain.match(n)]
    decoded.update({n: n for n in names if plain.match(n)})
    with conn.cursor() as cur:
        for name in todo:
            try:
                cur.execute("SELECT CONVERT(_filename %s USING utf8mb4)", (name,))
                row = cur.fetchone()
            except pymysql.MySQLError:
                row = None
            decoded[name] = str(row[0]) if row and row[0] is not None else name
    return decoded


def shutdown(conn: Connection) -> None:
    """Ask the server to shut down cleanly (``SHUTDOWN``; needs the SHUTDOWN privilege)."""
    with conn.cursor() as cur:
        try:
            cur.execute("SHUTDOWN")
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in (2013, 2006):  # the server went away: done
                return
            raise
