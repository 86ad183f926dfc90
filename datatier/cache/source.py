"""Which MySQL node the warmer reads from, and whether it is fresh enough to read.

Contract: a replica is the default (``--node``, then the warm set's ``source_node``, then
``[cache] source_node``, then the first replica in the config); the primary only when the
caller allows it. Lag is the heartbeat lag when ``datatier replication heartbeat`` runs
(its row on the primary is fresh), else ``Seconds_Behind_Master``; a stopped SQL thread
means unknown lag, which counts as too much.
"""

from __future__ import annotations

from dataclasses import dataclass

from datatier.config import Config
from datatier.errors import NotReadyYet, ServiceUnavailable, UsageError
from datatier.mysql.connection import Connection, Endpoint, connect, endpoint
from datatier.replication.heartbeat import read_lag
from datatier.replication.status import read_replica_status


@dataclass(frozen=True)
class LagCheck:
    """What was measured: ``lag`` seconds (None: unknown) and how (``heartbeat``,
    ``seconds_behind``, ``sql thread stopped``, ``primary``)."""

    lag: float | None
    method: str

    def exceeds(self, max_lag: float) -> bool:
        return self.method != "primary" and (self.lag is None or self.lag > max_lag)


def choose_source(
    config: Config, node: str | None, set_node: str | None, allow_primary: bool
) -> tuple[Endpoint, str]:
    """The endpoint to read from and its role; UsageError for the primary unless allowed."""
    mysql = config.mysql
    name = node or set_node or config.cache.source_node
    if name is None:
        replicas = mysql.replicas()
        if not replicas:
            raise UsageError(
                "no replica configured to read from",
                hint="add a [mysql.nodes.NAME] with role = replica, or pass --node",
            )
        name = next(iter(replicas))
    ep = endpoint(mysql, name)
    role = mysql.nodes[name].role
    if role == "primary" and not allow_primary:
        raise UsageError(
            f"{name} is the primary: the warmer reads from a replica",
            hint="pass --allow-primary to read from the primary anyway",
        )
    return ep, role


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


def measure_lag(conn: Connection, role: str, primary: Endpoint | None) -> LagCheck:
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


def enforce_lag(name: str, check: LagCheck, max_lag: float, on_lag: str) -> str | None:
    """A warning text when the lag is over ``max_lag`` and ``on_lag`` is ``warn``;
    NotReadyYet (exit 5) when it is ``refuse``; None when fresh enough."""
    if not check.exceeds(max_lag):
        return None
    shown = "unknown" if check.lag is None else f"{check.lag:.1f} s"
    text = f"replica {name} lag {shown} ({check.method}) is over --max-lag {max_lag:g} s"
    if on_lag == "refuse":
        raise NotReadyYet(text, hint="run again later, or pass --on-lag warn")
    return text
