"""Heartbeat: the primary writes its UTC time every interval; replicas measure lag from it.

Contract. :class:`HeartbeatWriter` keeps one row per source ``server_id`` in
``datatier.heartbeat`` (DDL: :data:`DDL`, the same as ``schemas/mysql/001_heartbeat.sql``;
created if missing) and updates ``ts`` to the primary's ``UTC_TIMESTAMP(6)`` every interval
(>= :data:`MIN_INTERVAL`). It refuses to write to a ``read_only`` server, or one that
replicates (either thread running or reconnecting): a heartbeat written on a replica would
fork its GTID history. :func:`read_lag` on a replica returns its own
``UTC_TIMESTAMP(6)`` minus the replicated ``ts``: unlike Seconds_Behind_Master this keeps
growing while the SQL thread is stopped, the IO thread is cut off or the writer is down.

Limits. The lag read includes the clock skew between the primary's and the replica's hosts
(NTP keeps it to milliseconds; a bad clock can make lag negative or inflate it). Readers
measure both servers' clocks against their own host (:func:`read_clock`) and take the skew
off (:func:`without_skew`): the monitor (:mod:`datatier.replication.skew`, which shows it
as ``clock_skew_seconds`` beside ``lag_raw_seconds``) and :func:`~datatier.mysql.lag.measure_lag`
(a backup's source choice, the cache warmer). Resolution is one writer interval: a
just-caught-up replica reads up to ``interval`` of lag.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pymysql

from datatier.errors import OperationFailed, ServiceUnavailable
from datatier.log import get_logger
from datatier.mysql.connection import Connection, Endpoint, connect, query_dicts
from datatier.mysql.replica_status import read_replica_status

log = get_logger(__name__)

DATABASE = "datatier"
TABLE = "heartbeat"
MIN_INTERVAL = 0.05
ACCESS_DENIED = 1227  # ER_SPECIFIC_ACCESS_DENIED_ERROR (SHOW SLAVE STATUS without privilege)
DEFAULT_INTERVAL = 0.5
LOG_EVERY = 60.0  # seconds between log lines of one repeated beat failure

DDL = (
    f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`",
    f"CREATE TABLE IF NOT EXISTS `{DATABASE}`.`{TABLE}` (\n"
    "  `server_id` INT UNSIGNED NOT NULL PRIMARY KEY,\n"
    "  `ts` DATETIME(6) NOT NULL COMMENT 'UTC, written by the source',\n"
    "  `beats` BIGINT UNSIGNED NOT NULL DEFAULT 0\n"
    ") ENGINE=InnoDB",
)

BEAT_SQL = (
    f"INSERT INTO `{DATABASE}`.`{TABLE}` (server_id, ts, beats) "
    "SELECT @@server_id, UTC_TIMESTAMP(6), 1 FROM DUAL WHERE @@GLOBAL.read_only = 0 "
    "ON DUPLICATE KEY UPDATE ts = VALUES(ts), beats = beats + 1"
)
"""One beat, written only while the server is not read_only, in the same statement: an
account with SUPER or READ_ONLY ADMIN is not stopped by read_only, and a demoted primary
must not go on writing (its own transactions would fork it from the new primary)."""


@dataclass(frozen=True)
class HeartbeatReading:
    """What a server sees of a source's heartbeat: the row's ``ts``, the server's own UTC now,
    and ``lag`` = now - ts in seconds (clock skew included; see module docstring)."""

    source_server_id: int
    ts: datetime
    now: datetime
    lag: float


@dataclass(frozen=True)
class ClockReading:
    """A server's clock against this host's: ``offset`` seconds ahead (negative: behind),
    right to within ``error`` (half the round trip of the query that read it)."""

    server_id: int
    offset: float
    error: float


def read_clock(conn: Connection) -> ClockReading:
    """The clock of ``conn``'s server: its ``UTC_TIMESTAMP(6)`` against the midpoint of the
    query's round trip on this host."""
    before = time.time()
    row = query_dicts(conn, "SELECT @@server_id AS id, UTC_TIMESTAMP(6) AS now")[0]
    after = time.time()
    return clock_reading(int(row["id"]), row["now"], before, after)


def clock_reading(server_id: int, now: datetime, before: float, after: float) -> ClockReading:
    """A server's ``UTC_TIMESTAMP(6)``, ``now``, read by a query sent at ``before`` and
    answered at ``after`` (this host's ``time.time()``), as a :class:`ClockReading`."""
    server = now.replace(tzinfo=UTC).timestamp()
    return ClockReading(server_id, server - (before + after) / 2, (after - before) / 2)


def without_skew(lag: float, skew: float | None, error: float | None) -> float:
    """A heartbeat ``lag`` read on a replica whose clock runs ``skew`` seconds ahead of the
    heartbeat writer's, right to within ``error``: the largest lag that skew allows
    (``lag - skew + error``: never a replica fresher than it may be), never below zero;
    ``lag`` itself when the skew is not known."""
    if skew is not None and error is not None:
        lag = lag - skew + error
    return max(0.0, lag)


def ensure_table(conn: Connection) -> None:
    """Create the heartbeat database and table if missing (idempotent)."""
    with conn.cursor() as cur:
        for statement in DDL:
            cur.execute(statement)


