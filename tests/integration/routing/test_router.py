"""The lag-aware router on the sandbox's real MariaDB primary and two GTID replicas.

A real heartbeat writer and monitor (0.1 s intervals) feed the router; every connection it
hands out is asked for ``@@server_id`` to see where it really landed. Lag is real: replica2's
SQL thread is blocked by ``LOCK TABLES ... WRITE`` while the primary writes that table (both
threads keep running), or the SQL threads are stopped. Every test restores replication in
``finally`` and waits until both replicas caught up: the sandbox is shared by the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest

from datatier.errors import ServiceUnavailable
from datatier.mysql.connection import Connection
from datatier.mysql.pool import PooledConnection
from datatier.replication.monitor import Monitor
from datatier.replication.router import Router, gtid_position
from tests.integration.conftest import SandboxHandle, sql, wait_for
from tests.integration.routing_support import routable, running_monitor

MAX_LAG = 0.5
DB = "router_test"


def server_id_of(conn: Connection | PooledConnection) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@server_id")
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def landed(router: Router, intent: str = "read", max_lag: float | None = MAX_LAG) -> int:
    """The server_id a fresh routed connection reaches (closed afterwards)."""
    with router.connection(intent, None if intent == "write" else max_lag) as conn:
        return server_id_of(conn)


@pytest.fixture(scope="module")
def ids(sandbox: SandboxHandle) -> dict[str, int]:
    found = {}
    for node in ("primary", "replica1", "replica2"):
        with sandbox.connect(node) as conn:
            found[node] = server_id_of(conn)
    return found


@pytest.fixture(scope="module")
def monitor(sandbox: SandboxHandle) -> Iterator[Monitor]:
    with running_monitor(sandbox, DB) as mon:
        sql(sandbox, "primary", f"CREATE TABLE IF NOT EXISTS {DB}.t (id SERIAL, v INT)")
        sandbox.wait_replicated()
        yield mon


@pytest.fixture
def router(sandbox: SandboxHandle, monitor: Monitor) -> Iterator[Router]:
    r = Router(sandbox.config, monitor, policy="round_robin")
    for node in ("replica1", "replica2"):  # a previous test's lag has gone (hysteresis too)
        wait_for(partial(routable, r, node), 15)
    yield r
    r.close()  # its pools, and its listener on the shared monitor


def test_reads_go_to_the_replicas(router: Router, ids: dict[str, int]) -> None:
    seen = [landed(router) for _ in range(6)]
    assert set(seen) == {ids["replica1"], ids["replica2"]}  # round robin uses both
    with Router(router.config, router.monitor) as least:
        assert landed(least) in (ids["replica1"], ids["replica2"])
        route = least.route("read", MAX_LAG)
        assert route.lag is not None and route.lag <= MAX_LAG and not route.fallback


def test_writes_go_to_the_primary(
    sandbox: SandboxHandle, router: Router, ids: dict[str, int]
) -> None:
    for _ in range(3):
        with router.connection("write") as conn, conn.cursor() as cur:
            assert server_id_of(conn) == ids["primary"]
            cur.execute("SELECT @@read_only")
            assert cur.fetchone() == (0,)
            cur.execute(f"INSERT INTO {DB}.t (v) VALUES (7)")
    sandbox.wait_replicated()


def test_reads_avoid_a_lagging_replica(
    sandbox: SandboxHandle, router: Router, ids: dict[str, int]
) -> None:
    locker = sandbox.connect("replica2")
    try:
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES {DB}.t WRITE")
        sql(sandbox, "primary", f"INSERT INTO {DB}.t (v) VALUES (1)")
        wait_for(lambda: not routable(router, "replica2"), 10)
        _, refused = router.read_candidates(MAX_LAG)
        assert any(r.startswith("replica2: lagging") for r in refused), refused
        snap = router.monitor.snapshot
        assert snap is not None
        status = snap.nodes["replica2"].replica
        assert status is not None and status.threads_ok  # real lag, not a stopped thread
        assert {landed(router) for _ in range(8)} == {ids["replica1"]}
        assert landed(router, "write") == ids["primary"]
        # A looser limit still admits replica2 while its lag is below it.
        assert ids["replica2"] in {landed(router, max_lag=30.0) for _ in range(4)}
    finally:
        locker.close()  # releases the table lock; replica2 catches up
        sandbox.wait_replicated()
    wait_for(lambda: routable(router, "replica2"), 15)
    assert ids["replica2"] in {landed(router) for _ in range(4)}


def test_no_fit_replica_raises_or_falls_back(
    sandbox: SandboxHandle, router: Router, ids: dict[str, int]
) -> None:
    fallback = Router(sandbox.config, router.monitor, fallback_to_primary=True)
    for node in ("replica1", "replica2"):
        sql(sandbox, node, "STOP SLAVE SQL_THREAD")
    try:
        wait_for(lambda: not router.read_candidates(MAX_LAG)[0], 5)
        with pytest.raises(ServiceUnavailable) as err:
            router.connection("read", max_lag=MAX_LAG)
        message = str(err.value)
        for node in ("replica1", "replica2"):
            assert f"{node}: io thread Yes, sql thread No" in message
        assert "fallback to the primary is off" in message
        assert sandbox.config.mysql.password.reveal() not in message
        conn, route = fallback.connection_with_route("read", MAX_LAG)
        with conn:
            assert server_id_of(conn) == ids["primary"]
        assert route.fallback and route.node == "primary"
        assert landed(router, "write") == ids["primary"]
    finally:
        for node in ("replica1", "replica2"):
            sql(sandbox, node, "START SLAVE")
        sandbox.wait_replicated()
    wait_for(lambda: bool(router.read_candidates(MAX_LAG)[0]), 15)
    assert landed(fallback) in (ids["replica1"], ids["replica2"])
    fallback.close()


def test_read_your_writes(sandbox: SandboxHandle, router: Router, ids: dict[str, int]) -> None:
    """replica2 cannot apply the write (table locked): reads sent there wait, time out and
    use the primary; reads on replica1 wait until it applied the write. Every read sees it."""
    locker = sandbox.connect("replica2")
    try:
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES {DB}.t WRITE")
        with router.connection("write") as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO {DB}.t (v) VALUES (4242)")
            position = gtid_position(conn)
        assert position
        landed_on = set()
        for _ in range(4):  # round robin: both replicas get asked
            conn, route = router.connection_with_route(
                "read", 30.0, after=position, wait_timeout=0.3
            )
            with conn, conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {DB}.t WHERE v = 4242")
                assert cur.fetchone() == (1,), route
                landed_on.add(server_id_of(conn))
            if route.fallback:
                assert "replica2 did not reach" in route.reason
        assert landed_on == {ids["replica1"], ids["primary"]}
    finally:
        locker.close()
        sandbox.wait_replicated()
