"""The health HTTP server against hand-made snapshots (no MySQL: handlers only read memory).

A real :class:`Monitor` is built from a config but never started; tests set its snapshot
directly, which is exactly what the monitor thread does after a round.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest

from datatier.config import HealthSettings, MySQLNode, MySQLSettings
from datatier.metrics import build_registry, exposition
from datatier.mysql.replica_status import ReplicaStatus
from datatier.replication.health import BadRequest, HealthServer, parse_lag
from datatier.replication.metrics import ReplicationCollector
from datatier.replication.monitor import Monitor
from datatier.replication.snapshot import NodeHealth, Snapshot

NODES = {
    "primary": MySQLNode(port=3306, role="primary"),
    "replica1": MySQLNode(port=3307, role="replica"),
    "replica2": MySQLNode(port=3308, role="replica"),
}


def replica(name: str, lag: float | None, io: str = "Yes", sql: str = "Yes") -> NodeHealth:
    return NodeHealth(
        name=name,
        role="replica",
        host="127.0.0.1",
        port=NODES[name].port,
        reachable=True,
        read_only=True,
        server_id=2,
        replica=ReplicaStatus(flavour="mariadb", io_running=io, sql_running=sql),
        lag=lag,
        clock_offset=0.0,
        check_seconds=0.002,
        measured_at=time.time(),
        checked=time.monotonic(),
    )


PRIMARY = NodeHealth(
    name="primary",
    role="primary",
    host="127.0.0.1",
    port=3306,
    reachable=True,
    read_only=False,
    server_id=1,
    lag=0.1,
    clock_offset=0.0,
    check_seconds=0.001,
    measured_at=time.time(),
    checked=time.monotonic(),
)


def snapshot(*nodes: NodeHealth, age: float = 0.0, **kw: Any) -> Snapshot:
    """A round that ended ``age`` seconds ago; each node checked then (unless ``checked`` < 0:
    that node's check is ``-checked`` seconds old, as when it hangs)."""
    now = time.monotonic()
    fresh = [replace(n, checked=now - age if n.checked >= 0 else now + n.checked) for n in nodes]
    return Snapshot(
        nodes=MappingProxyType({n.name: n for n in fresh}),
        round=7,
        interval=1.0,
        stale_after=3.0,
        finished=time.monotonic() - age,
        **kw,
    )


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    mon = Monitor(MySQLSettings(nodes=NODES), HealthSettings(replica_max_lag=2.0))
    mon.snapshot = snapshot(PRIMARY, replica("replica1", 0.2), replica("replica2", 5.0))
    yield mon
    mon.stop()


@pytest.fixture
def server(monitor: Monitor) -> Iterator[HealthServer]:
    srv = HealthServer(("127.0.0.1", 0), monitor, default_lag=2.0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


class FixedSource:
    """A monitor stand-in for the collector: a fixed snapshot and liveness."""

    def __init__(self, snap: Snapshot | None, alive: bool) -> None:
        self.snapshot = snap
        self._alive = alive

    def alive(self) -> bool:
        return self._alive


def exposed_metrics(snap: Snapshot | None, alive: bool, default_lag: float) -> str:
    return exposition(
        build_registry(ReplicationCollector(FixedSource(snap, alive), default_lag))
    ).decode()


def request(srv: HealthServer, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def get_json(srv: HealthServer, path: str) -> tuple[int, dict[str, Any]]:
    status, _, body = request(srv, "GET", path)
    return status, json.loads(body)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2.0), ("250ms", 0.25), ("1.5m", 90.0), ("3", 3.0), ("0.5s", 0.5), (" 2s ", 2.0)],
)
def test_parse_lag(text: str, seconds: float) -> None:
    assert parse_lag(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-1s", "2h", "1e3s", "nan", "2 s s", "99999999m"])
def test_parse_lag_rejects(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_lag(text)


def test_replica_within_lag_is_200(server: HealthServer) -> None:
    status, doc = get_json(server, "/replica?node=replica1&lag=1s")
    assert status == 200
    assert doc["healthy"] is True
    assert doc["node"]["name"] == "replica1"
    assert doc["max_lag_seconds"] == 1.0


def test_replica_over_lag_is_503_with_reason(server: HealthServer) -> None:
    status, doc = get_json(server, "/replica?node=replica2&lag=2s")
    assert status == 503
    assert "lagging" in doc["reason"]
    status, _ = get_json(server, "/replica?node=replica2&lag=10s")
    assert status == 200


def test_replica_default_lag_from_config(server: HealthServer) -> None:
    assert get_json(server, "/replica?node=replica1")[0] == 200
    assert get_json(server, "/replica?node=replica2")[0] == 503


def test_replica_thread_stopped_is_503(server: HealthServer, monitor: Monitor) -> None:
    monitor.snapshot = snapshot(PRIMARY, replica("replica1", 0.1, sql="No"))
    status, doc = get_json(server, "/replica?node=replica1&lag=60s")
    assert status == 503
    assert "sql thread No" in doc["reason"]


def test_replica_without_heartbeat_is_503(server: HealthServer, monitor: Monitor) -> None:
    monitor.snapshot = snapshot(PRIMARY, replica("replica1", None))
    status, doc = get_json(server, "/replica?node=replica1")
    assert status == 503
    assert "no heartbeat" in doc["reason"]


def test_stale_snapshot_is_503_everywhere(server: HealthServer, monitor: Monitor) -> None:
    monitor.snapshot = snapshot(PRIMARY, replica("replica1", 0.1), age=10.0)
    assert get_json(server, "/replica?node=replica1")[0] == 503
    status, doc = get_json(server, "/primary")
    assert status == 503 and "stale" in doc["reason"]
    assert get_json(server, "/health")[0] == 503


def test_one_hung_node_is_stale_alone(server: HealthServer, monitor: Monitor) -> None:
    hung = replace(replica("replica2", 0.1), checked=-10.0)
    monitor.snapshot = snapshot(PRIMARY, replica("replica1", 0.1), hung)
    status, doc = get_json(server, "/replica?node=replica2")
    assert status == 503 and "check of replica2 is stale" in doc["reason"]
    assert get_json(server, "/replica?node=replica1")[0] == 200


def test_no_snapshot_yet_is_503(server: HealthServer, monitor: Monitor) -> None:
    monitor.snapshot = None
    assert get_json(server, "/primary")[0] == 503
    assert get_json(server, "/replica?node=replica1")[0] == 503
    assert request(server, "GET", "/metrics")[0] == 200


def test_primary_endpoint(server: HealthServer, monitor: Monitor) -> None:
    assert get_json(server, "/primary")[0] == 200
    assert get_json(server, "/primary?node=primary")[0] == 200
    assert get_json(server, "/primary?node=replica1")[0] == 503
    monitor.snapshot = snapshot(replace(PRIMARY, reachable=False, error="refused"))
    status, doc = get_json(server, "/primary")
    assert status == 503 and "unreachable" in doc["reason"]


def test_primary_on_replica_role_check(server: HealthServer) -> None:
    status, doc = get_json(server, "/replica?node=primary")
    assert status == 503 and doc["reason"] == "not a replica"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/replica?node=replica1&lag=fast", "lag='fast'"),
        ("/replica?node=replica1&lag=", "lag=''"),
        ("/replica?node=replica1&lag=2h", "unit ms, s or m"),
        ("/replica?node=nope", "unknown node"),
        ("/replica", "node=NAME is required"),
        ("/replica?node=replica1&node=replica2", "node given 2 times"),
        ("/replica?node=replica1&lagg=2s", "unknown query parameter 'lagg'"),
        ("/primary?lag=2s", "unknown query parameter 'lag'"),
        ("/health?x=1", "unknown query parameter"),
    ],
)
def test_bad_parameters_are_400(server: HealthServer, path: str, fragment: str) -> None:
    status, doc = get_json(server, path)
    assert status == 400
    assert fragment in doc["error"]


