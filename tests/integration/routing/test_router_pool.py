"""The router's per-node pools on the sandbox's real MariaDB primary and two GTID replicas.

Shown here: checkouts reuse connections and get them back clean (COM_RESET_CONNECTION);
a connection the server killed is replaced after the idle pre-ping; a replica whose SQL
thread stops is drained within two monitor rounds and reads move; a promoted replica takes
writes (the topology is restored in ``finally``); the metrics reach ``/metrics`` of a health
server in the same process; ``routing.open`` starts and stops everything.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Iterator

import pytest

from datatier import routing
from datatier.errors import ServiceUnavailable, UsageError
from datatier.mysql.connection import connect, endpoint
from datatier.mysql.pool import NodePool, PooledConnection, PoolExhausted, PoolSettings
from datatier.mysql.session import SessionKeeper
from datatier.replication.monitor import Monitor
from datatier.replication.router import Router
from datatier.replication.snapshot import Snapshot
from tests.integration.conftest import SandboxHandle, sql, wait_for
from tests.integration.routing_support import routable, running_monitor, wait_all_routable

DB = "router_pool_test"
HTTP_PORT = int(os.environ.get("DATATIER_TEST_HTTP_PORT", "26100")) + 150


def one(conn: PooledConnection, statement: str) -> tuple[object, ...]:
    with conn.cursor() as cur:
        cur.execute(statement)
        row = cur.fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture(scope="module")
def monitor(sandbox: SandboxHandle) -> Iterator[Monitor]:
    with running_monitor(sandbox, DB) as mon:
        sql(sandbox, "primary", f"CREATE TABLE {DB}.t (id SERIAL, v INT)")
        sandbox.wait_replicated()
        yield mon


@pytest.fixture
def router(sandbox: SandboxHandle, monitor: Monitor) -> Iterator[Router]:
    r = Router(sandbox.config, monitor, policy="round_robin", pool=PoolSettings(size=3))
    wait_all_routable(r)
    yield r
    r.close()


def test_checkouts_reuse_connections_and_return_them_clean(router: Router) -> None:
    ids = set()
    for _ in range(20):
        with router.connection("write") as conn:
            ids.add(one(conn, "SELECT CONNECTION_ID()")[0])
    assert len(ids) == 1  # one connection, reused 20 times
    stats = {p.node: p for p in router.stats().pools}["primary"]
    assert stats.opened_total == 1 and stats.checkouts_total == 20 and stats.idle == 1

    with router.connection("write") as conn, conn.cursor() as cur:
        cur.execute("SET @mark = 42, time_zone = '+05:00', sql_log_bin = 0")
        conn.autocommit(False)
        cur.execute(f"INSERT INTO {DB}.t (v) VALUES (99)")  # never committed
        cur.execute(f"CREATE TEMPORARY TABLE {DB}.scratch (x INT)")
        cur.execute("SELECT GET_LOCK('router_pool_test', 0)")
        used = one(conn, "SELECT CONNECTION_ID()")[0]
    with router.connection("write") as conn:
        assert one(conn, "SELECT CONNECTION_ID()")[0] == used  # the same, reset
        utc = "TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())"  # the session's offset
        assert one(conn, f"SELECT @mark, {utc}, @@autocommit, @@sql_log_bin") == (None, 0, 1, 1)
        assert one(conn, "SELECT @@character_set_client, @@collation_connection") == (
            "utf8mb4",
            "utf8mb4_general_ci",
        )
        assert one(conn, f"SELECT COUNT(*) FROM {DB}.t WHERE v = 99") == (0,)
        assert one(conn, "SELECT IS_FREE_LOCK('router_pool_test')") == (1,)
        with pytest.raises(Exception, match="scratch' doesn't exist"), conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {DB}.scratch")


def test_the_restore_statement_rides_with_the_reset(sandbox: SandboxHandle) -> None:
    """A keeper whose mode differs from the server's global (autocommit off here, as a
    server configured so would) pipelines its restore statement behind the reset."""
    ep = endpoint(sandbox.config.mysql, "replica1")
    keeper = SessionKeeper(autocommit=False)
    pool = NodePool("replica1", lambda: connect(ep), PoolSettings(size=1), keeper=keeper)
    try:
        with pool.checkout() as conn:
            assert one(conn, "SELECT @@time_zone") == ("+00:00",)  # as connect() opened it
            used = one(conn, "SELECT CONNECTION_ID()")
            conn.autocommit(True)
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+03:00', @mark = 1")
        with pool.checkout() as conn:
            assert one(conn, "SELECT CONNECTION_ID()") == used
            assert one(conn, "SELECT @@autocommit, @mark, @@character_set_client") == (
                0,
                None,
                "utf8mb4",
            )
            assert not conn.raw.get_autocommit()
        assert SessionKeeper().opened(connect(ep)).restore is None  # the sandbox: UTC, autocommit
    finally:
        pool.close()


def test_a_killed_idle_connection_is_replaced_after_the_pre_ping(
    sandbox: SandboxHandle, monitor: Monitor
) -> None:
    settings = PoolSettings(size=2, pre_ping_after=0.05)
    with Router(sandbox.config, monitor, pool=settings) as router:
        with router.connection("write") as conn:
            victim = one(conn, "SELECT CONNECTION_ID()")[0]
        sql(sandbox, "primary", f"KILL {victim}")
        time.sleep(0.1)
        with router.connection("write") as conn:
            assert one(conn, "SELECT CONNECTION_ID()")[0] != victim
        stats = router.pool("primary").stats()
        assert stats.closed_total == {"ping_failed": 1} and stats.open == 1


def test_exhausted_pool_says_so(sandbox: SandboxHandle, monitor: Monitor) -> None:
    settings = PoolSettings(size=1, max_overflow=0, timeout=0.2)
    with Router(sandbox.config, monitor, pool=settings) as router:
        held = router.connection("write")
        with pytest.raises(ServiceUnavailable, match=r"pool of primary exhausted: 1 connections"):
            router.connection("write")
        releaser = threading.Timer(0.1, held.close)
        releaser.start()
        big = PoolSettings(size=1, max_overflow=0, timeout=5.0)
        router.pool("primary").settings = big  # a patient checkout gets the returned one
        with router.connection("write") as conn:
            assert one(conn, "SELECT 1") == (1,)
        assert router.pool("primary").stats().timeouts_total == 1
        assert issubclass(PoolExhausted, ServiceUnavailable)


def test_stopped_sql_thread_is_drained_within_two_rounds_and_reads_move(
    sandbox: SandboxHandle, router: Router, monitor: Monitor
) -> None:
    held = [router.connection("read", 0.5) for _ in range(4)]  # round robin: 2 on each
    assert {c.node for c in held} == {"replica1", "replica2"}
    on_replica2 = next(c for c in held if c.node == "replica2")
    for conn in held:
        if conn is not on_replica2:
            conn.close()
    assert router.pool("replica2").stats().idle == 1
    drained_at: list[int] = []

    def watch(snap: Snapshot) -> None:  # runs on the monitor thread after the router's sync
        if not drained_at and router.pool("replica2").stats().idle == 0:
            drained_at.append(snap.round)

    monitor.add_listener(watch)
    try:
        sql(sandbox, "replica2", "STOP SLAVE SQL_THREAD")
        snap = monitor.snapshot
        assert snap is not None
        stopped_in = snap.round
        wait_for(lambda: bool(drained_at), 5)
        assert drained_at[0] <= stopped_in + 2, (stopped_in, drained_at)
        assert {router.connection_with_route("read", 0.5)[1].node for _ in range(6)} == {"replica1"}
        on_replica2.close()  # in use during the drain: closed, not pooled
        stats = router.pool("replica2").stats()
        assert stats.open == 0 and stats.closed_total.get("drained") == 2
    finally:
        monitor.remove_listener(watch)
        sql(sandbox, "replica2", "START SLAVE SQL_THREAD")
        sandbox.wait_replicated()
    wait_all_routable(router)
    seen = set()
    for _ in range(4):
        with router.connection("read", 0.5) as conn:
            seen.add(conn.node)
    assert seen == {"replica1", "replica2"}  # replica2's pool reopened on demand


def test_a_promoted_replica_takes_writes(
    sandbox: SandboxHandle, router: Router, monitor: Monitor
) -> None:
    """Failover by hand: the primary turns read_only, replica1 stops replicating and turns
    writable. The test's writes on replica1 skip the binlog (sql_log_bin=0) and are removed,
    so GTID positions never diverge; everything is restored in ``finally``."""
    with router.connection("write") as conn:
        primary_id = one(conn, "SELECT @@server_id")[0]
    with sandbox.connect("replica1") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@server_id")
        replica1_id = cur.fetchone()[0]
    try:
        sql(sandbox, "primary", "SET GLOBAL read_only = 1")
        sql(sandbox, "replica1", "STOP SLAVE")
        sql(sandbox, "replica1", "SET GLOBAL read_only = 0")
        wait_for(lambda: _write_node(router) == "replica1", 5)
        with router.connection("write") as conn, conn.cursor() as cur:
            assert one(conn, "SELECT @@server_id, @@read_only") == (replica1_id, 0)
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"INSERT INTO {DB}.t (v) VALUES (-7)")
            assert one(conn, f"SELECT COUNT(*) FROM {DB}.t WHERE v = -7") == (1,)
            cur.execute(f"DELETE FROM {DB}.t WHERE v = -7")
        assert router.pool("primary").stats().open == 0  # the demoted primary was drained
        # replica1 replicates no more; replica2 still follows the demoted primary, so it never
        # sees a write made on replica1: no read fits (its lag is measured against the write
        # target's heartbeat, which cannot reach it), rather than a replica stale for ever.
        wait_for(lambda: not routable(router, "replica2"), 5)
        with pytest.raises(ServiceUnavailable, match="no replica within"):
            router.route("read", 0.5)
    finally:
        sql(sandbox, "replica1", "SET GLOBAL read_only = 1")
        sql(sandbox, "replica1", "START SLAVE")
        sql(sandbox, "primary", "SET GLOBAL read_only = 0")
        sandbox.wait_replicated()
    wait_for(lambda: _write_node(router) == "primary", 5)
    with router.connection("write") as conn:
        assert one(conn, "SELECT @@server_id, @@read_only") == (primary_id, 0)
    wait_all_routable(router)


def _write_node(router: Router) -> str | None:
    try:
        return router.route("write").node
    except ServiceUnavailable:
        return None


def test_bad_input(router: Router) -> None:
    with pytest.raises(UsageError, match="intent 'update': expected 'read' or 'write'"):
        router.connection("update")
    for bad in (0, 0.0, -1.0):
        with pytest.raises(UsageError, match="max_lag must be a finite number > 0"):
            router.connection("read", bad)
    assert router.stats().routes == {}  # nothing was routed


def test_open_serves_metrics_and_stops(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATATIER_HEALTH__INTERVAL", "0.1")
    monkeypatch.setenv("DATATIER_ROUTER__FALLBACK_TO_PRIMARY", "true")
    with routing.open(sandbox.config_path) as router:
        assert isinstance(router.monitor, Monitor) and router.monitor.alive()
        assert router.fallback_to_primary
        with router.connection("write") as conn:
            assert one(conn, "SELECT @@read_only") == (0,)
        server = routing.serve_health(router, ("127.0.0.1", HTTP_PORT))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            client = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=5)
            client.request("GET", "/metrics")
            body = client.getresponse().read().decode()
            client.close()
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
        assert "datatier_monitor_up 1" in body  # the health server's own series
        assert 'datatier_router_routes_total{fallback="false",intent="write",node="primary"}' in (
            body
        )
        assert 'datatier_pool_connections{node="primary",state="idle"} 1.0' in body
        monitor = router.monitor
    assert not monitor.alive()
    with pytest.raises(ServiceUnavailable, match="router is closed"):
        router.connection("write")
