"""Immutable measurement records: one node's check, one round's snapshot, the hysteresis rule.

Everything here is frozen data plus pure functions, safe to share between the monitor thread
(which builds a new :class:`Snapshot` each round) and any number of reader threads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from datatier.config import Role
from datatier.mysql.replica_status import ReplicaStatus


@dataclass(frozen=True)
class NodeHealth:
    """One node's last measurement. ``lag`` is the heartbeat lag in seconds on a replica
    (the clock skew against the heartbeat's writer taken out: :mod:`.skew`) and the age of
    the newest heartbeat on a primary; None when no heartbeat was readable."""

    name: str
    role: Role
    host: str
    port: int
    reachable: bool = False
    error: str = ""
    read_only: bool | None = None
    server_id: int | None = None
    replica: ReplicaStatus | None = None
    gtid_position: str = ""
    lag: float | None = None
    clock_offset: float | None = None
    clock_error: float | None = None
    """How far ``clock_offset`` may be off: half the round trip of the query that read it."""
    lag_raw: float | None = None
    """The heartbeat lag as read, before the clock skew came off (:mod:`.skew`)."""
    lag_source: int | None = None
    """The server_id whose heartbeat row the lag was read from."""
    clock_skew: float | None = None
    """This node's clock offset minus that of ``lag_source``'s server (None: not known)."""
    clock_skew_error: float | None = None
    check_seconds: float = 0.0
    measured_at: float = 0.0
    checked: float = 0.0  # time.monotonic() when the check ended (for per-node staleness)
    errors_total: int = 0

    @property
    def writable(self) -> bool:
        """Reachable and not read_only: what ``/primary`` requires."""
        return self.reachable and self.read_only is False

    def to_json(self) -> dict[str, Any]:
        """JSON-ready view (no secrets: host, port and server state only)."""
        return {
            "name": self.name,
            "role": self.role,
            "host": self.host,
            "port": self.port,
            "reachable": self.reachable,
            "error": self.error or None,
            "read_only": self.read_only,
            "server_id": self.server_id,
            "gtid_position": self.gtid_position or None,
            "lag_seconds": None if self.lag is None else round(self.lag, 6),
            "lag_raw_seconds": None if self.lag_raw is None else round(self.lag_raw, 6),
            "clock_offset_seconds": (
                None if self.clock_offset is None else round(self.clock_offset, 6)
            ),
            "check_seconds": round(self.check_seconds, 6),
            "measured_at": datetime.fromtimestamp(self.measured_at, UTC).isoformat(),
            "errors_total": self.errors_total,
            "replication": None if self.replica is None else self.replica.to_json(),
        }


@dataclass(frozen=True)
class Snapshot:
    """One completed round of measurements (immutable; swapped whole by the monitor)."""

    nodes: Mapping[str, NodeHealth]
    round: int
    interval: float
    stale_after: float
    finished: float  # time.monotonic() when the round ended
    lagging: Mapping[float, frozenset[str]] = field(default_factory=dict)
    heartbeat_stale_after: float = float("inf")
    """A primary heartbeat older than this means the heartbeat writer has stopped."""
    heartbeat_source: int | None = None
    """The server_id whose heartbeat row replica lags were read from this round."""

    def age(self) -> float:
        return time.monotonic() - self.finished

    def fresh(self) -> bool:
        """Not older than ``stale_after`` seconds."""
        return self.age() <= self.stale_after

    def _stale(self, node: NodeHealth) -> str:
        """Why ``node``'s numbers cannot be trusted now ('' if they can)."""
        if not self.fresh():
            return f"measurements are stale ({self.age():.1f} s old)"
        age = time.monotonic() - node.checked
        if age > self.stale_after:
            return f"check of {node.name} is stale ({age:.1f} s old; still running?)"
        return ""

    def stale_reason(self, node: NodeHealth) -> str:
        """Why ``node``'s numbers cannot be trusted now ('' if they can): the whole snapshot
        or that node's last finished check is older than ``stale_after``."""
        return self._stale(node)

    def primary(self) -> NodeHealth | None:
        """The configured primary's measurement, if one is configured."""
        return next((n for n in self.nodes.values() if n.role == "primary"), None)

    def writer_stopped(self) -> float | None:
        """Seconds since the heartbeat writer's last beat, when the primary is reachable and
        its newest heartbeat is older than ``heartbeat_stale_after``; None otherwise."""
        primary = self.primary()
        if primary is None or not primary.reachable or primary.lag is None:
            return None
        return primary.lag if primary.lag > self.heartbeat_stale_after else None

    def heartbeat_note(self) -> str:
        """Why replica lag cannot be measured now ('' when it can): the writer stopped, no
        heartbeat on the primary, or the primary unreachable (no new heartbeats)."""
        primary = self.primary()
        if primary is None:
            return ""
        if not primary.reachable:
            return "primary unreachable: no new heartbeats"
        if primary.lag is None:
            return "no heartbeat on the primary (is `datatier replication heartbeat` running?)"
        stopped = self.writer_stopped()
        if stopped is not None:
            return f"heartbeat writer stopped {stopped:.0f} s ago"
        return ""

    def clock_skew(self, name: str) -> float | None:
        """Clock offset of node ``name`` minus that of the heartbeat's writer it read (the
        error in its raw lag), else minus the configured primary's."""
        node, primary = self.nodes.get(name), self.primary()
        if node is not None and node.clock_skew is not None:
            return node.clock_skew
        if node is None or primary is None:
            return None
        if node.clock_offset is None or primary.clock_offset is None:
            return None
        return node.clock_offset - primary.clock_offset

    def primary_check(self, name: str) -> tuple[bool, str]:
        """(healthy, reason) for ``/primary``: a fresh, reachable, writable node."""
        node = self.nodes[name]
        stale = self._stale(node)
        if stale:
            return False, stale
        if not node.reachable:
            return False, f"unreachable: {node.error}"
        if not node.writable:
            return False, "read_only"
        return True, "writable primary"

    def replica_check(self, name: str, max_lag: float) -> tuple[bool, str]:
        """(healthy, reason) for ``/replica``: the SQL thread runs, the IO thread runs or is
        reconnecting, and the heartbeat lag is at most ``max_lag`` (and the replica is not
        held out by hysteresis for that threshold).

        A reconnecting IO thread (its source restarting, say) does not take the replica out
        by itself: the heartbeat lag is the age of the newest beat it applied, so it bounds
        how stale its data is whether or not the source can be reached, and grows past
        ``max_lag`` if the source stays away. (Before, a primary restart took every replica
        out of rotation at once.)"""
        node = self.nodes[name]
        stale = self._stale(node)
        if stale:
            return False, stale
        if not node.reachable:
            return False, f"unreachable: {node.error}"
        status = node.replica
        if status is None:
            return False, "not a replica"
        detail = f"; {status.last_error}" if status.last_error else ""
        if not status.sql_ok or not (status.io_ok or status.io_reconnecting):
            return False, f"io thread {status.io_running}, sql thread {status.sql_running}{detail}"
        away = (
            f" (io thread {status.io_running}{detail}: the lag grows while its source is away)"
            if status.io_reconnecting
            else ""
        )
        if node.lag is None:
            source, target = status.source_server_id, self.heartbeat_source
            if source and target is not None and source != target:
                return False, (
                    f"replicates from server_id {source}, not from the write target's "
                    f"(server_id {target}): no heartbeat of the write target reaches it"
                )
            return False, "no heartbeat seen (is `datatier replication heartbeat` running?)"
        held = self.lagging.get(max_lag)
        if held is not None and name in held:
            reason = f"lagging: {node.lag:.3f} s (held out until it recovers){away}"
        elif node.lag > max_lag:
            reason = f"lagging: {node.lag:.3f} s > {max_lag:g} s{away}"
        else:
            return True, f"lag {node.lag:.3f} s <= {max_lag:g} s{away}"
        note = self.heartbeat_note()
        if note.startswith("heartbeat writer stopped"):
            # The lag is the writer's silence, not the replica's delay: say so first.
            return False, f"{note}: replica lag unknown (heartbeat lag {node.lag:.1f} s)"
        return False, f"{reason} ({note})" if note else reason


def hold_lagging(
    previous: Mapping[float, frozenset[str]],
    nodes: Mapping[str, NodeHealth],
    thresholds: Set[float] | Mapping[float, frozenset[str]],
    readmit_ratio: float,
) -> dict[float, frozenset[str]]:
    """The replicas held out per threshold after this round (the hysteresis rule).

    ``thresholds`` is a set (every node evaluated at each) or a mapping threshold -> the
    nodes to evaluate at it. A replica is held once its lag exceeds the threshold and
    released once its lag is at or below ``readmit_ratio`` x threshold; with an unknown lag
    it keeps its previous state.
    """
    if not isinstance(thresholds, Mapping):
        thresholds = dict.fromkeys(thresholds, frozenset(nodes))
    result: dict[float, frozenset[str]] = {}
    for limit, members in thresholds.items():
        before = previous.get(limit, frozenset())
        held = set()
        for name, node in nodes.items():
            if name not in members or (node.replica is None and node.role != "replica"):
                continue
            if node.lag is None:
                if name in before:
                    held.add(name)
            elif name in before:
                if node.lag > limit * readmit_ratio:
                    held.add(name)
            elif node.lag > limit:
                held.add(name)
        result[limit] = frozenset(held)
    return result