def test_unknown_path_is_404(server: HealthServer) -> None:
    status, doc = get_json(server, "/replicas")
    assert status == 404
    assert "/replica" in doc["error"]


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_have_no_body(server: HealthServer, method: str) -> None:
    status, headers, body = request(server, method, "/replica?node=replica1")
    assert status == 200 and body == b"" and headers["Content-Length"] == "0"
    status, headers, body = request(server, method, "/replica?node=replica2")
    assert status == 503 and body == b""
    status, _, body = request(server, method, "/replica?lag=bad&node=replica1")
    assert status == 400 and body == b""


def test_other_methods_are_rejected(server: HealthServer) -> None:
    assert request(server, "POST", "/replica?node=replica1")[0] == 501


def test_health_requires_a_live_monitor(server: HealthServer) -> None:
    status, doc = get_json(server, "/health")
    assert status == 503  # the monitor thread was never started in these tests
    assert doc["monitor_alive"] is False and doc["round"] == 7


def test_keep_alive_serves_many_requests_on_one_connection(server: HealthServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        for _ in range(50):
            conn.request("GET", "/replica?node=replica1")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
    finally:
        conn.close()


def test_hysteresis_through_the_endpoint(server: HealthServer, monitor: Monitor) -> None:
    """Held out above 2 s, readmitted only at <= 1 s (readmit_ratio 0.5), not at 1.5 s."""
    assert monitor.health.readmit_ratio == 0.5
    from datatier.replication.snapshot import hold_lagging

    def publish(lag: float) -> None:
        prev = monitor.snapshot.lagging if monitor.snapshot else {}
        nodes = {"replica1": replica("replica1", lag)}
        held = hold_lagging(prev, nodes, frozenset({2.0}), 0.5)
        monitor.snapshot = snapshot(PRIMARY, nodes["replica1"], lagging=held)

    publish(0.5)
    assert get_json(server, "/replica?node=replica1&lag=2s")[0] == 200
    publish(2.5)
    assert get_json(server, "/replica?node=replica1&lag=2s")[0] == 503
    publish(1.5)  # below the threshold but above the readmit level: still out
    status, doc = get_json(server, "/replica?node=replica1&lag=2s")
    assert status == 503 and "held out" in doc["reason"]
    publish(0.9)
    assert get_json(server, "/replica?node=replica1&lag=2s")[0] == 200


def test_metrics_text(server: HealthServer, monitor: Monitor) -> None:
    status, headers, body = request(server, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'datatier_node_up{node="primary",role="primary"} 1.0' in text
    assert 'datatier_replica_heartbeat_lag_seconds{node="replica2"} 5.0' in text
    assert 'datatier_replica_heartbeat_lag_seconds{node="replica1"} 0.2' in text
    assert 'datatier_replica_sql_thread_running{node="replica1"} 1.0' in text
    assert 'datatier_node_check_duration_seconds{node="replica1"} 0.002' in text
    assert 'datatier_primary_heartbeat_age_seconds{node="primary"} 0.1' in text
    assert 'datatier_replica_seconds_behind_master{node="replica1"} NaN' in text
    assert 'datatier_replica_held_out{node="replica2"} 0.0' in text
    assert 'datatier_node_check_errors_total{node="replica1"} 0.0' in text
    assert "# TYPE datatier_node_check_errors_total counter" in text
    assert "datatier_monitor_rounds_total 7.0" in text
    assert "datatier_monitor_up 0.0" in text
    assert 'heartbeat_lag_seconds{node="primary"}' not in text  # replicas only
    for line in text.splitlines():  # every sample line is NAME{labels} VALUE
        if not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            assert name and (value in ("NaN", "+Inf", "-Inf") or float(value) == float(value))


def test_metrics_escape_labels_and_unknown_values() -> None:
    odd = replace(replica("replica1", None), name='we"ird\\name', reachable=False)
    text = exposed_metrics(snapshot(odd), True, 2.0)
    assert 'node="we\\"ird\\\\name"' in text
    assert 'datatier_replica_heartbeat_lag_seconds{node="we\\"ird\\\\name"} NaN' in text
    assert exposed_metrics(None, False, 2.0).count("\n") == 9  # 3 families, nothing per node


def test_single_replica_needs_no_node_parameter() -> None:
    nodes = {"primary": NODES["primary"], "replica1": NODES["replica1"]}
    mon = Monitor(MySQLSettings(nodes=nodes), HealthSettings())
    mon.snapshot = snapshot(PRIMARY, replica("replica1", 0.3))
    srv = HealthServer(("127.0.0.1", 0), mon, default_lag=2.0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        status, doc = get_json(srv, "/replica?lag=1s")
        assert status == 200 and doc["node"]["name"] == "replica1"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()
        mon.stop()
