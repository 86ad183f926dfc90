"""Query events: their session context (status variables), default database and text.

A query event carries a DDL statement, a statement-format DML statement, or the ``COMMIT``
of a transaction on a non-transactional engine. Its status variables say in which session
the statement ran (sql_mode, character sets, time zone, checks...): :func:`session_settings`
turns them into the ``SET`` statements a replay runs first, as ``mariadb-binlog`` prints
them. Status variables are decoded the way the server decodes them; an unknown code ends
the decoding (the server skips the rest too).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from datatier.errors import IntegrityFailure
from datatier.mysql.binlog.events import CRC_LEN, HEADER_LEN, QUERY_COMPRESSED, header

# Status variable codes (MariaDB 10.11's Query_log_event).
Q_FLAGS2, Q_SQL_MODE, Q_CATALOG, Q_AUTO_INCREMENT, Q_CHARSET, Q_TIME_ZONE = 0, 1, 2, 3, 4, 5
Q_CATALOG_NZ, Q_LC_TIME_NAMES, Q_CHARSET_DATABASE, Q_TABLE_MAP_FOR_UPDATE = 6, 7, 8, 9
Q_MASTER_DATA_WRITTEN, Q_INVOKER, Q_HRNOW, Q_XID, Q_GTID_FLAGS3 = 10, 11, 128, 129, 130
FIXED = {
    Q_FLAGS2: 4,
    Q_SQL_MODE: 8,
    Q_AUTO_INCREMENT: 4,
    Q_CHARSET: 6,
    Q_LC_TIME_NAMES: 2,
    Q_CHARSET_DATABASE: 2,
    Q_TABLE_MAP_FOR_UPDATE: 8,
    Q_MASTER_DATA_WRITTEN: 4,
    Q_HRNOW: 3,
    Q_XID: 8,
}
SUPPRESS_USE = 0x0008  # header flag of a query event
FL_START_ALTER = 0x02
FL_COMMIT_OR_ROLLBACK_ALTER = 0x04 | 0x08

# flags2 bits (option_bits written to the binlog), as MariaDB 10.11 writes them.
AUTO_IS_NULL = 1 << 14
NO_CHECK_CONSTRAINT_CHECKS = 1 << 15
NOT_AUTOCOMMIT = 1 << 19
EXPLICIT_DEFAULTS_FOR_TIMESTAMP = 1 << 24
NO_FOREIGN_KEY_CHECKS = 1 << 26
RELAXED_UNIQUE_CHECKS = 1 << 27
IF_EXISTS = 1 << 28
INSERT_HISTORY = 1 << 30


@dataclass(frozen=True)
class QueryEvent:
    """A decoded query event (``text`` is the statement's bytes, decompressed)."""

    timestamp: int
    thread_id: int
    error_code: int
    database: str
    text: bytes
    flags2: int | None = None
    sql_mode: int | None = None
    auto_increment: tuple[int, int] | None = None
    charset: tuple[int, int, int] | None = None
    time_zone: str | None = None
    lc_time_names: int | None = None
    charset_database: int | None = None
    microseconds: int | None = None
    gtid_flags3: int = 0
    suppress_use: bool = False  # CREATE/DROP DATABASE: run without USE of the database
    unknown_status: list[int] = field(default_factory=list)

    @property
    def words(self) -> list[bytes]:
        """The statement's first two words, upper-cased (``COMMIT``, ``ALTER TABLE``...)."""
        return [w.upper().rstrip(b";") for w in self.text.split(None, 2)[:2]]


def _string(data: bytes, at: int) -> tuple[str, int]:
    length = data[at]
    return data[at + 1 : at + 1 + length].decode("utf-8", "replace"), at + 1 + length


def _uncompress(data: bytes) -> bytes:
    """MariaDB's compressed statement: 1 header byte (low 3 bits: length of the original
    size, big-endian), the size, then a zlib stream."""
    if not data:
        return data
    lenlen = data[0] & 0x07
    try:
        return zlib.decompress(data[1 + lenlen :])
    except zlib.error as exc:
        raise IntegrityFailure(f"corrupt compressed query event ({exc})") from None


EXECUTE_LOAD_EXTRA = 13
"""What an ``EXECUTE_LOAD_QUERY`` event (a statement-format LOAD DATA) adds to a query
event's post-header: file id, the file name's place in the text, duplicate handling."""


def parse_query(event: bytes, checksum: bool, extra: int = 0) -> QueryEvent:
    """Decode a query event (``QUERY`` or ``QUERY_COMPRESSED``; an ``EXECUTE_LOAD_QUERY``
    with ``extra`` = :data:`EXECUTE_LOAD_EXTRA`)."""
    head = header(event)
    end = len(event) - (CRC_LEN if checksum else 0)
    thread_id, _exec, db_len, error, vars_len = struct.unpack_from("<IIBHH", event, HEADER_LEN)
    at = HEADER_LEN + 13 + extra
    status = event[at : at + vars_len]
    values: dict[str, object] = {}
    unknown: list[int] = []
    pos = 0
    while pos < len(status):
        code = status[pos]
        pos += 1
        if code in FIXED:
            raw = status[pos : pos + FIXED[code]]
            pos += FIXED[code]
            if code == Q_FLAGS2:
                values["flags2"] = int.from_bytes(raw, "little")
            elif code == Q_SQL_MODE:
                values["sql_mode"] = int.from_bytes(raw, "little")
            elif code == Q_AUTO_INCREMENT:
                values["auto_increment"] = struct.unpack("<HH", raw)
            elif code == Q_CHARSET:
                values["charset"] = struct.unpack("<HHH", raw)
            elif code == Q_LC_TIME_NAMES:
                values["lc_time_names"] = int.from_bytes(raw, "little")
            elif code == Q_CHARSET_DATABASE:
                values["charset_database"] = int.from_bytes(raw, "little")
            elif code == Q_HRNOW:
                values["microseconds"] = int.from_bytes(raw, "little")
        elif code == Q_TIME_ZONE:
            values["time_zone"], pos = _string(status, pos)
        elif code == Q_CATALOG_NZ:
            _, pos = _string(status, pos)
        elif code == Q_CATALOG:
            pos += status[pos] + 2
        elif code == Q_INVOKER:
            _, pos = _string(status, pos)
            _, pos = _string(status, pos)
        elif code == Q_GTID_FLAGS3:
            flags3 = status[pos]
            values["gtid_flags3"] = flags3
            pos += 1 + (8 if flags3 & FL_COMMIT_OR_ROLLBACK_ALTER else 0)
        else:
            unknown.append(code)
            break
    at += vars_len
    database = event[at : at + db_len].decode("utf-8", "replace")
    text = bytes(event[at + db_len + 1 : end])
    if head.type == QUERY_COMPRESSED:
        text = _uncompress(text)
    return QueryEvent(
        timestamp=head.timestamp,
        thread_id=thread_id,
        error_code=error,
        database=database,
        text=text,
        suppress_use=bool(head.flags & SUPPRESS_USE),
        unknown_status=unknown,
        **values,  # type: ignore[arg-type]
    )


def query_words(event: bytes, checksum: bool) -> list[bytes]:
    """The first two words of a query event's statement, upper-cased (cheap: for
    transaction boundaries; not for compressed query events)."""
    _t, _e, db_len, _err, vars_len = struct.unpack_from("<IIBHH", event, HEADER_LEN)
    start = HEADER_LEN + 13 + vars_len + db_len + 1
    end = len(event) - (CRC_LEN if checksum else 0)
    words = bytes(event[start : min(end, start + 64)]).split(None, 2)[:2]
    return [w.upper().rstrip(b";") for w in words]


def xa_step(text: bytes) -> tuple[str, str]:
    """(``START``/``END``/``PREPARE``/``COMMIT``/``ROLLBACK``, the xid) of an XA statement."""
    parts = text.decode("utf-8", "surrogateescape").split(None, 2)
    verb = parts[1].upper() if len(parts) > 1 else ""
    xid = parts[2].strip().upper() if len(parts) > 2 else ""
    if xid.upper().endswith("ONE PHASE"):
        xid = xid[: -len("ONE PHASE")].strip()
    return verb, xid
