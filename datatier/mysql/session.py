"""Session hygiene for pooled pymysql connections: learn at open, reset on return, ping.

Contract of :class:`SessionKeeper` (what a :class:`~datatier.mysql.pool.NodePool` does to
each connection's session):

- :meth:`~SessionKeeper.opened` (once per new connection, one query) learns what a session
  reset would change away from what the connection was opened with
  (:func:`~datatier.mysql.connection.connect`: utf8mb4 with the server's collation for it, a
  UTC ``time_zone``, autocommit): a reset restores the server's global values and, on
  MariaDB, the handshake's character set. Only what differs goes into the restore
  statement; on the usual server (UTC clock or time zone, autocommit on) there is none.
  MySQL servers always get ``SET NAMES`` back.
- :meth:`~SessionKeeper.reset` sends ``COM_RESET_CONNECTION`` (MySQL >= 5.7.3, MariaDB >=
  10.2.4: rolls back, drops temporary tables, user variables, prepared statements and
  locks, resets session variables) with the restore statement, if any, pipelined behind it
  in the same socket write: one round trip. The pool's autocommit mode is restored
  whatever the user set. A server without the command answers it with an error: then the
  transaction is rolled back instead, the restore statement is sent, and the keeper stops
  asking that connection (session variables are not reset on such servers).
- Any network or protocol error propagates as a ``pymysql`` error: the caller must discard
  the connection.
- pymysql (1.x) has no public call for ``COM_RESET_CONNECTION``; the packets are written and
  read through its internal command methods, which the integration tests exercise on the
  sandbox's MariaDB.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.charset import charset_by_name

from datatier.mysql.connection import Connection
from datatier.mysql.flavor import detect

COM_QUERY = 0x03
COM_RESET_CONNECTION = 0x1F
UNKNOWN_COMMAND = 1047
UTC_NAMES = frozenset(
    {"+00:00", "+0:00", "UTC", "GMT", "ETC/UTC", "Z", "COORDINATED UNIVERSAL TIME"}
)
AUTOCOMMIT_FLAG = 2  # SERVER_STATUS_AUTOCOMMIT


@dataclass
class SessionState:
    """What :meth:`SessionKeeper.reset` must send for one connection."""

    restore: bytes | None  # the statement after the reset, None when the reset is enough
    reset_supported: bool = True


class SessionKeeper:
    """Resets the sessions of one pool's connections (module doc); ``autocommit`` is the
    pool's mode, restored on every return."""

    def __init__(self, autocommit: bool = True) -> None:
        self.autocommit = autocommit

    def opened(self, conn: Connection) -> SessionState:
        """Learn what a reset of ``conn`` would change (one query)."""
        with conn.cursor() as cur:
            cur.execute(
                "SELECT @@GLOBAL.time_zone, @@system_time_zone, @@GLOBAL.autocommit, "
                "@@collation_connection"
            )
            row = cur.fetchone()
        assert row is not None
        global_tz, system_tz, global_autocommit, collation = row
        parts = []
        handshake = conn.collation or charset_by_name(conn.charset).collation  # type: ignore[attr-defined]
        flavor = detect(str(getattr(conn, "server_version", "")))
        if not flavor.reset_keeps_collation or collation != handshake:
            names = f"NAMES {conn.charset}"
            parts.append(f"{names} COLLATE {conn.collation}" if conn.collation else names)
        zone = str(system_tz if str(global_tz).upper() == "SYSTEM" else global_tz).upper()
        if zone not in UTC_NAMES:
            parts.append("time_zone = '+00:00'")
        if bool(int(global_autocommit)) != self.autocommit:
            parts.append(f"autocommit = {int(self.autocommit)}")
        if conn.sql_mode is not None:
            parts.append(f"sql_mode = {conn.escape(conn.sql_mode)}")
        return SessionState(("SET " + ", ".join(parts)).encode() if parts else None)

    def reset(self, conn: Connection, state: SessionState) -> None:
        """Reset ``conn``'s session and restore datatier's settings (module doc)."""
        conn.autocommit_mode = self.autocommit
        wire: Any = conn  # pymysql's internal command methods (module doc)
        if not state.reset_supported:
            conn.rollback()
        else:
            self._send(wire, state.restore)
            wire._next_seq_id = 1  # the reply to the reset
            try:
                wire._read_ok_packet()
            except pymysql.err.OperationalError as exc:
                if not conn.open or not exc.args or exc.args[0] != UNKNOWN_COMMAND:
                    raise
                state.reset_supported = False
            if state.restore is not None:
                wire._next_seq_id = 1  # the reply to the restore statement
                wire._read_query_result()
            if state.reset_supported:
                return
            conn.rollback()
        if state.restore is not None:
            with conn.cursor() as cur:
                cur.execute(state.restore.decode())

    @staticmethod
    def _send(wire: Any, restore: bytes | None) -> None:
        """The reset (and the restore statement) in one socket write."""
        if not wire._sock:
            raise pymysql.err.InterfaceError(0, "connection closed")
        pending = wire._result
        if pending is not None and (pending.unbuffered_active or pending.has_next):
            wire._execute_command(COM_RESET_CONNECTION, b"")  # pymysql finishes the result
            if restore is not None:
                wire._execute_command(COM_QUERY, restore)
            return
        wire._result = None
        packet = struct.pack("<iB", 1, COM_RESET_CONNECTION)  # length 1, sequence 0, command
        if restore is not None:
            packet += struct.pack("<iB", len(restore) + 1, COM_QUERY) + restore
        wire._write_bytes(packet)

    @staticmethod
    def ping(conn: Connection) -> None:
        conn.ping()
