"""Replica status of MariaDB and MySQL 8, read by column name into one typed record.

Which columns carry which field in each flavour is in :mod:`datatier.mysql.flavor`
(:data:`~datatier.mysql.flavor.STATUS_COLUMNS`). :func:`parse_replica_status` accepts any
flavour's row; :func:`read_replica_status` asks the server with whichever statement it
supports. Seconds_Behind_Master is kept for comparison only: it reads NULL when the SQL thread
stops and 0 when the IO thread stalls, so health decisions use the heartbeat lag instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pymysql

from datatier.mysql.connection import Connection, query_dicts
from datatier.mysql.flavor import (
    MARIADB,
    MARIADB_APPLIED_POSITION,
    MYSQL,
    STATUS_COLUMNS,
    STATUS_STATEMENTS,
    FlavourName,
    status_flavour,
)


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica's replication state, the same fields for both flavours.

    ``io_running`` is the raw thread state (``Yes``, ``No``, ``Connecting``, ``Preparing``);
    ``gtid_received`` is MariaDB's ``Gtid_IO_Pos`` or MySQL's ``Retrieved_Gtid_Set``;
    ``gtid_executed`` is MySQL's ``Executed_Gtid_Set`` or MariaDB's ``gtid_slave_pos``
    (which :func:`read_replica_status` adds from the server variable).
    """

    flavour: FlavourName
    io_running: str
    sql_running: str
    io_state: str = ""
    sql_state: str = ""
    source_host: str = ""
    source_port: int | None = None
    source_server_id: int | None = None
    seconds_behind: int | None = None
    sql_delay: int = 0
    last_io_errno: int = 0
    last_io_error: str = ""
    last_sql_errno: int = 0
    last_sql_error: str = ""
    source_log_file: str = ""
    read_source_log_pos: int | None = None
    exec_source_log_pos: int | None = None
    using_gtid: str = ""
    gtid_received: str = ""
    gtid_executed: str = ""

    @property
    def io_ok(self) -> bool:
        """The IO (receiver) thread is connected and running."""
        return self.io_running == "Yes"

    @property
    def io_reconnecting(self) -> bool:
        """The IO thread is (re)connecting to its source (``Connecting``, ``Preparing``):
        its source restarting or out of reach."""
        return self.io_running in ("Connecting", "Preparing")

    @property
    def sql_ok(self) -> bool:
        """The SQL (applier) thread is running."""
        return self.sql_running == "Yes"

    @property
    def replicating(self) -> bool:
        """Either thread runs or is (re)connecting: the server still follows its source."""
        return self.io_running not in ("No", "") or self.sql_running not in ("No", "")

    @property
    def threads_ok(self) -> bool:
        return self.io_ok and self.sql_ok

    @property
    def last_error(self) -> str:
        """The most relevant error text ('' when none): SQL errors first, then IO errors."""
        if self.last_sql_errno or self.last_sql_error:
            return f"SQL {self.last_sql_errno}: {self.last_sql_error}".strip()
        if self.last_io_errno or self.last_io_error:
            return f"IO {self.last_io_errno}: {self.last_io_error}".strip()
        return ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (plus ``threads_ok``)."""
        doc = asdict(self)
        doc["threads_ok"] = self.threads_ok
        return doc


def _pick(row: Mapping[str, Any], field: str) -> Any:
    for column in STATUS_COLUMNS[field]:
        if column in row:
            return row[column]
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return " ".join(str(value).split())  # GTID sets come with embedded newlines


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_replica_status(row: Mapping[str, Any]) -> ReplicaStatus:
    """One SHOW REPLICA/SLAVE STATUS row (column name -> value) as a :class:`ReplicaStatus`.

    Raises ValueError when the row has no thread-state columns at all.
    """
    io_running = _pick(row, "io_running")
    sql_running = _pick(row, "sql_running")
    if io_running is None or sql_running is None:
        raise ValueError("not a replica status row: no IO/SQL running columns")
    using_gtid = _pick(row, "using_gtid")
    flavour = status_flavour(row)
    if flavour == MYSQL and using_gtid is not None:
        using_gtid = "Yes" if _int(using_gtid) else "No"
    return ReplicaStatus(
        flavour=flavour,
        io_running=_text(io_running),
        sql_running=_text(sql_running),
        io_state=_text(_pick(row, "io_state")),
        sql_state=_text(_pick(row, "sql_state")),
        source_host=_text(_pick(row, "source_host")),
        source_port=_int(_pick(row, "source_port")),
        source_server_id=_int(_pick(row, "source_server_id")),
        seconds_behind=_int(_pick(row, "seconds_behind")),
        sql_delay=_int(_pick(row, "sql_delay")) or 0,
        last_io_errno=_int(_pick(row, "last_io_errno")) or 0,
        last_io_error=_text(_pick(row, "last_io_error")),
        last_sql_errno=_int(_pick(row, "last_sql_errno")) or 0,
        last_sql_error=_text(_pick(row, "last_sql_error")),
        source_log_file=_text(_pick(row, "source_log_file")),
        read_source_log_pos=_int(_pick(row, "read_source_log_pos")),
        exec_source_log_pos=_int(_pick(row, "exec_source_log_pos")),
        using_gtid=_text(using_gtid),
        gtid_received=_text(_pick(row, "gtid_received")),
        gtid_executed=_text(_pick(row, "gtid_executed")),
    )


SYNTAX_ERROR = 1064


def read_replica_status(conn: Connection) -> ReplicaStatus | None:
    """The server's replica status, or None when it replicates from nobody.

    Tries ``SHOW REPLICA STATUS`` (MySQL 8.0.22+, MariaDB 10.5+) and falls back to
    ``SHOW SLAVE STATUS`` on a syntax error. On MariaDB, ``gtid_executed`` is filled from
    ``@@gtid_slave_pos``. Other server errors propagate as ``pymysql.MySQLError``.
    """
    newest, oldest = STATUS_STATEMENTS
    try:
        rows = query_dicts(conn, newest)
    except pymysql.err.ProgrammingError as exc:
        if not exc.args or exc.args[0] != SYNTAX_ERROR:
            raise
        rows = query_dicts(conn, oldest)
    if not rows:
        return None
    row = dict(rows[0])
    if status_flavour(row) == MARIADB and "Gtid_Slave_Pos" not in row:
        pos = query_dicts(conn, MARIADB_APPLIED_POSITION)
        row["Gtid_Slave_Pos"] = pos[0]["pos"] if pos else ""
    return parse_replica_status(row)


def _mariadb_positions(text: str) -> dict[int, int] | None:
    """``0-1-42,1-2-7`` -> {domain: seq}; None if the text is not a MariaDB GTID list."""
    found: dict[int, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        parts = item.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return None
        found[int(parts[0])] = int(parts[2])
    return found


def gtid_gap(source_position: str, replica_position: str) -> int | None:
    """How many transactions (summed over GTID domains) the replica has yet to apply, for
    MariaDB GTID positions; None when either is not a MariaDB GTID list (MySQL UUID sets)."""
    source = _mariadb_positions(source_position)
    replica = _mariadb_positions(replica_position)
    if source is None or replica is None:
        return None
    return sum(max(0, seq - replica.get(domain, 0)) for domain, seq in source.items())
