"""A replica host whose clock is off no longer fakes or hides lag (the monitor takes the
skew against the heartbeat writer's clock off: datatier.replication.skew; so does
measure_lag, the backup's source choice and the cache warmer's), on the real sandbox.

The skewed host clock is MariaDB's own session clock: the monitor's connection to one node
runs ``SET @@timestamp`` to the server's now plus a skew, so the server's
``UTC_TIMESTAMP(6)``, the offset the monitor reads and the lag it reads all run off by
that skew, as on a host whose clock is off. The session clock then stands still, so each
test measures one round on a fresh monitor, within milliseconds of setting it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from datatier.config import HealthSettings, MySQLSettings
from datatier.mysql.connection import Connection, Endpoint, connect, endpoint
from datatier.mysql.heartbeat import HeartbeatWriter
from datatier.mysql.lag import measure_lag
from datatier.replication.monitor import Monitor
from tests.integration.conftest import SandboxHandle

INTERVAL = 0.1


class SkewedMonitor(Monitor):
    """A monitor whose connection to each node in ``skews`` sees that node's clock off by
    the given seconds (module docstring)."""

    def __init__(
        self, mysql: MySQLSettings, health: HealthSettings, skews: dict[str, float]
    ) -> None:
        super().__init__(mysql, health, interval=INTERVAL)
        self.skews = skews

    def _open(self, ep: Endpoint) -> Connection:
        conn = super()._open(ep)
        if ep.name in self.skews:
            with conn.cursor() as cur:
                cur.execute("SET @@timestamp = UNIX_TIMESTAMP(NOW(6)) + %s", (self.skews[ep.name],))
        return conn


@pytest.fixture(scope="module")
def writer(sandbox: SandboxHandle) -> Iterator[HeartbeatWriter]:
    hb = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=INTERVAL).start()
    yield hb
    hb.stop()


def one_round(sandbox: SandboxHandle, skews: dict[str, float]) -> Monitor:
    health = replace(sandbox.config.health, check_timeout=5.0, replica_max_lag=1.0)
    return SkewedMonitor(sandbox.config.mysql, health, skews)


def test_a_replica_clock_ahead_no_longer_reads_as_lag(
    sandbox: SandboxHandle, writer: HeartbeatWriter
) -> None:
    sandbox.wait_replicated()
    monitor = one_round(sandbox, {"replica1": 5.0})
    try:
        snap = monitor.measure_once()
    finally:
        monitor.stop()
    node = snap.nodes["replica1"]
    assert node.lag_raw is not None and node.lag_raw > 4.5, "the skew reached the raw lag"
    assert node.clock_skew == pytest.approx(5.0, abs=0.2)
    assert node.lag is not None and node.lag < 1.0
    healthy, reason = snap.replica_check("replica1", 1.0)
    assert healthy, reason
    other = snap.nodes["replica2"]
    assert other.clock_skew is not None and abs(other.clock_skew) < 0.2
    assert node.to_json()["lag_raw_seconds"] == pytest.approx(node.lag_raw, abs=1e-5)


def test_a_replica_clock_behind_no_longer_hides_its_lag(
    sandbox: SandboxHandle, writer: HeartbeatWriter
) -> None:
    """A replica 2.5 s behind (its SQL thread running, held on the heartbeat table by a
    lock) on a clock 5 s slow read as -2.5 s of lag: healthy, serving stale reads."""
    sandbox.wait_replicated()
    with sandbox.connect("replica1") as conn, conn.cursor() as cur:
        cur.execute("LOCK TABLES datatier.heartbeat READ")
        try:
            time.sleep(2.5)
            monitor = one_round(sandbox, {"replica1": -5.0})
            try:
                snap = monitor.measure_once()
            finally:
                monitor.stop()
        finally:
            cur.execute("UNLOCK TABLES")
    sandbox.wait_replicated()
    node = snap.nodes["replica1"]
    assert node.replica is not None and node.replica.threads_ok, "lagging, not stopped"
    assert node.lag_raw is not None and node.lag_raw < -2.0
    assert node.lag is not None and node.lag >= 2.3
    healthy, reason = snap.replica_check("replica1", 1.0)
    assert not healthy and reason.startswith("lagging"), reason


def skewed(conn: Connection, seconds: float) -> Connection:
    with conn.cursor() as cur:
        cur.execute("SET @@timestamp = UNIX_TIMESTAMP(NOW(6)) + %s", (seconds,))
    return conn


def test_measure_lag_takes_the_skew_off_both_ways(
    sandbox: SandboxHandle, writer: HeartbeatWriter
) -> None:
    """What a backup's source choice and the cache warmer read."""
    mysql = sandbox.config.mysql
    primary = endpoint(mysql, "primary")
    sandbox.wait_replicated()
    with connect(endpoint(mysql, "replica1")) as conn:
        check = measure_lag(skewed(conn, 5.0), "replica", primary)
    assert check.method == "heartbeat" and check.lag is not None and check.lag < 1.0
    with sandbox.connect("replica1") as held, held.cursor() as cur:
        cur.execute("LOCK TABLES datatier.heartbeat READ")
        try:
            time.sleep(2.5)
            with connect(endpoint(mysql, "replica1")) as conn:
                check = measure_lag(skewed(conn, -5.0), "replica", primary)
        finally:
            cur.execute("UNLOCK TABLES")
    sandbox.wait_replicated()
    assert check.method == "heartbeat" and check.lag is not None and check.lag >= 2.3
    assert check.exceeds(1.0)
