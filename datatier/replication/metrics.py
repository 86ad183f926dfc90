"""Replication metrics of the monitor's snapshot, as a ``prometheus_client`` collector.

Every node series carries a ``node`` label (plus ``role`` on ``datatier_node_up``). Unknown
values (an unreachable node's lag) are exported as ``NaN`` rather than omitted, so a
dashboard shows a gap instead of a stale number; so are the gauges of a node whose last
measurement is stale (the monitor stopped, or its check of the node hangs past
``stale_after``: what makes ``/replica`` answer 503), and ``datatier_node_up`` is 0 for it.
Counters keep their last value. Counters end in ``_total``. The collector
reads only the monitor's last snapshot (memory): a scrape never opens a MySQL connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from datatier.metrics import value
from datatier.replication.snapshot import NodeHealth, Snapshot

Getter = Callable[[NodeHealth], float | None]


class SnapshotSource(Protocol):
    """What the collector reads: the monitor's last snapshot and whether its thread runs."""

    @property
    def snapshot(self) -> Snapshot | None: ...

    def alive(self) -> bool: ...


def _bool(flag: bool | None) -> float | None:
    return None if flag is None else float(flag)


def _opt(number: int | None) -> float | None:
    return None if number is None else float(number)


NODE_SERIES: tuple[tuple[str, str, str, Getter, bool], ...] = (
    # name, type, help, getter, replicas only
    (
        "datatier_node_read_only",
        "gauge",
        "1 if the node has read_only set.",
        lambda n: _bool(n.read_only),
        False,
    ),
    (
        "datatier_node_check_duration_seconds",
        "gauge",
        "How long the last check of the node took.",
        lambda n: n.check_seconds,
        False,
    ),
    (
        "datatier_node_check_errors_total",
        "counter",
        "Failed checks of the node since the monitor started.",
        lambda n: float(n.errors_total),
        False,
    ),
    (
        "datatier_node_clock_offset_seconds",
        "gauge",
        "The node's UTC clock minus the monitor host's (estimated at the query midpoint).",
        lambda n: n.clock_offset,
        False,
    ),
    (
        "datatier_replica_heartbeat_lag_seconds",
        "gauge",
        "Replica UTC now minus the replicated heartbeat timestamp (includes clock skew).",
        lambda n: n.lag,
        True,
    ),
    (
        "datatier_replica_seconds_behind_master",
        "gauge",
        "Seconds_Behind_Master as the server reports it (NaN when NULL), for comparison.",
        lambda n: None if n.replica is None else _opt(n.replica.seconds_behind),
        True,
    ),
    (
        "datatier_replica_io_thread_running",
        "gauge",
        "1 if the replica's IO (receiver) thread runs.",
        lambda n: None if n.replica is None else float(n.replica.io_ok),
        True,
    ),
    (
        "datatier_replica_sql_thread_running",
        "gauge",
        "1 if the replica's SQL (applier) thread runs.",
        lambda n: None if n.replica is None else float(n.replica.sql_ok),
        True,
    ),
    (
        "datatier_replica_last_error_number",
        "gauge",
        "Last SQL error number, else last IO error number (0 when none).",
        lambda n: (
            None
            if n.replica is None
            else float(n.replica.last_sql_errno or n.replica.last_io_errno)
        ),
        True,
    ),
)


def _is_replica(node: NodeHealth) -> bool:
    return node.replica is not None or node.role == "replica"


class ReplicationCollector:
    """Metric families of ``source``'s last snapshot; ``default_lag`` selects the hysteresis
    state exported as ``datatier_replica_held_out``."""

    def __init__(self, source: SnapshotSource, default_lag: float) -> None:
        self.source = source
        self.default_lag = default_lag

    def collect(self) -> Iterator[Metric]:
        snap = self.source.snapshot
        yield _gauge("datatier_monitor_up", "1 while the monitor thread runs.", self.source.alive())
        yield _gauge(
            "datatier_monitor_snapshot_age_seconds",
            "Age of the last completed round.",
            None if snap is None else snap.age(),
        )
        yield CounterMetricFamily(
            "datatier_monitor_rounds",
            "Completed measurement rounds.",
            value=0 if snap is None else snap.round,
        )
        if snap is None:
            return
        nodes = [snap.nodes[name] for name in sorted(snap.nodes)]
        stale = {node.name for node in nodes if snap.stale_reason(node)}
        up = GaugeMetricFamily(
            "datatier_node_up",
            "1 if the node answered the last check and that check is not stale.",
            labels=["node", "role"],
        )
        for node in nodes:
            up.add_metric([node.name, node.role], float(node.reachable and node.name not in stale))
        yield up
        for name, kind, text, getter, replicas_only in NODE_SERIES:
            family: GaugeMetricFamily | CounterMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, text, labels=["node"])
            else:
                family = GaugeMetricFamily(name, text, labels=["node"])
            for node in nodes:
                if replicas_only and not _is_replica(node):
                    continue
                unknown = kind != "counter" and node.name in stale
                family.add_metric([node.name], value(None if unknown else getter(node)))
            yield family
        held = snap.lagging.get(self.default_lag, frozenset())
        held_out = GaugeMetricFamily(
            "datatier_replica_held_out",
            "1 if hysteresis holds the replica out at the default lag threshold.",
            labels=["node"],
        )
        for node in nodes:
            if _is_replica(node):
                flag = None if node.name in stale else float(node.name in held)
                held_out.add_metric([node.name], value(flag))
        yield held_out
        primary = snap.primary()
        if primary is not None:
            age = GaugeMetricFamily(
                "datatier_primary_heartbeat_age_seconds",
                "Age of the newest heartbeat on the primary (grows when the heartbeat writer "
                "stops).",
                labels=["node"],
            )
            age.add_metric([primary.name], value(None if primary.name in stale else primary.lag))
            yield age


def _gauge(name: str, text: str, number: float | bool | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value(number))
