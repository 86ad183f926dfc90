"""Heartbeat, replica status, monitor and health endpoint on the sandbox's real MariaDB.

Faults are real: ``STOP SLAVE SQL_THREAD`` / ``IO_THREAD`` on replica2, the heartbeat writer
stopped. Every test that changes replication restores it in ``finally`` and waits until both
replicas caught up, because the sandbox is shared by the whole session. HTTP ports come from
26100 upwards (``DATATIER_TEST_HTTP_PORT`` overrides the first), below Linux's ephemeral
range; a port that is nevertheless taken is skipped rather than failing the test.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pymysql
import pytest

from datatier.cli import main
from datatier.mysql.connection import connect, endpoint
from datatier.mysql.heartbeat import HeartbeatWriter, read_lag
from datatier.mysql.replica_status import read_replica_status
from datatier.provision.artifacts.haproxy_config import HAProxyLayout, render_haproxy
from datatier.replication.health import HealthServer
from datatier.replication.monitor import Monitor
from tests.integration.conftest import SandboxHandle, first_free, sql, unavailable, wait_for

INTERVAL = 0.1
HTTP_PORT = int(os.environ.get("DATATIER_TEST_HTTP_PORT", "26100"))
PORTS = iter(range(HTTP_PORT, HTTP_PORT + 100))


def bind_server(monitor: Monitor, default_lag: float, node: str | None = None) -> HealthServer:
    """A HealthServer (answering for ``node`` if given) on the next free port of the range."""
    for port in PORTS:
        try:
            return HealthServer(("127.0.0.1", port), monitor, default_lag, node)
        except OSError:
            continue
    raise AssertionError("no free HTTP port in the test range")


def free_port() -> int:
    """The next free port of this module's range."""
    return first_free(PORTS)


def restore_replication(sandbox: SandboxHandle, node: str) -> None:
    sql(sandbox, node, "START SLAVE")
    sandbox.wait_replicated()


@pytest.fixture(scope="module")
def writer(sandbox: SandboxHandle) -> Iterator[HeartbeatWriter]:
    hb = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=INTERVAL).start()
    yield hb
    hb.stop()


@pytest.fixture(scope="module")
def monitor(sandbox: SandboxHandle, writer: HeartbeatWriter) -> Iterator[Monitor]:
    health = replace(sandbox.config.health, check_timeout=2.0, replica_max_lag=1.0)
    mon = Monitor(sandbox.config.mysql, health, interval=INTERVAL).start()
    wait_for(lambda: mon.snapshot is not None and mon.snapshot.round >= 3, 10)
    yield mon
    mon.stop()


