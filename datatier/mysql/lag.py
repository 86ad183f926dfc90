"""How far behind a replica is, as the cache warmer and the backup's source selection
measure it before reading from it.

Contract: the lag is the heartbeat lag when ``datatier replication heartbeat`` runs (its
row on the primary is fresh; the skew between the replica's and the primary's clocks taken
off), else ``Seconds_Behind_Master``; a stopped SQL thread (or a
node that replicates from nobody) means unknown lag, which counts as too much. The primary
has no lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from datatier.config import Role
from datatier.errors import ServiceUnavailable
from datatier.mysql.connection import Connection, Endpoint, connect
from datatier.mysql.heartbeat import ClockReading, read_clock, read_lag, without_skew
from datatier.mysql.replica_status import read_replica_status

LagMethod = Literal[
    "primary", "not a replica", "sql thread stopped", "heartbeat", "seconds_behind",
    "seconds_behind unknown",
]  # fmt: skip


@dataclass(frozen=True)
class LagCheck:
    """What was measured: ``lag`` seconds (None: unknown) and how (``heartbeat``,
    ``seconds_behind``, ``sql thread stopped``, ``primary``)."""

    lag: float | None
    method: LagMethod

    def exceeds(self, max_lag: float) -> bool:
        return self.method != "primary" and (self.lag is None or self.lag > max_lag)


HEARTBEAT_FRESH = 10.0  # seconds: a primary heartbeat older than this means no writer runs


def heartbeat_running(primary: Endpoint | None) -> bool:
    """Whether the primary's own heartbeat row is fresh (a writer is running)."""
    return _writer_clock(primary) is not None


def _writer_clock(primary: Endpoint | None) -> ClockReading | None:
    """The primary's clock when its own heartbeat row is fresh (a writer is running), else
    None."""
    if primary is None:
        return None
    try:
        conn = connect(primary)
    except ServiceUnavailable:
        return None
    try:
        beat = read_lag(conn, None)
        if beat is None or beat.lag >= HEARTBEAT_FRESH:
            return None
        return read_clock(conn)
    finally:
        conn.close()


def measure_lag(conn: Connection, role: Role, primary: Endpoint | None) -> LagCheck:
    """The lag of the server behind ``conn`` (``primary``: where to check that a heartbeat
    writer runs), with the skew between its clock and the primary's taken off when the
    heartbeat read is the primary's (:func:`~datatier.mysql.heartbeat.without_skew`)."""
    if role == "primary":
        return LagCheck(0.0, "primary")
    status = read_replica_status(conn)
    if status is None:
        return LagCheck(None, "not a replica")
    if not status.sql_ok:
        return LagCheck(None, "sql thread stopped")
    writer = _writer_clock(primary)
    beat = read_lag(conn, status.source_server_id) if writer is not None else None
    if writer is not None and beat is not None and status.io_ok:
        if beat.source_server_id != writer.server_id:
            return LagCheck(max(beat.lag, 0.0), "heartbeat")
        clock = read_clock(conn)
        skew, error = clock.offset - writer.offset, clock.error + writer.error
        return LagCheck(without_skew(beat.lag, skew, error), "heartbeat")
    if status.seconds_behind is None:
        return LagCheck(None, "seconds_behind unknown")
    return LagCheck(float(status.seconds_behind), "seconds_behind")
