"""The router's selection logic against hand-made snapshots (no MySQL: a fake connector).

The snapshots are what the monitor thread publishes; the connector records which endpoint
would have been opened instead of opening it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest

from datatier.config import Config, HealthSettings, MySQLNode, MySQLSettings
from datatier.errors import ServiceUnavailable, UsageError
from datatier.mysql.connection import Endpoint
from datatier.mysql.replica_status import ReplicaStatus
from datatier.mysql.session import SessionKeeper, SessionState
from datatier.replication.router import Router
from datatier.replication.snapshot import NodeHealth, Snapshot, hold_lagging
from datatier.typedtoml import Secret

NODES = {
    "primary": MySQLNode(port=3306, role="primary"),
    "replica1": MySQLNode(port=3307, role="replica"),
    "replica2": MySQLNode(port=3308, role="replica"),
}
CONFIG = Config(
    mysql=MySQLSettings(password=Secret("s3cret-pw"), nodes=NODES),
    health=HealthSettings(replica_max_lag=2.0),
)


def replica(name: str, lag: float | None, io: str = "Yes", sql: str = "Yes") -> NodeHealth:
    return NodeHealth(
        name=name,
        role="replica",
        host="127.0.0.1",
        port=NODES[name].port,
        reachable=True,
        read_only=True,
        replica=ReplicaStatus(flavour="mariadb", io_running=io, sql_running=sql),
        lag=lag,
        checked=time.monotonic(),
    )


def primary(read_only: bool = False, reachable: bool = True) -> NodeHealth:
    return NodeHealth(
        name="primary",
        role="primary",
        host="127.0.0.1",
        port=3306,
        reachable=reachable,
        error="" if reachable else "Connection refused",
        read_only=read_only,
        lag=0.05,
        checked=time.monotonic(),
    )


def snapshot(*nodes: NodeHealth, finished: float | None = None, **lagging: Any) -> Snapshot:
    """A snapshot of ``nodes``, each checked just now (module-level nodes are built early)."""
    now = time.monotonic()
    return Snapshot(
        nodes=MappingProxyType({n.name: replace(n, checked=now) for n in nodes}),
        round=1,
        interval=1.0,
        stale_after=3.0,
        finished=time.monotonic() if finished is None else finished,
        lagging=MappingProxyType(lagging.get("held", {})),
    )


class FakeMonitor:
    def __init__(self, snap: Snapshot | None) -> None:
        self.snapshot = snap
        self.thresholds: list[float] = []

    def register_threshold(self, max_lag: float) -> None:
        self.thresholds.append(max_lag)


class Recorder:
    """A connector that 'connects' by returning the endpoint's name; ``down`` refuse."""

    def __init__(self, down: set[str] | None = None) -> None:
        self.down = down or set()
        self.opened: list[str] = []

    def __call__(self, ep: Endpoint, database: str | None) -> Any:
        if ep.name in self.down:
            raise ServiceUnavailable(f"cannot connect to MySQL {ep.label}: refused")
        self.opened.append(ep.name)
        return ep.name


class NoSession(SessionKeeper):
    """The fakes are not MySQL connections: the pool neither resets nor pings them."""

    def opened(self, conn: Any) -> SessionState:
        return SessionState(None)

    def reset(self, conn: Any, state: SessionState) -> None:
        pass

    @staticmethod
    def ping(conn: Any) -> None:
        pass


NO_SESSION: dict[str, object] = {"keeper": NoSession()}


def router(snap: Snapshot | None, rec: Recorder | None = None, **kw: Any) -> Router:
    return Router(
        CONFIG, FakeMonitor(snap), connector=rec or Recorder(), pool_options=NO_SESSION, **kw
    )


def got(r: Router, *args: Any, **kw: Any) -> Any:
    """What the routed connection is (the fake's value); the connection is returned."""
    conn = r.connection(*args, **kw)
    value = conn.raw
    conn.close()
    return value


HEALTHY = (primary(), replica("replica1", 0.4), replica("replica2", 0.2))


def test_write_goes_to_the_primary() -> None:
    r = router(snapshot(*HEALTHY))
    assert got(r, "write") == "primary"
    assert r.route("write").node == "primary"


