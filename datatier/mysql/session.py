"""Session hygiene for pooled pymysql connections: reset on return, ping after idle.

Contract.

- :func:`reset` returns a connection to a clean session in one network round trip: it sends
  ``COM_RESET_CONNECTION`` (MySQL >= 5.7.3, MariaDB >= 10.2.4: rolls back, drops temporary
  tables, user variables, prepared statements and locks, resets session variables) and,
  pipelined behind it, the statement that restores what datatier's connections promise:
  the handshake's character set and collation, a UTC ``time_zone`` and the connection's own
  autocommit mode (``Connection.autocommit_mode``). A server without the command answers
  it with an error: then the open transaction is rolled back instead and ``False`` is
  returned (the caller may stop asking; session variables are not reset on such servers).
- Any network or protocol error propagates as a ``pymysql`` error: the caller must discard
  the connection.
- pymysql (1.x) has no public call for ``COM_RESET_CONNECTION``; the packets are written and
  read through its internal command methods, which the integration tests exercise on the
  sandbox's MariaDB.
"""

from __future__ import annotations

import struct
from typing import Any

import pymysql

from datatier.mysql.connection import Connection

COM_QUERY = 0x03
COM_RESET_CONNECTION = 0x1F


def restore_statement(conn: Connection) -> str:
    """The statement that puts back what pymysql and :func:`~datatier.mysql.connection.connect`
    set when ``conn`` was opened: ``SET NAMES`` (with the collation, if one was asked for),
    the UTC time zone, ``sql_mode`` if one was given, and the autocommit mode."""
    names = f"NAMES {conn.charset}"
    if conn.collation:
        names += f" COLLATE {conn.collation}"
    parts = [names, "time_zone = '+00:00'", f"autocommit = {1 if conn.autocommit_mode else 0}"]
    if conn.sql_mode is not None:
        parts.append(f"sql_mode = {conn.escape(conn.sql_mode)}")
    return "SET " + ", ".join(parts)


def reset(conn: Connection, supported: bool = True) -> bool:
    """Reset ``conn``'s session and restore datatier's settings (module doc).

    With ``supported=False`` (the server refused the command before) only a ``ROLLBACK`` and
    the restore statement are sent. Returns whether ``COM_RESET_CONNECTION`` was accepted.
    """
    restore = restore_statement(conn)
    if not supported:
        conn.rollback()
        _query(conn, restore)
        return False
    wire: Any = conn  # pymysql's internal command methods (module doc)
    # Both commands go out in one write before either answer is read: one round trip.
    sql = restore.encode()
    if not wire._sock:
        raise pymysql.err.InterfaceError(0, "connection closed")
    pending = wire._result
    if pending is not None and (pending.unbuffered_active or pending.has_next):
        wire._execute_command(COM_RESET_CONNECTION, b"")  # lets pymysql finish the result
        wire._execute_command(COM_QUERY, sql)
    else:
        wire._result = None
        wire._write_bytes(
            struct.pack("<iB", 1, COM_RESET_CONNECTION)  # length 1, sequence 0, command
            + struct.pack("<iB", len(sql) + 1, COM_QUERY)
            + sql
        )
    wire._next_seq_id = 1  # the reply to the first command
    accepted = True
    try:
        wire._read_ok_packet()
    except pymysql.err.MySQLError as exc:
        if not isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InternalError)):
            raise
        if not conn.open or not _unknown_command(exc):
            raise
        accepted = False
    wire._next_seq_id = 1  # the reply to the second command
    wire._read_query_result()
    if not accepted:
        conn.rollback()
    return accepted


def _unknown_command(exc: pymysql.err.MySQLError) -> bool:
    """Whether the server refused the command itself (ER_UNKNOWN_COM_ERROR, 1047)."""
    return bool(exc.args) and exc.args[0] == 1047


def _query(conn: Connection, statement: str) -> None:
    with conn.cursor() as cur:
        cur.execute(statement)
