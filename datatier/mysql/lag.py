"""How far behind a replica is, as the cache warmer and the backup's source selection
measure it before reading from it.

Contract: the lag is the heartbeat lag when ``datatier replication heartbeat`` runs (its
row on the primary is fresh), else ``Seconds_Behind_Master``; a stopped SQL thread (or a
node that replicates from nobody) means unknown lag, which counts as too much. The primary
has no lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from datatier.config import Role
from datatier.errors import ServiceUnavailable
from datatier.mysql.connection import Connection, Endpoint, connect
from datatier.mysql.heartbeat import read_lag
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
    if primary is None:
        return False
    try:
        conn = connect(primary)
    except ServiceUnavailable:
        return False
    try:
        beat = read_lag(conn, None)
    finally:
        conn.close()
    return beat is not None and beat.lag < HEARTBEAT_FRESH


def measure_lag(conn: Connection, role: Role, primary: Endpoint | None) -> LagCheck:
    """The lag of the server behind ``conn`` (``primary``: where to check that a heartbeat
    writer runs)."""
    if role == "primary":
        return LagCheck(0.0, "primary")
    status = read_replica_status(conn)
    if status is None:
        return LagCheck(None, "not a replica")
    if not status.sql_ok:
        return LagCheck(None, "sql thread stopped")
    beat = read_lag(conn, status.source_server_id) if heartbeat_running(primary) else None
    if beat is not None and status.io_ok:
        return LagCheck(max(beat.lag, 0.0), "heartbeat")
    if status.seconds_behind is None:
        return LagCheck(None, "seconds_behind unknown")
    return LagCheck(float(status.seconds_behind), "seconds_behind")