def test_read_picks_the_least_lagged_fit_replica() -> None:
    r = router(snapshot(*HEALTHY))
    assert [got(r, "read", max_lag=1.0) for _ in range(3)] == ["replica2"] * 3
    route = r.route("read", 1.0)
    assert route.lag == 0.2 and not route.fallback and route.reason.startswith("lag")


def test_read_avoids_a_lagging_replica() -> None:
    r = router(snapshot(primary(), replica("replica1", 0.4), replica("replica2", 5.0)))
    assert got(r, "read", max_lag=1.0) == "replica1"
    assert got(r, "read", max_lag=10.0) == "replica1"  # least lagged still wins


def test_round_robin_alternates_among_fit_replicas() -> None:
    r = router(snapshot(*HEALTHY), policy="round_robin")
    seen = [got(r, "read", max_lag=1.0) for _ in range(4)]
    assert sorted(seen[:2]) == ["replica1", "replica2"] and seen[:2] == seen[2:]
    r = router(snapshot(primary(), replica("replica1", 0.4), replica("replica2", 5.0)))
    assert {got(r, "read", max_lag=1.0) for _ in range(4)} == {"replica1"}


@pytest.mark.parametrize(
    ("node", "why"),
    [
        (replica("replica1", 0.1, sql="No"), "io thread Yes, sql thread No"),
        (replica("replica1", 0.1, io="No"), "io thread No, sql thread Yes"),
        (replica("replica1", 3.0, io="Connecting"), "lagging: 3.000 s > 1 s (io thread Conn"),
        (replica("replica1", None), "no heartbeat seen"),
        (replace(replica("replica1", 0.1), reachable=False, error="gone"), "unreachable: gone"),
        (replica("replica1", 3.0), "lagging: 3.000 s > 1 s"),
    ],
)
def test_unfit_replicas_without_fallback_raise(node: NodeHealth, why: str) -> None:
    r = router(snapshot(primary(), node, replica("replica2", None, sql="No")))
    with pytest.raises(ServiceUnavailable) as err:
        got(r, "read", max_lag=1.0)
    message = str(err.value)
    assert f"replica1: {why}" in message and "replica2: io thread Yes, sql thread No" in message
    assert "no replica within 1 s" in message and "fallback to the primary is off" in message


def test_a_reconnecting_io_thread_alone_does_not_take_a_replica_out() -> None:
    """A primary restart puts every replica's IO thread in Connecting: they stay in rotation
    while their heartbeat lag (the age of the newest beat they applied) is within the
    limit, and go out once it is not. Was: every replica out at once."""
    r = router(snapshot(primary(reachable=False), replica("replica1", 0.4, io="Connecting")))
    route = r.route("read", 1.0)
    assert route.node == "replica1" and "io thread Connecting" in route.reason, route
    r = router(snapshot(primary(reachable=False), replica("replica1", 0.4, io="Preparing")))
    assert r.route("read", 1.0).node == "replica1"
    r = router(snapshot(primary(reachable=False), replica("replica1", 1.5, io="Connecting")))
    with pytest.raises(ServiceUnavailable, match=r"lagging: 1\.500 s > 1 s"):
        r.route("read", 1.0)


def test_fallback_to_the_primary() -> None:
    snap = snapshot(primary(), replica("replica1", 3.0), replica("replica2", 9.0))
    r = router(snap, fallback_to_primary=True)
    assert got(r, "read", max_lag=1.0) == "primary"
    route = r.route("read", 1.0)
    assert route.fallback and route.node == "primary" and "no replica fits" in route.reason
    assert r.route("read", 5.0).node == "replica1"  # fit replicas still come first


def test_fallback_needs_a_writable_primary() -> None:
    snap = snapshot(primary(reachable=False), replica("replica1", 3.0))
    with pytest.raises(ServiceUnavailable, match="no primary to fall back to"):
        got(router(snap, fallback_to_primary=True), "read", max_lag=1.0)


def test_refused_connection_tries_the_next_candidate() -> None:
    rec = Recorder(down={"replica2"})
    r = router(snapshot(*HEALTHY), rec, fallback_to_primary=True)
    assert got(r, "read", max_lag=1.0) == "replica1"
    rec.down |= {"replica1"}
    assert got(r, "read", max_lag=1.0) == "replica1"  # its pooled connection still works
    r.pool("replica1").drain()  # (the monitor's next round would mark it unreachable)
    assert got(r, "read", max_lag=1.0) == "primary"
    rec.down |= {"primary"}
    r.pool("primary").drain()
    with pytest.raises(ServiceUnavailable, match="no read node gave a connection") as err:
        got(r, "read", max_lag=1.0)
    assert "s3cret-pw" not in str(err.value)
    with pytest.raises(ServiceUnavailable, match="no write node gave"):
        got(r, "write")


