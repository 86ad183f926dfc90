"""Prometheus text exposition (format 0.0.4) of a monitor snapshot, written by hand.

Every series carries a ``node`` label (plus ``role`` on ``datatier_node_up``). Unknown values
(an unreachable node's lag) are exported as ``NaN`` rather than omitted, so a dashboard shows
a gap instead of a stale number. Counters end in ``_total``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from datatier.replication.snapshot import NodeHealth, Snapshot

Getter = Callable[[NodeHealth], float | None]


def escape_label(value: str) -> str:
    """A label value escaped per the exposition format (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _bool(value: bool | None) -> float | None:
    return None if value is None else float(value)


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


def _opt(value: int | None) -> float | None:
    return None if value is None else float(value)


def render_metrics(snap: Snapshot | None, monitor_alive: bool, default_lag: float) -> str:
    """The whole ``/metrics`` body for ``snap`` (None before the first round)."""
    lines = [
        "# HELP datatier_monitor_up 1 while the monitor thread runs.",
        "# TYPE datatier_monitor_up gauge",
        f"datatier_monitor_up {int(monitor_alive)}",
        "# HELP datatier_monitor_snapshot_age_seconds Age of the last completed round.",
        "# TYPE datatier_monitor_snapshot_age_seconds gauge",
        f"datatier_monitor_snapshot_age_seconds {_number(None if snap is None else snap.age())}",
        "# HELP datatier_monitor_rounds_total Completed measurement rounds.",
        "# TYPE datatier_monitor_rounds_total counter",
        f"datatier_monitor_rounds_total {0 if snap is None else snap.round}",
    ]
    if snap is None:
        return "\n".join(lines) + "\n"
    nodes = [snap.nodes[name] for name in sorted(snap.nodes)]
    lines += [
        "# HELP datatier_node_up 1 if the node answered the last check.",
        "# TYPE datatier_node_up gauge",
    ]
    for node in nodes:
        labels = f'node="{escape_label(node.name)}",role="{escape_label(node.role)}"'
        lines.append(f"datatier_node_up{{{labels}}} {int(node.reachable)}")
    for name, kind, text, getter, replicas_only in NODE_SERIES:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for node in nodes:
            if replicas_only and node.replica is None and node.role != "replica":
                continue
            lines.append(f'{name}{{node="{escape_label(node.name)}"}} {_number(getter(node))}')
    held = snap.lagging.get(default_lag, frozenset())
    lines += [
        "# HELP datatier_replica_held_out 1 if hysteresis holds the replica out at the "
        "default lag threshold.",
        "# TYPE datatier_replica_held_out gauge",
    ]
    for node in nodes:
        if node.replica is not None or node.role == "replica":
            lines.append(
                f'datatier_replica_held_out{{node="{escape_label(node.name)}"}} '
                f"{int(node.name in held)}"
            )
    primary = snap.primary()
    if primary is not None:
        lines += [
            "# HELP datatier_primary_heartbeat_age_seconds Age of the newest heartbeat on the "
            "primary (grows when the heartbeat writer stops).",
            "# TYPE datatier_primary_heartbeat_age_seconds gauge",
            f'datatier_primary_heartbeat_age_seconds{{node="{escape_label(primary.name)}"}} '
            f"{_number(primary.lag)}",
        ]
    return "\n".join(lines) + "\n"