@pytest.fixture(scope="module")
def server(monitor: Monitor) -> Iterator[HealthServer]:
    import threading

    srv = bind_server(monitor, default_lag=1.0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def call(srv: HealthServer, path: str, method: str = "GET") -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if method != "GET":
        assert body == b"", f"{method} {path} answered a body"
        return resp.status, None
    is_json = resp.getheader("Content-Type", "").startswith("application/json")
    return resp.status, json.loads(body) if is_json else body.decode()


def heartbeat_lag(sandbox: SandboxHandle, node: str, source_id: int) -> float:
    conn = connect(endpoint(sandbox.config.mysql, node))
    try:
        reading = read_lag(conn, source_id)
    finally:
        conn.close()
    assert reading is not None
    return reading.lag


def test_replica_status_of_the_sandbox(sandbox: SandboxHandle, writer: HeartbeatWriter) -> None:
    sandbox.wait_replicated()
    for node in ("replica1", "replica2"):
        conn = connect(endpoint(sandbox.config.mysql, node))
        try:
            status = read_replica_status(conn)
        finally:
            conn.close()
        assert status is not None
        assert status.flavour == "mariadb"
        assert status.threads_ok
        assert status.source_port == sandbox.config.mysql.nodes["primary"].port
        assert status.source_server_id == writer.server_id
        assert status.using_gtid == "Slave_Pos"
        assert status.gtid_received and status.gtid_executed
    conn = connect(endpoint(sandbox.config.mysql, "primary"))
    try:
        assert read_replica_status(conn) is None
    finally:
        conn.close()


def test_heartbeat_lag_grows_while_sql_thread_stopped(
    sandbox: SandboxHandle, writer: HeartbeatWriter
) -> None:
    assert writer.server_id is not None
    wait_for(lambda: heartbeat_lag(sandbox, "replica2", writer.server_id or 0) < 0.5, 10)
    sql(sandbox, "replica2", "STOP SLAVE SQL_THREAD")
    try:
        time.sleep(1.5)
        first = heartbeat_lag(sandbox, "replica2", writer.server_id)
        time.sleep(0.5)
        second = heartbeat_lag(sandbox, "replica2", writer.server_id)
        with sandbox.connect("replica2") as conn:
            status = read_replica_status(conn)
        assert status is not None and not status.sql_ok
        assert status.seconds_behind is None  # what Seconds_Behind_Master says meanwhile
        assert first >= 1.3
        assert second >= first + 0.4
        assert heartbeat_lag(sandbox, "replica1", writer.server_id) < 1.0
    finally:
        restore_replication(sandbox, "replica2")
    wait_for(lambda: heartbeat_lag(sandbox, "replica2", writer.server_id or 0) < 0.5, 10)


def test_replica_endpoint_follows_a_stopped_sql_thread(
    sandbox: SandboxHandle, server: HealthServer, monitor: Monitor
) -> None:
    path = "/replica?node=replica2&lag=1s"
    wait_for(lambda: call(server, path)[0] == 200, 10)
    sql(sandbox, "replica2", "STOP SLAVE SQL_THREAD")
    try:
        took = wait_for(lambda: call(server, path)[0] == 503, 5)
        status, doc = call(server, path)
        assert status == 503 and "sql thread No" in doc["reason"]
        assert call(server, "/replica?node=replica1&lag=1s")[0] == 200
        assert call(server, path, "HEAD")[0] == 503
        # Within two monitor intervals, plus one round's duration and polling slack.
        measured = monitor.snapshot
        assert measured is not None
        slack = max(n.check_seconds for n in measured.nodes.values()) + 0.05
        assert took <= 2 * INTERVAL + slack, f"503 after {took:.3f} s"
        print(f"503 after {took:.3f} s")
        time.sleep(1.2)
        lag = call(server, path)[1]["node"]["lag_seconds"]
        assert lag >= 1.0  # the heartbeat lag keeps growing, no NULL, no 0
    finally:
        restore_replication(sandbox, "replica2")
    wait_for(lambda: call(server, path)[0] == 200, 10)


def test_replica_endpoint_follows_a_stopped_io_thread(
    sandbox: SandboxHandle, server: HealthServer
) -> None:
    path = "/replica?node=replica2&lag=1s"
    wait_for(lambda: call(server, path)[0] == 200, 10)
    sql(sandbox, "replica2", "STOP SLAVE IO_THREAD")
    try:
        wait_for(lambda: call(server, path)[0] == 503, 5)
        assert "io thread No" in call(server, path)[1]["reason"]
        wait_for(lambda: call(server, path)[1]["node"]["lag_seconds"] > 1.0, 5)
    finally:
        restore_replication(sandbox, "replica2")
    wait_for(lambda: call(server, path)[0] == 200, 10)


def test_a_reconnecting_io_thread_keeps_a_replica_in_until_its_lag_passes_the_limit(
    sandbox: SandboxHandle, server: HealthServer
) -> None:
    """Steps: point replica2's replication at a port nothing listens on (its IO thread then
    retries: Connecting, as while its primary restarts). Expected: /replica stays 200
    while its heartbeat lag is within the limit, saying why, and turns 503 "lagging" once
    the lag passes it. Was: 503 at once, so a primary restart took every replica out."""
    path = "/replica?node=replica2&lag=2s"
    wait_for(lambda: call(server, path)[0] == 200, 10)
    nowhere = free_port()
    sql(sandbox, "replica2", "STOP SLAVE")
    sql(sandbox, "replica2", f"CHANGE MASTER TO MASTER_PORT={nowhere}, MASTER_USE_GTID=slave_pos")
    sql(sandbox, "replica2", "START SLAVE")
    try:
        wait_for(
            lambda: call(server, path)[1]["node"]["replication"]["io_running"] == "Connecting", 5
        )
        status, doc = call(server, path)
        assert status == 200, doc["reason"]
        assert "io thread Connecting" in doc["reason"], doc["reason"]
        wait_for(lambda: call(server, path)[0] == 503, 10)
        reason = call(server, path)[1]["reason"]
        assert reason.startswith("lagging") and "io thread Connecting" in reason, reason
    finally:
        port = sandbox.config.mysql.nodes["primary"].port
        sql(sandbox, "replica2", "STOP SLAVE")
        sql(sandbox, "replica2", f"CHANGE MASTER TO MASTER_PORT={port}, MASTER_USE_GTID=slave_pos")
        sql(sandbox, "replica2", "START SLAVE")
        sandbox.wait_replicated()
    wait_for(lambda: call(server, path)[0] == 200, 10)


def test_stopped_heartbeat_writer_turns_replicas_503(
    use_sandbox_config: SandboxHandle,
    server: HealthServer,
    writer: HeartbeatWriter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = "/replica?node=replica1&lag=500ms"
    wait_for(lambda: call(server, path)[0] == 200, 10)
    writer.stop()
    try:
        lags = []
        for _ in range(8):
            time.sleep(0.15)
            lags.append(call(server, "/replica?node=replica1")[1]["node"]["lag_seconds"])
        assert lags == sorted(lags) and lags[-1] - lags[0] >= 0.8  # grows, never resets to 0
        wait_for(lambda: call(server, path)[0] == 503, 5)
        assert "lagging" in call(server, path)[1]["reason"]
        primary_age = call(server, "/metrics")[1]
        assert "datatier_primary_heartbeat_age_seconds" in primary_age
        # Once the primary's newest beat is older than 3 beats + 1 s, the reason names the
        # writer rather than the replicas (the sandbox's heartbeat_interval is 0.5 s).
        wait_for(lambda: "writer stopped" in call(server, path)[1]["reason"], 10, step=0.1)
        reason = call(server, path)[1]["reason"]
        assert reason.startswith("heartbeat writer stopped "), reason
        assert "s ago: replica lag unknown" in reason
        status, doc = call(server, "/health")
        assert status == 200  # the endpoint itself is fine; it says what is wrong
        assert doc["heartbeat"]["note"].startswith("heartbeat writer stopped ")
        assert doc["heartbeat"]["age_seconds"] > 2.5
        capsys.readouterr()
        assert main(["replication", "status"]) == 0
        assert "(heartbeat writer stopped " in capsys.readouterr().out
    finally:
        writer.start()
    wait_for(lambda: call(server, path)[0] == 200, 10)


def test_primary_endpoint(server: HealthServer) -> None:
    assert call(server, "/primary")[0] == 200
    assert call(server, "/primary?node=primary")[0] == 200
    for node in ("replica1", "replica2"):
        status, doc = call(server, f"/primary?node={node}")
        assert status == 503 and doc["reason"] == "read_only"
    assert call(server, "/primary", "HEAD") == (200, None)
    assert call(server, "/primary?node=replica1", "OPTIONS") == (503, None)


def test_bad_requests(server: HealthServer) -> None:
    for path in ("/replica?node=replica1&lag=soon", "/replica?node=ghost", "/replica"):
        status, doc = call(server, path)
        assert status == 400 and doc["error"]
    assert call(server, "/nothing-here")[0] == 404


def test_health_and_metrics(server: HealthServer, monitor: Monitor) -> None:
    status, doc = call(server, "/health")
    assert status == 200 and doc["monitor_alive"] is True
    status, text = call(server, "/metrics")
    assert status == 200
    for node in ("replica1", "replica2"):
        assert f'datatier_replica_io_thread_running{{node="{node}"}} 1.0' in text
        assert f'datatier_replica_heartbeat_lag_seconds{{node="{node}"}}' in text
    assert 'datatier_node_up{node="primary",role="primary"} 1.0' in text
    assert "datatier_node_check_duration_seconds" in text


def test_health_turns_503_when_the_monitor_stops(sandbox: SandboxHandle) -> None:
    import threading

    mon = Monitor(sandbox.config.mysql, sandbox.config.health, interval=INTERVAL).start()
    srv = bind_server(mon, default_lag=2.0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        wait_for(lambda: call(srv, "/health")[0] == 200, 10)
        mon.stop()
        status, doc = call(srv, "/health")
        assert status == 503 and doc["monitor_alive"] is False
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def test_unreachable_node_is_reported(sandbox: SandboxHandle) -> None:
    nodes = dict(sandbox.config.mysql.nodes)
    nodes["ghost"] = replace(nodes["replica1"], port=1)  # nothing listens on port 1
    mysql = replace(sandbox.config.mysql, nodes=nodes)
    mon = Monitor(mysql, replace(sandbox.config.health, check_timeout=1.0), interval=INTERVAL)
    try:
        snap = mon.measure_once()
    finally:
        mon.stop()
    ghost = snap.nodes["ghost"]
    assert not ghost.reachable and ghost.error and ghost.errors_total == 1
    assert snap.replica_check("ghost", 5.0)[0] is False
    assert snap.nodes["replica1"].reachable
    assert sandbox.config.mysql.password.reveal() not in ghost.error


def test_cli_status_json(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replication", "heartbeat", "--once"]) == 0
    capsys.readouterr()
    assert main(["replication", "status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert set(nodes) == {"primary", "replica1", "replica2"}
    assert nodes["primary"]["read_only"] is False
    assert nodes["replica1"]["replication"]["threads_ok"] is True
    assert nodes["replica1"]["lag_seconds"] is not None
    assert nodes["replica2"]["gtid_gap"] is not None


def test_cli_status_table_and_refusals(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replication", "status"]) == 0
    out = capsys.readouterr().out
    assert "replica2" in out and "LAG" in out and "GAP" in out
    password = use_sandbox_config.config.mysql.password.reveal()
    assert password not in out
    assert main(["replication", "heartbeat", "--node", "replica1", "--once"]) == 1
    assert "read_only" in capsys.readouterr().err
    assert main(["replication", "heartbeat", "--interval", "0.01", "--once"]) == 2
    assert main(["health", "serve", "--listen", "nowhere"]) == 2


def test_cli_health_serve_process(use_sandbox_config: SandboxHandle) -> None:
    """The real command in its own process: serves, answers, stops cleanly on SIGTERM."""
    port, replica1_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", "health", "serve", "--listen", f"127.0.0.1:{port}",
         "--listen", f"127.0.0.1:{replica1_port}=replica1", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        def status(path: str, on: int = port) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", on, timeout=2)
            try:
                conn.request("GET", path)
                return conn.getresponse().status
            except OSError:
                return -1
            finally:
                conn.close()

        wait_for(lambda: status("/health") == 200, 15, step=0.05)
        assert status("/primary") == 200
        assert status("/primary?node=replica1") == 503
        assert status("/replica?node=replica1&lag=x") == 400
        assert status("/primary", on=replica1_port) == 503
        assert status("/replica?node=replica2", on=replica1_port) == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    assert use_sandbox_config.config.mysql.password.reveal().encode() not in err


def test_a_hung_node_does_not_delay_the_others(sandbox: SandboxHandle) -> None:
    """A node first refuses connections, then accepts TCP but never speaks: its check hangs
    until check_timeout while rounds for the other nodes keep coming every interval."""
    port = free_port()
    nodes = dict(sandbox.config.mysql.nodes)
    nodes["hung"] = replace(nodes["replica1"], port=port)
    mysql = replace(sandbox.config.mysql, nodes=nodes)
    mon = Monitor(mysql, replace(sandbox.config.health, check_timeout=2.0), interval=INTERVAL)
    listener = None
    try:
        mon.start()
        wait_for(lambda: mon.snapshot is not None and mon.snapshot.round >= 3, 5)
        listener = socket.create_server(("127.0.0.1", port))  # now it accepts and hangs
        time.sleep(3 * INTERVAL)
        start = mon.snapshot.round if mon.snapshot else 0
        time.sleep(10 * INTERVAL)
        snap = mon.snapshot
        assert snap is not None
        assert snap.round - start >= 5, "rounds stalled behind the hung node"
        assert snap.replica_check("replica1", 5.0)[0] is True
        hung = snap.nodes["hung"]
        assert not hung.reachable  # its last finished check: connection refused
        assert time.monotonic() - hung.checked >= 8 * INTERVAL  # carried over, not re-run
        assert snap.replica_check("hung", 5.0)[0] is False
    finally:
        mon.stop()
        if listener is not None:
            listener.close()


def test_unreachable_primary(sandbox: SandboxHandle, writer: HeartbeatWriter) -> None:
    nodes = dict(sandbox.config.mysql.nodes)
    nodes["primary"] = replace(nodes["primary"], port=1)
    mon = Monitor(replace(sandbox.config.mysql, nodes=nodes), sandbox.config.health)
    try:
        snap = mon.measure_once()
    finally:
        mon.stop()
    ok, reason = snap.primary_check("primary")
    assert not ok and reason.startswith("unreachable")
    # Replicas still measure their lag: the source server_id comes from their own status.
    assert snap.replica_check("replica1", 5.0) == (True, snap.replica_check("replica1", 5.0)[1])
    assert snap.nodes["replica1"].lag is not None


# -- HAProxy in front of the sandbox, driven only by the health endpoint -------------------


@pytest.fixture(scope="module")
def node_servers(monitor: Monitor) -> Iterator[dict[str, HealthServer]]:
    """One health listener per node (what HAProxy's per-server check port needs)."""
    import threading

    servers = {name: bind_server(monitor, 1.0, name) for name in sorted(monitor.mysql.nodes)}
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05})
        for s in servers.values()
    ]
    for thread in threads:
        thread.start()
    yield servers
    for srv in servers.values():
        srv.shutdown()
        srv.server_close()
    for thread in threads:
        thread.join()


def test_node_bound_listener(node_servers: dict[str, HealthServer]) -> None:
    assert call(node_servers["replica1"], "/replica")[0] == 200
    assert call(node_servers["replica1"], "/primary")[0] == 503
    assert call(node_servers["primary"], "/primary")[0] == 200
    status, doc = call(node_servers["replica1"], "/replica?node=replica2")
    assert status == 400 and "answers for node 'replica1' only" in doc["error"]


@pytest.fixture
def haproxy(
    sandbox: SandboxHandle, node_servers: dict[str, HealthServer], tmp_path: Any
) -> Iterator[tuple[int, int]]:
    """HAProxy (Debian's) with the rendered config; yields (write port, read port)."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(binary):
        unavailable("haproxy is not installed (Debian package haproxy)")
    write_port, read_port = free_port(), free_port()
    layout = HAProxyLayout(
        write_bind=f"127.0.0.1:{write_port}",
        read_bind=f"127.0.0.1:{read_port}",
        health_ports={n: s.server_address[1] for n, s in node_servers.items()},
        max_lag="1s",
        inter_ms=100,
        fall=2,
        rise=2,
    )
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_haproxy(sandbox.config.mysql, layout))
    checked = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    proc = subprocess.Popen(
        [binary, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield write_port, read_port
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def server_ids_via(sandbox: SandboxHandle, port: int, count: int = 6) -> list[int]:
    """``@@server_id`` over ``count`` fresh connections through HAProxy (-1 on failure)."""
    cfg = sandbox.config.mysql
    ids = []
    for _ in range(count):
        try:
            conn = pymysql.connect(
                host="127.0.0.1",
                port=port,
                user=cfg.user,
                password=cfg.password.reveal(),
                connect_timeout=2,
            )
        except pymysql.MySQLError:
            ids.append(-1)
            continue
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@server_id")
                row = cur.fetchone()
                assert row is not None
                ids.append(int(row[0]))
        finally:
            conn.close()
    return ids


def test_haproxy_moves_reads_off_a_lagging_replica(
    sandbox: SandboxHandle, haproxy: tuple[int, int], node_servers: dict[str, HealthServer]
) -> None:
    """Real lag (replica2's SQL thread blocked by LOCK TABLES while the primary writes the
    table; both threads keep running) takes replica2 out of HAProxy's read pool; unlocking
    brings it back. Writes always land on the primary."""
    write_port, read_port = haproxy
    with sandbox.connect("replica1") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@server_id")
        replica1_id = int(cur.fetchone()[0])
    sql(sandbox, "primary", "CREATE DATABASE IF NOT EXISTS repl_test")
    sql(sandbox, "primary", "CREATE TABLE IF NOT EXISTS repl_test.t (id SERIAL, v INT)")
    sandbox.wait_replicated()
    wait_for(lambda: len(set(server_ids_via(sandbox, read_port))) == 2, 15, step=0.1)
    assert set(server_ids_via(sandbox, write_port, 3)) == {1}
    locker = sandbox.connect("replica2")
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES repl_test.t WRITE")
        sql(sandbox, "primary", "INSERT INTO repl_test.t (v) VALUES (1)")
        wait_for(lambda: set(server_ids_via(sandbox, read_port)) == {replica1_id}, 15, step=0.1)
        status, doc = call(node_servers["replica2"], "/replica?lag=1s")
        assert status == 503 and doc["reason"].startswith("lagging")
        assert doc["node"]["replication"]["threads_ok"] is True  # real lag, not a stopped thread
        assert set(server_ids_via(sandbox, write_port, 3)) == {1}
    finally:
        locker.close()  # releases the table lock; replica2 catches up
        sandbox.wait_replicated()
    wait_for(lambda: len(set(server_ids_via(sandbox, read_port))) == 2, 15, step=0.1)
    sql(sandbox, "primary", "DROP DATABASE repl_test")
    sandbox.wait_replicated()


def test_killed_replica_process_turns_503_and_recovers(
    sandbox: SandboxHandle, server: HealthServer
) -> None:
    """SIGKILL the real replica2 mariadbd (its process or its container): /replica answers
    503 (never 500, never a stale 200), /replica for replica1 stays 200; `sandbox up`
    restarts it and it is readmitted."""
    path = "/replica?node=replica2&lag=1s"
    wait_for(lambda: call(server, path)[0] == 200, 10)
    sandbox.sandbox.fault("replica2", "kill")
    try:
        wait_for(lambda: call(server, path)[0] == 503, 10)
        status, doc = call(server, path)
        assert status == 503 and doc["node"]["reachable"] is False
        assert call(server, "/replica?node=replica1&lag=1s")[0] == 200
        assert call(server, "/primary?node=primary")[0] == 200
    finally:
        wait_for(lambda: sandbox.service_state("replica2") == "stopped", 10, step=0.1)
        sandbox.sandbox.up()
        sandbox.wait_replicated()
    wait_for(lambda: call(server, path)[0] == 200, 15)