def test_write_refusals() -> None:
    with pytest.raises(ServiceUnavailable, match=r"no writable primary \(primary: read_only\)"):
        got(router(snapshot(primary(read_only=True), *HEALTHY[1:])), "write")
    with pytest.raises(ServiceUnavailable, match="primary: unreachable: Connection refused"):
        got(router(snapshot(primary(reachable=False), *HEALTHY[1:])), "write")


def test_write_follows_a_single_promoted_node() -> None:
    promoted = replace(replica("replica1", 0.1, io="No", sql="No"), read_only=False)
    snap = snapshot(primary(reachable=False), promoted, replica("replica2", 0.1))
    assert got(router(snap), "write") == "replica1"
    # writable but still replicating (read_only switched off, not promoted): no write target
    for io, sql in (("Yes", "Yes"), ("Connecting", "Yes"), ("No", "Yes"), ("Connecting", "No")):
        following = replace(replica("replica1", 0.1, io=io, sql=sql), read_only=False)
        with pytest.raises(ServiceUnavailable, match="replica1: writable but still replicating"):
            got(router(snapshot(primary(reachable=False), following)), "write")
    both = replace(replica("replica2", 0.1, io="No", sql="No"), read_only=False)
    with pytest.raises(ServiceUnavailable, match="several writable nodes"):
        got(router(snapshot(primary(reachable=False), promoted, both)), "write")


def follower(name: str, source_id: int, server_id: int) -> NodeHealth:
    """A replica of the node whose server_id is ``source_id``."""
    node = replica(name, 0.1)
    assert node.replica is not None
    return replace(
        node, server_id=server_id, replica=replace(node.replica, source_server_id=source_id)
    )


def test_a_former_primary_back_writable_after_a_hand_failover_gets_no_writes() -> None:
    """Hand failover: replica1 (server 2) promoted, replica2 repointed to it; the old
    primary (server 1, the configured one) comes back writable. The write target stays
    replica1: writes on the old primary would fork the data."""
    old = replace(primary(), server_id=1)
    promoted = replace(replica("replica1", 0.1, io="No", sql="No"), read_only=False, server_id=2)
    snap = snapshot(old, promoted, follower("replica2", 2, 3))
    route = router(snap).route("write")
    assert route.node == "replica1" and "not primary" in route.reason
    # before the repoint (nobody follows either), or with replica2 still on the old
    # primary: the configured primary, as before
    assert router(snapshot(old, promoted, follower("replica2", 1, 3))).route("write").node == (
        "primary"
    )
    alone = replace(replica("replica2", 0.1, io="No", sql="No"), server_id=3)
    assert router(snapshot(old, promoted, alone)).route("write").node == "primary"
    # the old primary made a replica of replica1 but left writable: replica1 still
    demoted = replace(old, replica=ReplicaStatus("mariadb", "Yes", "Yes", source_server_id=2))
    assert router(snapshot(demoted, promoted)).route("write").node == "replica1"


def test_a_failover_half_done_has_no_write_target() -> None:
    """Two writable nodes each followed by one node (replica2 still on the old primary,
    the old primary already on replica1 but writable): which holds the newest writes
    cannot be told from here, so no write target (a split brain is worse than none)."""
    old = replace(
        primary(), server_id=1, replica=ReplicaStatus("mariadb", "Yes", "Yes", source_server_id=2)
    )
    promoted = replace(replica("replica1", 0.1, io="No", sql="No"), read_only=False, server_id=2)
    snap = snapshot(old, promoted, follower("replica2", 1, 3))
    with pytest.raises(ServiceUnavailable, match=r"primary, replica1 are each followed by 1"):
        router(snap).route("write")


def test_no_or_stale_snapshot_routes_nothing() -> None:
    with pytest.raises(ServiceUnavailable, match="no measurement yet"):
        got(router(None), "write")
    stale = snapshot(*HEALTHY, finished=time.monotonic() - 60)
    for intent in ("read", "write"):
        with pytest.raises(ServiceUnavailable, match="stale"):
            got(router(stale, fallback_to_primary=True), intent)


