"""The MariaDB binary log event format: headers, and the few bodies datatier reads or edits.

Every event starts with a 19-byte header (timestamp, type, server id, size, end position,
flags); with ``binlog_checksum=CRC32`` it ends with a CRC32 of everything before it. A
binlog *file* is the 4-byte magic followed by events, the first one a Format_description
event. Only what archiving and replay need is decoded here: GTID, GTID list, rotate,
format description, table map (read, and its database renamed), rows-event flags and query
events (see :mod:`datatier.mysql.binlog.query`). Functions take one whole event as bytes;
malformed input raises :class:`~datatier.errors.IntegrityFailure`. Pure; no I/O.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from datatier.errors import IntegrityFailure
from datatier.mysql.binlog.positions import Gtid, Position

MAGIC = b"\xfebin"
HEADER = struct.Struct("<IBIIIH")
SIZE = struct.Struct("<I")
HEADER_LEN = 19
CRC_LEN = 4

# Event types (MariaDB's numbering; shared ones are MySQL's too).
QUERY = 2
STOP = 3
ROTATE = 4
INTVAR = 5
APPEND_BLOCK = 9
DELETE_FILE = 11
RAND = 13
USER_VAR = 14
FORMAT_DESCRIPTION = 15
XID = 16
BEGIN_LOAD_QUERY = 17
EXECUTE_LOAD_QUERY = 18
TABLE_MAP = 19
WRITE_ROWS_V1, UPDATE_ROWS_V1, DELETE_ROWS_V1 = 23, 24, 25
INCIDENT = 26
HEARTBEAT = 27
WRITE_ROWS, UPDATE_ROWS, DELETE_ROWS = 30, 31, 32
XA_PREPARE = 38
ANNOTATE_ROWS = 160
BINLOG_CHECKPOINT = 161
GTID = 162
GTID_LIST = 163
START_ENCRYPTION = 164
QUERY_COMPRESSED = 165
ROWS_EVENTS = frozenset({23, 24, 25, 30, 31, 32, 166, 167, 168, 169, 170, 171})
QUERY_EVENTS = frozenset({QUERY, QUERY_COMPRESSED})
# Events that belong to no transaction and carry nothing a replay applies.
INFORMATIONAL = frozenset(
    {STOP, ROTATE, FORMAT_DESCRIPTION, HEARTBEAT, ANNOTATE_ROWS, BINLOG_CHECKPOINT, GTID_LIST}
)

ARTIFICIAL = 0x20  # header flag: made up by the sender, not in the file
STMT_END = 0x0001  # rows-event flag: the last rows event of a statement
CHECKSUM_CRC32 = 1

# GTID event flags2
FL_STANDALONE = 0x01
FL_GROUP_COMMIT_ID = 0x02
FL_PREPARED_XA = 0x40
FL_COMPLETED_XA = 0x80


class Header(NamedTuple):
    """The common header of one event (a tuple: decoding one is on the replay's hot path)."""

    timestamp: int
    type: int
    server_id: int
    size: int
    log_pos: int  # end position of the event in its file (0 for some artificial events)
    flags: int

    @property
    def start(self) -> int:
        """Where the event starts in its file."""
        return self.log_pos - self.size

    @property
    def artificial(self) -> bool:
        return bool(self.flags & ARTIFICIAL)


def header(event: bytes | memoryview) -> Header:
    """The header of ``event``; IntegrityFailure when it is shorter than one."""
    if len(event) < HEADER_LEN:
        raise IntegrityFailure(f"binlog event of {len(event)} bytes is shorter than its header")
    return Header._make(HEADER.unpack_from(event, 0))


def check_crc(event: bytes, where: str) -> None:
    """IntegrityFailure unless the event's trailing CRC32 matches its bytes."""
    stored = int.from_bytes(event[-CRC_LEN:], "little")
    if zlib.crc32(event[:-CRC_LEN]) != stored:
        raise IntegrityFailure(f"{where}: binlog event CRC32 mismatch (corrupt event)")


def with_crc(body: bytes) -> bytes:
    """``body`` (an event without its checksum) followed by its CRC32."""
    return body + zlib.crc32(body).to_bytes(CRC_LEN, "little")


def with_body(event: bytes, body: bytes, checksum: bool) -> bytes:
    """``event``'s header over a new ``body``, with the size (and CRC) made right."""
    size = HEADER_LEN + len(body) + (CRC_LEN if checksum else 0)
    raw = event[:9] + SIZE.pack(size) + event[13:HEADER_LEN] + body
    return with_crc(raw) if checksum else raw


@dataclass(frozen=True)
class FormatDescription:
    """The first event of a binlog file: how the events after it are encoded."""

    event: bytes
    server_version: str
    checksum: bool

    @property
    def version(self) -> tuple[int, int, int]:
        numbers = self.server_version.split("-", 1)[0].split(".")
        parts = [int(n) if n.isdigit() else 0 for n in [*numbers, "0", "0", "0"][:3]]
        return parts[0], parts[1], parts[2]


def format_description(event: bytes) -> FormatDescription:
    """Decode a Format_description event (binlog format 4)."""
    body = event[HEADER_LEN:]
    if len(body) < 57 or struct.unpack_from("<H", body, 0)[0] != 4:
        raise IntegrityFailure("unsupported binlog format (Format_description is not v4)")
    version = body[2:52].split(b"\0", 1)[0].decode("ascii", "replace")
    # The checksum algorithm byte sits just before the event's own 4-byte checksum field.
    checksum = event[-CRC_LEN - 1] == CHECKSUM_CRC32
    return FormatDescription(bytes(event), version, checksum)


def gtid_event(event: bytes) -> tuple[Gtid, int]:
    """(GTID, flags2) of a MariaDB GTID event."""
    head = header(event)
    seq, domain = struct.unpack_from("<QI", event, HEADER_LEN)
    return Gtid(domain, head.server_id, seq), event[HEADER_LEN + 12]


def gtid_list(event: bytes) -> Position:
    """The GTID state a GTID_LIST event records (the state before its position)."""
    count = struct.unpack_from("<I", event, HEADER_LEN)[0] & 0x0FFFFFFF
    found: dict[int, Gtid] = {}
    for i in range(count):
        domain, server, seq = struct.unpack_from("<IIQ", event, HEADER_LEN + 4 + 16 * i)
        found[domain] = Gtid(domain, server, seq)
    return Position.of(found)


def rotate(event: bytes, checksum: bool) -> tuple[str, int]:
    """(next file name, position) of a rotate event."""
    end = len(event) - (CRC_LEN if checksum else 0)
    position = struct.unpack_from("<Q", event, HEADER_LEN)[0]
    return event[HEADER_LEN + 8 : end].decode("utf-8", "replace"), position


@dataclass(frozen=True)
class TableMap:
    """What a table map event maps: ``table_id`` -> ``database``.``table``."""

    table_id: int
    database: str
    table: str


def table_map(event: bytes) -> TableMap:
    body = HEADER_LEN
    table_id = int.from_bytes(event[body : body + 6], "little")
    at = body + 8
    db_len = event[at]
    database = event[at + 1 : at + 1 + db_len]
    at += db_len + 2
    table_len = event[at]
    table = event[at + 1 : at + 1 + table_len]
    return TableMap(table_id, database.decode("utf-8", "replace"), table.decode("utf-8", "replace"))


def rename_table_map(event: bytes, database: str, checksum: bool) -> bytes:
    """``event`` (a table map) with its database replaced by ``database``."""
    name = database.encode("utf-8")
    if len(name) > 255:
        raise IntegrityFailure(f"database name {database!r} is too long for a table map")
    body = HEADER_LEN
    at = body + 8
    db_len = event[at]
    rest = event[at + 1 + db_len + 1 : len(event) - (CRC_LEN if checksum else 0)]
    new_body = event[body:at] + bytes([len(name)]) + name + b"\0" + rest
    return with_body(event, new_body, checksum)


def rows_table_id(event: bytes) -> int:
    return int.from_bytes(event[HEADER_LEN : HEADER_LEN + 6], "little")


def rows_flags(event: bytes) -> int:
    return int(struct.unpack_from("<H", event, HEADER_LEN + 6)[0])


def with_stmt_end(event: bytes, checksum: bool) -> bytes:
    """``event`` (a rows event) flagged as the last of its statement."""
    raw = bytearray(event[: len(event) - (CRC_LEN if checksum else 0)])
    struct.pack_into("<H", raw, HEADER_LEN + 6, rows_flags(event) | STMT_END)
    return with_crc(bytes(raw)) if checksum else bytes(raw)


def intvar(event: bytes) -> tuple[int, int]:
    """(kind, value) of an INTVAR event: kind 1 is LAST_INSERT_ID, 2 is INSERT_ID."""
    kind, value = struct.unpack_from("<BQ", event, HEADER_LEN)
    return kind, value


def rand_seeds(event: bytes) -> tuple[int, int]:
    one, two = struct.unpack_from("<QQ", event, HEADER_LEN)
    return int(one), int(two)


def split_events(data: bytes | memoryview, where: str) -> list[memoryview]:
    """The events of ``data`` (a binlog file without its magic), as views; IntegrityFailure
    when the last one is cut short."""
    view = memoryview(data)
    events: list[memoryview] = []
    at, end = 0, len(view)
    size_of = SIZE.unpack_from
    while at < end:
        if end - at < HEADER_LEN:
            raise IntegrityFailure(f"{where}: truncated binlog event at offset {at}")
        (size,) = size_of(view, at + 9)
        if size < HEADER_LEN or at + size > end:
            raise IntegrityFailure(f"{where}: truncated or corrupt binlog event at offset {at}")
        events.append(view[at : at + size])
        at += size
    return events


def xa_prepare_xid(event: bytes) -> str:
    """The xid of an ``XA_PREPARE`` event as ``XA COMMIT`` writes it (``X'..',X'..',N``)."""
    body = event[HEADER_LEN:]
    format_id, gtrid, bqual = struct.unpack_from("<iII", body, 1)
    data = body[13 : 13 + gtrid + bqual]
    return f"X'{data[:gtrid].hex()}',X'{data[gtrid:].hex()}',{format_id}".upper()
