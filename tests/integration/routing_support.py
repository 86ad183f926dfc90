"""Shared set-up for the routing tests: a heartbeat writer and a fast monitor on the sandbox,
and a scratch database on the primary (dropped afterwards)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from datatier.mysql.connection import endpoint
from datatier.mysql.heartbeat import HeartbeatWriter
from datatier.replication.monitor import Monitor
from datatier.replication.router import Router
from tests.integration.conftest import SandboxHandle, sql, wait_for

INTERVAL = 0.1


@contextlib.contextmanager
def running_monitor(sandbox: SandboxHandle, database: str) -> Iterator[Monitor]:
    """Heartbeat + monitor every INTERVAL s; ``database`` exists on every node meanwhile."""
    writer = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=INTERVAL)
    writer.start()
    health = replace(sandbox.config.health, check_timeout=2.0, replica_max_lag=1.0)
    mon = Monitor(sandbox.config.mysql, health, interval=INTERVAL).start()
    try:
        sql(sandbox, "primary", f"CREATE DATABASE IF NOT EXISTS {database}")
        sandbox.wait_replicated()
        wait_for(lambda: mon.snapshot is not None and mon.snapshot.round >= 3, 10)
        yield mon
    finally:
        mon.stop()
        writer.stop()
        sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {database}")
        sandbox.wait_replicated()


def routable(router: Router, node: str, max_lag: float = 0.5) -> bool:
    fit, _ = router.read_candidates(max_lag)
    return node in {r.node for r in fit}


def wait_all_routable(router: Router, max_lag: float = 0.5) -> None:
    """Until both replicas fit again (a previous test's lag and hysteresis are gone)."""
    for node in ("replica1", "replica2"):
        wait_for(lambda node=node: routable(router, node, max_lag), 15)  # type: ignore[misc]