def test_hysteresis_holds_a_recovering_replica_out() -> None:
    nodes = {"replica1": replica("replica1", 0.8), "replica2": replica("replica2", 0.2)}
    held = hold_lagging({1.0: frozenset({"replica1"})}, nodes, frozenset({1.0}), 0.5)
    r = router(snapshot(primary(), *nodes.values(), held=held), policy="round_robin")
    assert {got(r, "read", max_lag=1.0) for _ in range(4)} == {"replica2"}


def test_reads_register_their_threshold_and_default_to_config() -> None:
    mon = FakeMonitor(snapshot(*HEALTHY))
    r = Router(CONFIG, mon, connector=Recorder(), pool_options=NO_SESSION)
    got(r, "read")
    got(r, "read", max_lag=0.25)
    assert mon.thresholds == [2.0, 0.25]


def test_bad_arguments() -> None:
    r = router(snapshot(*HEALTHY))
    with pytest.raises(UsageError, match="intent 'delete'"):
        got(r, "delete")
    for bad in (-1.0, 0.0, 0, float("nan"), float("inf"), "soon"):
        with pytest.raises(UsageError, match="max_lag"):
            got(r, "read", max_lag=bad)
    with pytest.raises(UsageError, match="reads only"):
        got(r, "write", max_lag=1.0)
    with pytest.raises(UsageError, match="policy"):
        Router(CONFIG, FakeMonitor(None), policy="random")  # type: ignore[arg-type]


# -- read-your-writes --------------------------------------------------------------------------
class FakeConn:
    """Answers the GTID wait with ``answer``; records statements and whether it was closed."""

    def __init__(self, name: str, answer: int) -> None:
        self.name, self.answer = name, answer
        self.statements: list[tuple[str, Any]] = []
        self.closed = False

    def cursor(self) -> FakeConn:
        return self

    def __enter__(self) -> FakeConn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, statement: str, args: Any = None) -> None:
        self.statements.append((statement, args))

    def fetchone(self) -> tuple[int]:
        return (self.answer,)

    def close(self) -> None:
        self.closed = True


def ryw_router(snap: Snapshot, answers: dict[str, int]) -> tuple[Router, list[Any]]:
    opened: list[Any] = []  # FakeConns, standing in for the pools' pymysql connections

    def connector(ep: Endpoint, database: str | None) -> Any:
        opened.append(FakeConn(ep.name, answers.get(ep.name, 0)))
        return opened[-1]

    return Router(CONFIG, FakeMonitor(snap), connector=connector, pool_options=NO_SESSION), opened


def test_read_your_writes_waits_on_the_replica() -> None:
    r, opened = ryw_router(snapshot(*HEALTHY), {"replica2": 0})
    conn, route = r.connection_with_route("read", 1.0, after="0-1-42", wait_timeout=0.5)
    assert route.node == "replica2" and not route.fallback and "reached 0-1-42" in route.reason
    fake: Any = conn.raw
    assert opened == [fake] and fake.statements == [
        ("SELECT MASTER_GTID_WAIT(%s, %s)", ("0-1-42", 0.5))
    ]


def test_read_your_writes_falls_back_to_the_primary_on_timeout() -> None:
    r, opened = ryw_router(snapshot(*HEALTHY), {"replica2": -1})
    conn, route = r.connection_with_route("read", 1.0, after="0-1-42", wait_timeout=0.2)
    assert route.node == "primary" and route.fallback  # even with fallback_to_primary off
    assert "replica2 did not reach 0-1-42 in 0.2 s" in route.reason
    assert [c.name for c in opened] == ["replica2", "primary"]
    assert r.pool("replica2").stats().idle == 1  # the replica's connection went back
    assert conn.raw is opened[1] and not conn.raw.statements


def test_read_your_writes_on_mysql() -> None:
    mysql = replace(
        replica("replica1", 0.1),
        replica=ReplicaStatus(flavour="mysql", io_running="Yes", sql_running="Yes"),
    )
    r, opened = ryw_router(snapshot(primary(), mysql), {"replica1": 0})
    _, route = r.connection_with_route("read", 1.0, after="uuid:1-9")
    assert route.node == "replica1"
    assert opened[0].statements[0][0] == "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)"


