"""Routing decisions as pure functions of one monitor snapshot (no I/O, no state).

:class:`~datatier.replication.router.Router` calls these; the rules are its contract: a
write goes to the node that passes ``Snapshot.primary_check`` (the configured primary first,
else the single other writable node; but a configured primary the replicas no longer
follow, while they follow another writable node, is a former primary back after a hand
failover: the node they follow stays the write target, :func:`followed_instead`); a read
to replicas that pass ``Snapshot.replica_check`` for ``max_lag``, least lagged first
(``least_lag``) or by name (``round_robin``, rotated by the router). A node other than the
configured primary that still replicates (either thread running or reconnecting) is never
a write target, writable or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from datatier.config import RoutePolicy
from datatier.errors import ServiceUnavailable, UsageError
from datatier.replication.snapshot import Snapshot

Intent = Literal["read", "write"]
Policy = RoutePolicy
POLICIES: tuple[Policy, ...] = get_args(RoutePolicy)
INTENTS: tuple[Intent, ...] = get_args(Intent)


@dataclass(frozen=True)
class Route:
    """One routing decision: the node to use and why (``lag`` in seconds, None on a write)."""

    node: str
    intent: str
    reason: str
    lag: float | None = None
    fallback: bool = False


def write_route(snap: Snapshot, known: Collection[str]) -> Route:
    """The writable primary among the ``known`` nodes; ServiceUnavailable if none."""
    refused: list[str] = []
    writable: list[str] = []
    configured = [n for n, h in sorted(snap.nodes.items()) if h.role == "primary"]
    for name in configured + sorted(set(snap.nodes) - set(configured)):
        if name not in known:
            continue
        ok, reason = snap.primary_check(name)
        status = snap.nodes[name].replica
        if ok and name not in configured and status is not None and status.replicating:
            # read_only switched off on a replica is no promotion: it would take writes
            # until its source returns, then fork from it. A promotion stops replication.
            refused.append(f"{name}: writable but still replicating (STOP SLAVE to promote it)")
        elif ok:
            writable.append(name)
        elif name in configured:
            refused.append(f"{name}: {reason}")
    if len(writable) > 1 and writable[0] in configured:
        instead = followed_instead(snap, writable)
        if instead is not None:
            return Route(
                instead, "write", f"writable primary the replicas follow, not {writable[0]}"
            )
    if writable and (writable[0] in configured or len(writable) == 1):
        return Route(writable[0], "write", "writable primary")
    if len(writable) > 1:
        raise ServiceUnavailable(
            f"router: no write target: several writable nodes ({', '.join(writable)}) "
            "and none is the configured primary"
        )
    detail = "; ".join(refused) or "no primary configured"
    raise ServiceUnavailable(f"router: no writable primary ({detail})")


def followers(snap: Snapshot, name: str) -> int:
    """How many nodes replicate from ``name`` (their source's server_id is its own)."""
    own = snap.nodes[name].server_id
    if own is None:
        return 0
    return sum(
        1
        for node in snap.nodes.values()
        if node.name != name
        and node.replica is not None
        and node.replica.replicating
        and node.replica.source_server_id == own
    )


def followed_instead(snap: Snapshot, writable: list[str]) -> str | None:
    """Of the writable nodes (the configured primary first), the one the replicas follow
    when it is not the configured primary: more nodes replicate from it than from any
    other. That is a hand failover the configured primary came back from, writable (its
    data stops where it failed: writes sent there would fork the data). None when no node
    replicates from any of them (a single replica, say: the configured primary stays the
    write target) or the configured primary is followed most; ServiceUnavailable when
    another node is followed as much as the most followed (a failover half done)."""
    counts = {name: followers(snap, name) for name in writable}
    best = max(counts.values())
    leaders = [name for name, count in counts.items() if count == best]
    if best == 0 or leaders == [writable[0]]:
        return None
    if len(leaders) > 1:
        raise ServiceUnavailable(
            f"router: no write target: writable nodes {', '.join(leaders)} are each followed "
            f"by {best} replica(s) (a failover half done?)"
        )
    return leaders[0]


def read_verdicts(
    snap: Snapshot, max_lag: float, known: Collection[str], policy: str
) -> tuple[list[Route], list[str]]:
    """(fit replicas in preference order, refusals as ``"name: reason"``)."""
    fit: list[Route] = []
    refused: list[str] = []
    for name, node in sorted(snap.nodes.items()):
        if node.role != "replica" or name not in known:
            continue
        ok, reason = snap.replica_check(name, max_lag)
        if ok:
            fit.append(Route(name, "read", reason, lag=node.lag))
        else:
            refused.append(f"{name}: {reason}")
    if policy == "round_robin":
        fit.sort(key=lambda r: r.node)
    else:
        fit.sort(key=lambda r: (r.lag if r.lag is not None else float("inf"), r.node))
    return fit, refused


def check_max_lag(value: object, source: str = "max_lag") -> float:
    """``value`` as seconds; UsageError naming ``source`` unless a finite number > 0."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0.0 or number == float("inf"):
        raise UsageError(f"router: {source} must be a finite number > 0, got {value!r}")
    return round(number, 6)


def fit_nodes(snap: Snapshot, known: Collection[str], limits: Iterable[float]) -> set[str]:
    """The write target plus every replica that fits one of ``limits``."""
    fit: set[str] = set()
    with contextlib.suppress(ServiceUnavailable):
        fit.add(write_route(snap, known).node)
    limits = [t for t in limits if t > 0]
    for name, node in snap.nodes.items():
        if node.role != "replica" or name in fit or name not in known:
            continue
        if any(snap.replica_check(name, limit)[0] for limit in limits):
            fit.add(name)
    return fit
