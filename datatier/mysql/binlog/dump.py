"""The replication protocol's binlog dump, from a GTID position, event by event.

Why this and not ``mariadb-binlog --read-from-remote-server --raw --stop-never``: the
archiver needs every event as the exact bytes of the server's file (so an archived object
is a binlog file the stock tools read), event boundaries (to cut only between transactions
and index each object's GTIDs and times), and to resume from a GTID position on whichever
server is the primary now. The stock tool in raw mode writes whole files named after the
server's, gives no boundaries and resumes by file name only; a Python client of the
protocol (python-mysql-replication) decodes every row event (and reads the schema for each
table map) and does not hand out the raw bytes. The protocol itself is small: a few
session variables, one ``COM_BINLOG_DUMP`` command, then one packet per event.

:class:`BinlogDump` asks for annotate-rows events too, so the events arrive contiguous: each
one's start is the previous one's end. Heartbeats arrive when the server has nothing to
send (every ``heartbeat`` seconds), so a reader wakes up regularly and notices a dead
connection after ``read_timeout``.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Iterator
from typing import Any

import pymysql
from pymysql.constants import COMMAND

from datatier.errors import OperationFailed, ServiceUnavailable
from datatier.mysql.binlog.positions import Position
from datatier.mysql.connection import Endpoint

BINLOG_DUMP_NON_BLOCK = 1
BINLOG_SEND_ANNOTATE_ROWS_EVENT = 2
MARIA_SLAVE_CAPABILITY_GTID = 4
FATAL_READING_BINLOG = 1236


class StartNotInBinlog(OperationFailed):
    """The server cannot send from the requested position: the binlogs holding it were
    purged (``purged``), or the server never had those transactions (diverged)."""

    def __init__(self, message: str, *, purged: bool) -> None:
        super().__init__(message)
        self.purged = purged


class BinlogDump:
    """A dump connection to ``ep`` starting after ``position`` (a context manager).

    ``server_id`` is the replica ID announced to the server: it must differ from every
    server's and replica's (the server drops an older connection with the same ID).
    ``non_block`` makes the server end the stream at the end of its last binlog.
    """

    def __init__(
        self,
        ep: Endpoint,
        position: Position,
        *,
        server_id: int,
        heartbeat: float = 1.0,
        non_block: bool = False,
    ) -> None:
        self.ep = ep
        self.position = position
        self.server_id = server_id
        self.heartbeat = heartbeat
        self.non_block = non_block
        self._conn: Any = None

    def __enter__(self) -> BinlogDump:
        tls = self.ep.tls_options()  # the same TLS as every other connection to the node
        try:
            self._conn = pymysql.connect(
                host=self.ep.host,
                port=self.ep.port,
                user=self.ep.user,
                password=self.ep.password,
                connect_timeout=self.ep.connect_timeout,
                read_timeout=max(5.0, self.heartbeat * 4 + 2),
                write_timeout=30,
                autocommit=True,
                **tls,
            )
        except (pymysql.MySQLError, ssl.SSLError) as exc:
            raise self.ep.unreachable(exc) from None
        try:
            with self._conn.cursor() as cur:
                cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
                cur.execute(f"SET @mariadb_slave_capability = {MARIA_SLAVE_CAPABILITY_GTID}")
                cur.execute("SET @slave_connect_state = %s", (str(self.position),))
                cur.execute("SET @slave_gtid_strict_mode = 1")
                cur.execute("SET @slave_gtid_ignore_duplicates = 0")
                cur.execute(f"SET @master_heartbeat_period = {int(self.heartbeat * 1e9)}")
            flags = BINLOG_SEND_ANNOTATE_ROWS_EVENT
            if self.non_block:
                flags |= BINLOG_DUMP_NON_BLOCK
            payload = struct.pack("<IHI", 4, flags, self.server_id)
            self._conn._execute_command(COMMAND.COM_BINLOG_DUMP, payload)
        except pymysql.MySQLError as exc:
            self.close()
            raise self._mapped(exc) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a dead socket is closed either way
                self._conn._force_close()
            self._conn = None

    def events(self) -> Iterator[bytes]:
        """Each event's bytes (checksum included) as the server sends them; returns at the
        end of the binlogs in ``non_block`` mode. ServiceUnavailable when the connection is
        lost or times out; StartNotInBinlog when the start position cannot be served."""
        conn = self._conn
        assert conn is not None, "BinlogDump used outside its with-block"
        while True:
            try:
                packet = conn._read_packet()
            except pymysql.MySQLError as exc:
                raise self._mapped(exc) from None
            data = packet.get_all_data()
            if data[:1] == b"\xfe" and len(data) < 9:
                return  # EOF: the end of the binlogs (non-blocking dump)
            yield data[1:]

    def _mapped(self, exc: pymysql.MySQLError) -> Exception:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        reason = self.ep.scrub(str(exc.args[-1] if exc.args else exc))
        if code == FATAL_READING_BINLOG:
            purged = "purged" in reason.lower()
            return StartNotInBinlog(
                f"{self.ep.label} cannot send binlogs from {self.position or 'the start'}: "
                f"{reason}",
                purged=purged,
            )
        if isinstance(exc, pymysql.OperationalError) or code >= 2000:
            return ServiceUnavailable(f"binlog stream from {self.ep.label} lost: {reason}")
        return OperationFailed(f"binlog dump from {self.ep.label} failed: {reason}")
