"""Replica lag with the clock skew between hosts taken out.

A replica's heartbeat lag is its own clock's now minus the heartbeat row's ``ts``, which
the writer's clock wrote (:mod:`datatier.mysql.heartbeat`). A replica host whose clock runs
ahead of the writer's reads that much more lag (and is taken out of rotation for nothing);
one whose clock runs behind reads less, and serves stale reads as fresh.

The monitor measures every server's clock offset against its own host in each round: the
server's ``UTC_TIMESTAMP(6)`` against the midpoint of the query's round trip, right to
within half of it (``clock_error``). A replica's skew is its offset minus the offset of the
server whose heartbeat it read (``lag_source``); the monitor's own clock cancels out. The
lag becomes the largest the skew allows (:func:`~datatier.mysql.heartbeat.without_skew`:
less the skew, plus the two readings' errors), never below zero: never fresher than the
replica may be. When the writer was not measured this round (unreachable, its check still
running), the replica's last skew against the same writer stands only where it adds lag
(the writer's clock may have been stepped since). ``lag_raw`` keeps what was read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from datatier.mysql.heartbeat import without_skew
from datatier.replication.snapshot import NodeHealth


def correct_lags(
    nodes: Mapping[str, NodeHealth], previous: Mapping[str, NodeHealth] | None = None
) -> dict[str, NodeHealth]:
    """``nodes`` with each one's ``lag`` recomputed from ``lag_raw`` and its clock skew
    against the writer of the heartbeat it read (module docstring); ``previous``: the last
    round's nodes, whose skews stand in for one that cannot be measured now. Idempotent
    (a node carried over from a previous round comes out the same)."""
    writers = {
        n.server_id: n
        for n in nodes.values()
        if n.reachable and n.server_id is not None and n.clock_offset is not None
    }
    out: dict[str, NodeHealth] = {}
    for name, node in nodes.items():
        if node.lag_raw is None or node.lag_source is None or node.lag_source == node.server_id:
            out[name] = replace(node, lag=node.lag_raw, clock_skew=None, clock_skew_error=None)
            continue
        skew, error = _skew(node, writers.get(node.lag_source))
        last = None if previous is None else previous.get(name)
        if skew is None and last is not None and last.lag_source == node.lag_source:
            carried, margin = last.clock_skew, last.clock_skew_error
            if carried is not None and margin is not None and carried < margin:
                skew, error = carried, margin  # it adds lag: safe however old
        lag = without_skew(node.lag_raw, skew, error)
        out[name] = replace(node, lag=lag, clock_skew=skew, clock_skew_error=error)
    return out


def _skew(node: NodeHealth, writer: NodeHealth | None) -> tuple[float | None, float | None]:
    if writer is None or node.clock_offset is None or writer.clock_offset is None:
        return None, None
    error = (node.clock_error or 0.0) + (writer.clock_error or 0.0)
    return node.clock_offset - writer.clock_offset, error
