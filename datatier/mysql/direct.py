"""Running a framed object's statements (data objects, format-1 bundles) on a connection of
the C client (libmariadb).

A stock client process would parse every byte of the object again to find where its
statements end, which costs as much CPU as a tenth of the server's own work on the same
rows; the frames (:mod:`datatier.mysql.frames`) already say where. Each statement is sent
as it is (a bundle's without its delimiter), in autocommit, in the session the object's
PRELUDE sets, as the stock client would send it. Nothing outlives a killed restore: the
statements come from this process, and the connection dies with it. Nothing outlives a
stopped one either: every connection is registered with the restore's
:class:`~datatier.mysql.interrupt.Interrupter`, which kills it on the server.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable

import MySQLdb

from datatier.backup.manifest import ObjectRecord
from datatier.errors import IntegrityFailure, OperationFailed
from datatier.mysql.connection import Endpoint
from datatier.mysql.fastreader import open_connection
from datatier.mysql.frames import FrameError
from datatier.mysql.interrupt import Interrupter
from datatier.mysql.labels import object_label
from datatier.mysql.sqltext import ident


class StatementRunner:
    """One connection to ``target``; ``binlog=False`` keeps what it runs out of the target's
    binlog. One per loading thread (a connection runs one statement at a time). Each
    connection it opens is registered with ``interrupter`` (Stopped, from there, once the
    restore was stopped)."""

    def __init__(
        self, target: Endpoint, *, binlog: bool, interrupter: Interrupter | None = None
    ) -> None:
        self.target = target
        self.binlog = binlog
        self.interrupter = interrupter
        self._conn: MySQLdb.Connection | None = None
        self._database: str | None = None
        self._conn_id = 0

    def _connection(self) -> MySQLdb.Connection:
        """The open connection; a new one when there is none or the server dropped it
        while it was idle (wait_timeout, a KILL): no statement of the next object has run
        on it, and the new one gets the same session. Never the driver's reconnect, which
        would silently lose ``sql_log_bin = 0``."""
        if self._conn is not None:
            try:
                self._conn.ping()
                return self._conn
            except MySQLdb.MySQLError:
                self.close()
        # One statement per query: a frame can never carry a second one.
        conn = open_connection(self.target, use_unicode=False, conv={}, multi_statements=False)
        conn_id = conn.thread_id()  # type: ignore[no-untyped-call]
        if self.interrupter is not None:
            try:
                self.interrupter.watch(conn_id)
            except BaseException:
                conn.close()  # type: ignore[no-untyped-call]
                raise
        self._conn_id = conn_id
        if not self.binlog:
            try:
                conn.query(b"SET SESSION sql_log_bin = 0")
                conn.store_result()  # type: ignore[no-untyped-call]
            except MySQLdb.MySQLError as exc:
                self._conn = conn
                self.close()
                raise OperationFailed(
                    f"turning the binlog off for a restore on {self.target.label} failed: "
                    f"{self._detail(exc)}",
                    hint="--no-binlog needs SUPER or BINLOG ADMIN on the target",
                ) from None
        self._conn, self._database = conn, None
        return conn

    def run(
        self,
        obj: ObjectRecord,
        database: str,
        statements: Iterable[bytes],
        stop: threading.Event,
        locate: Callable[[], str | None] | None = None,
    ) -> bool:
        """Run ``statements`` (object ``obj``'s) in ``database``, in order, until ``stop``
        is set (False then). OperationFailed names what the object holds (its key in
        ``details``), the statement (``locate()``
        when it says, e.g. a bundle's table; else its number) and the server's error;
        IntegrityFailure when the object's frames are wrong."""
        number = 0
        label = object_label(obj, database)
        self._connection()
        try:
            if database != self._database:
                self._execute(b"USE " + ident(database).encode("utf-8", "surrogateescape"))
                self._database = database
            for statement in statements:
                if stop.is_set():
                    return False
                number += 1
                self._execute(statement)
        except FrameError as exc:
            raise IntegrityFailure(
                f"{obj.key}: {exc}",
                hint="its checksum matched: written wrong by the backup, or the backup was "
                "altered along with its manifest",
            ) from None
        except MySQLdb.MySQLError as exc:
            located = locate() if locate is not None and number else None
            if located is not None:
                error = OperationFailed(f"loading {label} ({located}) failed: {self._detail(exc)}")
            else:
                where = f"its statement {number}" if number else "selecting the database"
                error = OperationFailed(f"loading {label} failed at {where}: {self._detail(exc)}")
            error.details["objects"] = [obj.key]
            raise error from None
        return True

    def _detail(self, exc: MySQLdb.MySQLError) -> str:
        args = exc.args
        code = args[0] if args else 0
        message = args[1] if len(args) > 1 else str(exc)
        return self.target.scrub(f"ERROR {code}: {message}")

    def _execute(self, statement: bytes) -> None:
        assert self._conn is not None
        self._conn.query(statement)
        result = self._conn.store_result()  # type: ignore[no-untyped-call]
        del result

    def close(self) -> None:
        if self._conn is not None:
            if self.interrupter is not None:
                self.interrupter.forget(self._conn_id)
            with contextlib.suppress(MySQLdb.MySQLError):  # already gone
                self._conn.close()  # type: ignore[no-untyped-call]
            self._conn = None