def read_lag(conn: Connection, source_server_id: int | None) -> HeartbeatReading | None:
    """The heartbeat of ``source_server_id`` (the newest row if None) as seen by ``conn``'s
    server; None when there is no row or no table yet."""
    where, args = "WHERE server_id = %s", [source_server_id]
    if source_server_id is None:
        where, args = "ORDER BY ts DESC LIMIT 1", []
    try:
        rows = query_dicts(
            conn,
            f"SELECT server_id, ts, UTC_TIMESTAMP(6) AS now, "
            f"TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)) AS lag_us "
            f"FROM `{DATABASE}`.`{TABLE}` {where}",
            args or None,
        )
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] in (1049, 1146):  # unknown database / table
            return None
        raise
    if not rows:
        return None
    row = rows[0]
    return HeartbeatReading(
        source_server_id=int(row["server_id"]),
        ts=row["ts"],
        now=row["now"],
        lag=int(row["lag_us"]) / 1_000_000,
    )


class HeartbeatWriter:
    """Writes the heartbeat on the primary ``ep`` every ``interval`` seconds.

    :meth:`open` connects, refuses a read-only server (OperationFailed), creates the table and
    writes the first beat; an unreachable server raises ServiceUnavailable. :meth:`run` then
    beats on a fixed schedule until ``stop`` is set; a failed beat is logged and retried on
    the next tick with a fresh connection (the writer keeps running through a primary restart).
    """

    def __init__(self, ep: Endpoint, interval: float = DEFAULT_INTERVAL) -> None:
        if interval < MIN_INTERVAL:
            raise OperationFailed(f"heartbeat interval {interval} s is below {MIN_INTERVAL} s")
        self.ep = ep
        self.interval = interval
        self.beats = 0
        self.errors = 0
        self.last_error = ""
        self.last_beat: float | None = None  # time.monotonic() of the last successful beat
        self.server_id: int | None = None
        self._conn: Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._told: tuple[tuple[str, str], float] | None = None  # last failure logged, when
        self._repeats = 0  # failures like it since, not logged

    def open(self) -> None:
        """Connect, check writability, create the table, beat once."""
        self.close()
        conn = connect(self.ep)
        try:
            row = query_dicts(conn, "SELECT @@server_id AS id, @@read_only AS ro")[0]
            if int(row["ro"]):
                raise OperationFailed(
                    f"{self.ep.label} is read_only: the heartbeat is written on the primary only"
                )
            try:
                status = read_replica_status(conn)
            except pymysql.err.OperationalError as exc:
                if not exc.args or exc.args[0] != ACCESS_DENIED:
                    raise
                status = None  # an account without SLAVE MONITOR: read_only guards alone
            if status is not None and status.replicating:
                # read_only switched off on a replica: a beat would enter its binlog under
                # its own server_id and fork its GTID history (strict mode then stops it).
                raise OperationFailed(
                    f"{self.ep.label} replicates from {status.source_host}:{status.source_port}: "
                    "the heartbeat is written on the primary only"
                )
            ensure_table(conn)
        except BaseException:
            conn.close()
            raise
        self.server_id = int(row["id"])
        self._conn = conn
        self.beat()

    def beat(self) -> None:
        """Write one heartbeat now (reconnects first if the last one failed)."""
        if self._conn is None:
            self.open()
            return
        with self._conn.cursor() as cur:
            written = cur.execute(BEAT_SQL)
        if not written:
            raise OperationFailed(
                f"{self.ep.label} turned read_only: the heartbeat is written on the primary only"
            )
        self.beats += 1
        self.last_beat = time.monotonic()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(pymysql.MySQLError):
                conn.close()

    def run(self, stop: threading.Event | None = None) -> None:
        """Beat every interval until ``stop`` (or :meth:`stop`) is set; call :meth:`open` first
        to fail fast on a bad target. Never raises for a failed beat."""
        stop = stop or self._stop
        next_at = time.monotonic() + self.interval
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.interval
            if next_at < time.monotonic():  # fell behind (slow server): do not burst
                next_at = time.monotonic() + self.interval
            try:
                self.beat()
            except (pymysql.MySQLError, ServiceUnavailable, OSError) as exc:
                self._failed("heartbeat.write_failed", self.ep.scrub(str(exc)))
            except OperationFailed as exc:  # the node became read-only: stop writing to it
                self._failed("heartbeat.refused", str(exc))
            else:
                self._told = None
        self.close()

    def _failed(self, event: str, error: str) -> None:
        """Count a failed beat and close the connection; log it when it is new (another
        error, or the first since a good beat) or once a minute while it repeats, not at
        every tick: a demoted primary or a down server would flood the log."""
        self.errors += 1
        self.last_error = error
        self.close()
        now = time.monotonic()
        told = self._told
        if told is not None and told[0] == (event, error) and now - told[1] < LOG_EVERY:
            self._repeats += 1
            return
        level = log.error if event == "heartbeat.refused" else log.warning
        level(event, node=self.ep.name, error=error, repeated=self._repeats)
        self._told, self._repeats = ((event, error), now), 0

    def start(self) -> HeartbeatWriter:
        """Open, then run in a daemon thread (for the monitor's host process and tests)."""
        self.open()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, name=f"heartbeat-{self.ep.name}", daemon=True
        )
        self._thread.start()
        return self

    def alive(self) -> bool:
        """Whether the thread started by :meth:`start` is running."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict[str, object]:
        """JSON-ready state for ``/health``: running, beats, errors, last beat age, error."""
        age = None if self.last_beat is None else round(time.monotonic() - self.last_beat, 3)
        return {
            "running": self.alive(),
            "node": self.ep.name,
            "beats": self.beats,
            "errors": self.errors,
            "last_beat_age_seconds": age,
            "last_error": self.last_error or None,
        }

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread started by :meth:`start` and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
