"""Send replay statements to the target in batches: many transactions per round trip.

``mariadb-binlog | mariadb`` sends one statement per round trip (six or more per
transaction). The applier joins statements into multi-statement packets of up to
``batch_bytes`` (below the target's ``max_allowed_packet``) on one mysqlclient connection:
the server runs them in order, exactly as if sent one by one, and stops at the first
error, which is reported with the GTID of the transaction it belongs to. Each transaction
still commits on its own. A ``BINLOG`` statement ends its packet: MariaDB runs the
statements after it in the same packet but sends no result for them, so their errors
would go unseen. A transaction of row events thus costs one round trip.

Packets are sent by a thread of their own (mysqlclient lets go of the GIL while the server
works), so decoding the next transactions overlaps with the server applying these; at most
``queue_packets`` packets wait. The first error stops the sending; :meth:`add` and
:meth:`close` raise it.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import MySQLdb
from MySQLdb.constants import CLIENT

from datatier.errors import OperationFailed
from datatier.mysql.connection import Endpoint
from datatier.mysql.fastreader import open_connection
from datatier.storage.base import MiB

SEPARATOR = b"\n;\n"  # the newline ends a trailing "-- comment" of a statement


@dataclass
class ApplyStats:
    transactions: int = 0
    statements: int = 0
    bytes: int = 0
    round_trips: int = 0
    last: str = ""


@dataclass
class _Batch:
    parts: list[bytes] = field(default_factory=list)
    owners: list[tuple[str, int]] = field(default_factory=list)  # per statement: whose, ends
    size: int = 0


class Applier:
    """A replay connection to ``target`` (see module docstring). Without ``binlog`` the
    replayed transactions are not written to the target's binlog."""

    def __init__(
        self,
        target: Endpoint,
        *,
        binlog: bool = True,
        batch_bytes: int = 4 * MiB,
        queue_packets: int = 64,
    ) -> None:
        self.target = target
        self.conn = open_connection(target, client_flag=CLIENT.MULTI_STATEMENTS)
        self.stats = ApplyStats()
        self._batch = _Batch()
        self._done = 0
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=queue_packets)
        self._error: OperationFailed | None = None
        self._sender = threading.Thread(target=self._send_all, name="replay-send", daemon=True)
        setup = ["SET @@SESSION.PSEUDO_SLAVE_MODE = 1", "SET SESSION max_statement_time = 0"]
        if not binlog:
            setup.append("SET SESSION sql_log_bin = 0")
        for statement in setup:
            self._run(statement.encode())
        self.conn.query(b"SELECT @@max_allowed_packet")
        result = self.conn.store_result()  # type: ignore[no-untyped-call]
        self.max_packet = int(result.fetch_row()[0][0])
        self.batch_bytes = max(64 * 1024, min(batch_bytes, self.max_packet - 64 * 1024))
        self._sender.start()

    def _run(self, sql: bytes) -> None:
        try:
            self.conn.query(sql)
            self._drain()
        except MySQLdb.MySQLError as exc:
            raise OperationFailed(f"replay on {self.target.label}: {self._reason(exc)}") from None

    def _drain(self) -> int:
        """Consume every result of the last query; returns how many statements ran (an
        error in a later one raises, after ``self._done`` counted those before it)."""
        self._done = 1
        while True:
            self.conn.store_result()  # type: ignore[no-untyped-call]
            if self.conn.next_result() != 0:  # type: ignore[no-untyped-call]
                return self._done
            self._done += 1

    def _reason(self, exc: MySQLdb.MySQLError) -> str:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        return self.target.scrub(f"error {code}: {exc.args[-1] if exc.args else exc}")

    def add(self, label: str, statements: list[bytes], *, transactions: int = 1) -> None:
        """Queue the statements of ``transactions`` transactions (``label`` names them in
        errors); they are sent once the packet is full or a BINLOG statement ends it."""
        if self._error is not None:
            raise self._error
        for i, statement in enumerate(statements):
            if len(statement) + len(SEPARATOR) > self.max_packet - 1024:
                raise OperationFailed(
                    f"replay of {label}: a statement of {len(statement)} bytes exceeds the "
                    f"target's max_allowed_packet ({self.max_packet})"
                )
            if self._batch.size + len(statement) + len(SEPARATOR) > self.batch_bytes:
                self.flush()
            self._batch.parts.append(statement)
            last = i == len(statements) - 1
            self._batch.owners.append((label, transactions if last else 0))
            self._batch.size += len(statement) + len(SEPARATOR)
            if statement.startswith(b"BINLOG "):
                self.flush()  # the server runs, but does not answer, statements after it

    def flush(self) -> None:
        """Hand the queued statements to the sender (raises an earlier failure)."""
        batch, self._batch = self._batch, _Batch()
        if batch.parts:
            while True:  # put, but notice a sender that stopped on an error
                if self._error is not None:
                    raise self._error
                try:
                    self._queue.put(batch, timeout=0.5)
                    return
                except queue.Full:
                    continue

    def _send_all(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is not None:
                continue  # drain: nothing after a failure is sent
            try:
                self._send(batch)
            except OperationFailed as exc:
                self._error = exc

    def _send(self, batch: _Batch) -> None:
        """Run one packet; OperationFailed naming the transaction that failed."""
        sql = SEPARATOR.join(batch.parts)
        self._done = 0
        try:
            self.conn.query(sql)
            done = self._drain()
        except MySQLdb.MySQLError as exc:
            done = self._done
            failed, _ = batch.owners[min(done, len(batch.owners) - 1)]
            self._account(batch.owners[:done])
            try:
                self.conn.query(b"ROLLBACK")
                self._drain()
            except MySQLdb.MySQLError:
                pass  # the connection may be gone; the transaction is rolled back either way
            raise OperationFailed(
                f"replay failed at transaction {failed} on {self.target.label} "
                f"({self.stats.transactions} transactions applied before it): {self._reason(exc)}"
            ) from None
        self.stats.round_trips += 1
        self.stats.bytes += len(sql)
        self._account(batch.owners)

    def _account(self, owners: list[tuple[str, int]]) -> None:
        for label, transactions in owners:
            self.stats.statements += 1
            if transactions:
                self.stats.transactions += transactions
                self.stats.last = label.rsplit("..", 1)[-1]

    def close(self) -> None:
        """Send what is queued, wait for it, and close; raises the first failure."""
        try:
            if self._error is None:
                self.flush()
        finally:
            self._queue.put(None)
            self._sender.join()
            self.conn.close()  # type: ignore[no-untyped-call]
        if self._error is not None:
            raise self._error
