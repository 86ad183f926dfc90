"""Choose the MySQL node a backup reads from, before the dump engine runs.

Contract: the candidates are the policy's ``source.node`` or ``source.nodes`` in order,
``"any-replica"`` standing for every replica of ``[mysql.nodes]`` (in config order) not
named before it; the primary is read only when named. The first candidate that answers
and lags at most ``max_lag`` seconds is chosen. Lag is measured as ``cache warm`` and
``replication status`` measure it (:mod:`datatier.mysql.lag`): heartbeat lag when the
heartbeat writer runs, else Seconds_Behind_Master; a stopped SQL thread is unknown lag,
which is too much. When no candidate fits: NotReadyYet (exit 5) if any answered (it may
catch up), ServiceUnavailable (exit 3) if none could be reached; each reason is named.
The lag measured right before the snapshot goes into the manifest's ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pymysql

from datatier.backup.policy import ANY_REPLICA, Policy, check_max_lag
from datatier.config import MySQLSettings, Role
from datatier.errors import ConfigError, NotReadyYet, ServiceUnavailable, UsageError
from datatier.log import get_logger
from datatier.mysql.connection import Endpoint, connect, endpoint
from datatier.mysql.lag import LagCheck, measure_lag

log = get_logger(__name__)


@dataclass(frozen=True)
class SourceChoice:
    """The node to dump, what was measured on it, and why earlier candidates were skipped."""

    endpoint: Endpoint
    role: Role
    lag: LagCheck
    max_lag: float
    candidates: list[str]
    skipped: list[str] = field(default_factory=list)
    primary: Endpoint | None = None  # the configured primary, for what a replica cannot tell

    def manifest_fields(self) -> dict[str, Any]:
        """What the manifest's ``source`` records about the choice."""
        return {
            "role": self.role,
            "lag_seconds": None if self.lag.lag is None else round(self.lag.lag, 3),
            "lag_method": self.lag.method,
            "max_lag_seconds": self.max_lag,
            "candidates": self.candidates,
            "skipped": self.skipped,
        }


def candidates(policy: Policy, mysql: MySQLSettings) -> list[str]:
    """The policy's source nodes in order, ``any-replica`` expanded; ConfigError naming an
    unknown node."""
    src = policy.spec.source
    named = src.nodes or ([src.node] if src.node else [])
    found: list[str] = []
    for name in named:
        if name == ANY_REPLICA:
            found += [n for n in mysql.replicas() if n not in found and n not in named]
        elif name not in mysql.nodes:
            known = ", ".join(sorted(mysql.nodes)) or "none configured"
            raise ConfigError(
                str(policy.path), "source.nodes", f"unknown node {name!r} (known: {known})"
            )
        elif name not in found:
            found.append(name)
    if not found:
        raise ConfigError(str(policy.path), "source.nodes", "no replica is configured")
    return found


def select_source(policy: Policy, mysql: MySQLSettings, max_lag: float) -> SourceChoice:
    """The first fresh-enough candidate of ``policy`` (module docstring); UsageError for a
    ``max_lag`` that is not a finite number >= 0."""
    max_lag = check_max_lag(max_lag)
    names = candidates(policy, mysql)
    primary = mysql.primary()
    primary_ep = endpoint(mysql, primary[0]) if primary else None
    skipped: list[str] = []
    reached = False
    for name in names:
        ep = endpoint(mysql, name)
        role = mysql.nodes[name].role
        try:
            conn = connect(ep)
        except ServiceUnavailable as exc:
            skipped.append(f"{name}: unreachable ({exc})")
            continue
        reached = True
        try:
            lag = measure_lag(conn, role, primary_ep)
        except pymysql.MySQLError as exc:
            reason = ep.scrub(str(exc.args[-1] if exc.args else exc))
            raise UsageError(
                f"policy {policy.name}: cannot measure the lag of {ep.label}: {reason}",
                hint="the backup account needs SLAVE MONITOR (REPLICATION CLIENT) to read "
                "replica status",
            ) from None
        finally:
            conn.close()
        if lag.exceeds(max_lag):
            shown = "unknown" if lag.lag is None else f"{lag.lag:.1f} s"
            skipped.append(f"{name}: lag {shown} ({lag.method}) is over {max_lag:g} s")
            continue
        if skipped:
            log.warning("backup.source_skipped", policy=policy.name, chosen=name, skipped=skipped)
        return SourceChoice(ep, role, lag, max_lag, names, skipped, primary_ep)
    why = "; ".join(skipped)
    if not reached:
        raise ServiceUnavailable(f"policy {policy.name}: no source node can be reached: {why}")
    raise NotReadyYet(
        f"policy {policy.name}: no source node is fresh enough: {why}",
        hint="run again later, list more nodes in source.nodes, or raise --max-lag",
    )