def test_read_your_writes_bad_arguments() -> None:
    r, _ = ryw_router(snapshot(*HEALTHY), {})
    with pytest.raises(UsageError, match="reads only"):
        r.connection("write", after="0-1-1")
    with pytest.raises(UsageError, match="wait_timeout"):
        r.connection("read", after="0-1-1", wait_timeout=-1)


# -- pools: draining when a node leaves the fit set, metrics -----------------------------------
def test_a_replica_leaving_the_fit_set_is_drained() -> None:
    mon = FakeMonitor(snapshot(*HEALTHY))
    r = Router(CONFIG, mon, connector=Recorder(), pool_options=NO_SESSION, policy="round_robin")
    for _ in range(4):
        got(r, "read", max_lag=1.0)
    got(r, "write")
    assert {p.node: p.idle for p in r.stats().pools} == {"primary": 1, "replica1": 1, "replica2": 1}
    held = r.connection("read", max_lag=1.0)
    stopped = replace(replica("replica2", 0.2), replica=ReplicaStatus("mariadb", "Yes", "No"))
    mon.snapshot = replace(snapshot(primary(), replica("replica1", 0.4), stopped), round=2)
    assert {got(r, "read", max_lag=1.0) for _ in range(3)} == {"replica1"}
    pools = {p.node: p for p in r.stats().pools}
    assert pools["replica2"].idle == 0 and pools["replica2"].drains_total == 1
    assert pools["replica1"].idle == 1 and pools["primary"].idle == 1
    held.close()  # whatever it was, it goes back (or closes) cleanly
    assert r.pool("replica2").stats().idle == 0


def test_a_replica_fit_at_a_looser_limit_in_use_is_kept() -> None:
    mon = FakeMonitor(snapshot(*HEALTHY))
    r = Router(CONFIG, mon, connector=Recorder(), pool_options=NO_SESSION)
    got(r, "read", max_lag=30.0)  # 30 s is now a limit in use
    slow = replace(snapshot(primary(), replica("replica1", 0.4), replica("replica2", 5.0)), round=2)
    mon.snapshot = slow
    assert got(r, "read", max_lag=1.0) == "replica1"
    assert r.pool("replica2").stats().idle == 1  # still fits max_lag=30
    assert got(r, "read", max_lag=30.0) == "replica1"


def test_a_demoted_primary_is_drained_and_writes_follow_the_promotion() -> None:
    mon = FakeMonitor(snapshot(*HEALTHY))
    r = Router(CONFIG, mon, connector=Recorder(), pool_options=NO_SESSION)
    assert got(r, "write") == "primary"
    promoted = replace(replica("replica1", None, io="No", sql="No"), read_only=False)
    mon.snapshot = replace(
        snapshot(primary(read_only=True), promoted, replica("replica2", 0.1)), round=2
    )
    assert got(r, "write") == "replica1"
    assert r.pool("primary").stats().open == 0


def test_metrics_collector_and_close() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from datatier.replication.routermetrics import RouterCollector

    snap = snapshot(primary(), replica("replica1", 3.0), replica("replica2", 9.0))
    r = router(snap, fallback_to_primary=True)
    registry = CollectorRegistry()
    registry.register(RouterCollector(r))
    got(r, "read", max_lag=1.0)
    got(r, "write")
    with pytest.raises(ServiceUnavailable):
        router(snap).connection("read", max_lag=1.0)  # another router: not counted here
    text = generate_latest(registry).decode()
    assert 'datatier_router_routes_total{fallback="true",intent="read",node="primary"} 1.0' in text
    assert (
        'datatier_router_routes_total{fallback="false",intent="write",node="primary"} 1.0' in text
    )
    assert 'datatier_pool_connections{node="primary",state="idle"} 1.0' in text
    assert 'datatier_pool_checkouts_total{node="primary"} 2.0' in text
    assert 'datatier_pool_wait_seconds_count{node="primary"} 0.0' in text
    assert 'datatier_router_unroutable_total{intent="read"} 0.0' in text
    r.close()
    assert 'datatier_pool_connections{node="primary",state="idle"} 0.0' in (
        generate_latest(registry).decode()
    )
    with pytest.raises(ServiceUnavailable, match="router is closed"):
        r.connection("write")
