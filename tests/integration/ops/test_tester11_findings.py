"""tester11: what HAProxy and operators rely on (health endpoint, monitor, metrics), attacked
on the real sandbox (MariaDB primary + 2 GTID replicas).

Findings, worst first:

1. SILENT WRONG (fixed): a replica whose ``read_only`` was switched off (it still
   replicates; the primary is up and writable) answered ``/primary`` with 200 on its
   node-bound port. The rendered haproxy.cfg lists every node in ``mysql-write`` with
   ``/primary`` checks and round-robin balance, so HAProxy would send writes to the replica
   too: split brain. ``/primary`` now answers 200 only for the router's single write target
   (the configured primary while it is writable; another node only when it is the one
   writable node), so health checks and the router agree. Same family: with the primary
   down, such a replica (writable, still replicating) became the write target at once, an
   automatic failover nobody decided, to a node that resumes applying the old primary's
   binlog when it returns; a node that still replicates is no longer a write target
   (``STOP SLAVE`` is the promotion).
2. LOUD-ISH WRONG, metrics that lie (fixed): once the monitor stopped measuring (its thread
   ended), ``/replica`` turned 503 "stale" but ``/metrics`` kept exporting ``node_up`` 1
   and the last lag, read_only and thread gauges as current, for ever: a lag or node-down
   alert could never fire. A node whose measurement is stale (what makes ``/replica`` 503)
   now exports NaN gauges and ``node_up`` 0; counters keep their values.
3. HEALTHY REPORTED DOWN, ALL NODES (fixed): a hostile client could take the health
   endpoint off the air. Each connection held a thread and a file descriptor; the
   ``client_timeout`` applied to each receive only, so a client dribbling a header byte
   every few seconds held its connection for ever; with the open-file limit reached
   (systemd's default soft limit is 1024) accept() failed, the backlog filled and every
   HAProxy check timed out: all nodes DOWN, writes and reads. Now a request must arrive
   whole within ``client_timeout`` and connections are capped below the file limit, the
   longest-waiting idle one evicted to admit a new one. (A first version of that cap
   deadlocked its accept loop when every slot was busy: caught by
   test_connection_cap_evicts_the_longest_waiting_and_refuses_when_all_are_busy, which
   hangs on it.)
4. HEALTHY REPORTED DOWN, ONE REPLICA (fixed): a replica re-pointed at the other replica
   (chained, current to the millisecond) answered 503 "no heartbeat seen": its lag was read
   from the heartbeat row of its own source, which writes none. Lag is now measured against
   the write target's heartbeat (the newest row on a first round), so the chain is 200 while
   current and 503 once the middle replica stops applying. The same rule (with 8.) ends a
   silent wrong: after a hand failover, a replica still following the demoted primary
   (which never sees a write made on the new one) read as healthy, since it measured the
   demoted primary's heartbeat; it now fits no read (test_router_pool's promotion test,
   whose old assertion encoded the stale read, passed only by timing after this change).
5. BAD INPUT NOT REFUSED (fixed): a MySQL node name (or host) with a space and '#', or a
   newline, rendered into haproxy.cfg as an extra ``server`` with no health check (HAProxy
   sends writes and reads to it whatever its state). Node names are now letters, digits,
   '_', '.', '-' and hosts host names or IP addresses; anything else is a config error.

6. CONFUSING (fixed): ``datatier check`` passed a replica whose read_only was off (exit
   0); it now fails it, with the fix as hint.
7. LOUD WRONG (fixed): ``health serve --listen [::1]:PORT`` (the documented IPv6 form)
   exited 3 "Address family for hostname not supported": the socket was always IPv4.
8. DATA-INTEGRITY RISK (fixed): the heartbeat writer refused only read_only servers; opened
   on a replica whose read_only was off (``replication heartbeat --node replica2``, a
   slip), it wrote a beat into the replica's binlog under its own server_id: a forked GTID
   history. It now also refuses a server that replicates. Worse, once running it went on
   beating into a primary that was demoted (read_only) when its account holds SUPER or
   READ_ONLY ADMIN (the sandbox's does): each beat now writes only while read_only is off,
   in the same statement, and the writer stops writing when it is on.

Tried and behaved correctly (kept as regression tests):

- a promoted replica (primary demoted to read_only, replica stopped and made writable)
  becomes the only ``/primary`` 200 (failover still works after the fix above);
- replica SQL thread stopped by a duplicate-key error while the IO thread runs: 503 with
  the error number, metrics say SQL thread 0 and error 1062, the other replica stays 200;
- replica frozen (SIGSTOP of its mariadbd): 503 within check_timeout + a few intervals
  (no 200 from stale memory past that), its lag gauge turns NaN and ``node_up`` 0, the
  other replica's check stays fast; after SIGCONT it is readmitted;
- heartbeat table dropped under a running writer: the writer recreates it, replicas 200 again;
- hostile HTTP clients (besides 3.): 200 half-sent connections, a 70 kB header line, 150
  headers, binary garbage, HEAD, OPTIONS, POST, unknown paths and ``lag=`` values: the
  other checks still answer at once with the right codes;
- a second ``datatier health serve`` on a port already in use: exit 3 with one line;
- primary frozen (SIGSTOP): /primary 503 within check_timeout, replicas 503 once their
  heartbeat lag passes the limit, naming the unreachable primary; all back after SIGCONT.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from datatier.cli import main
from datatier.errors import OperationFailed
from datatier.mysql.connection import endpoint
from datatier.mysql.heartbeat import HeartbeatWriter
from datatier.replication.health import HealthServer
from datatier.replication.monitor import Monitor
from tests.integration.conftest import SandboxHandle, first_free, sql, wait_for

INTERVAL = 0.1
CHECK_TIMEOUT = 1.0
HTTP_PORT = int(os.environ.get("DATATIER_TEST_HTTP_PORT", "26100")) + 100
PORTS = iter(range(HTTP_PORT, HTTP_PORT + 40))
NODES = ("primary", "replica1", "replica2")
DB = "tester11_scratch"


def _bind(monitor: Monitor, node: str | None) -> HealthServer:
    for port in PORTS:
        try:
            srv = HealthServer(("127.0.0.1", port), monitor, 1.0, node, client_timeout=2.0)
        except OSError:
            continue
        threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return srv
    raise AssertionError("no free HTTP port in the test range")


def _free_port() -> int:
    """The next free port of this module's range."""
    return first_free(PORTS)


@pytest.fixture(scope="module")
def monitor(sandbox: SandboxHandle) -> Iterator[Monitor]:
    writer = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=INTERVAL)
    writer.start()
    health = replace(sandbox.config.health, check_timeout=CHECK_TIMEOUT, replica_max_lag=1.0)
    mon = Monitor(sandbox.config.mysql, health, interval=INTERVAL).start()
    try:
        wait_for(lambda: mon.snapshot is not None and mon.snapshot.round >= 3, 10)
        yield mon
    finally:
        mon.stop()
        writer.stop()
        sandbox.clear_heartbeat()  # later tests must not see a writer running
        sandbox.wait_replicated()


@pytest.fixture(scope="module")
def ports(monitor: Monitor) -> Iterator[dict[str | None, int]]:
    """One listener per node (as haproxy.cfg has them) plus an unbound one (key None)."""
    servers = {node: _bind(monitor, node) for node in (*NODES, None)}
    try:
        yield {node: srv.server_address[1] for node, srv in servers.items()}
    finally:
        for srv in servers.values():
            srv.shutdown()
            srv.server_close()


def call(port: int, path: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.getheader("Content-Type", "").startswith("application/json"):
        return resp.status, json.loads(body)
    return resp.status, body.decode()


def metric(port: int, name: str, node: str) -> float:
    _, text = call(port, "/metrics")
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and f'node="{node}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {node} not in /metrics")


def all_healthy(ports: dict[str | None, int]) -> None:
    wait_for(lambda: call(ports["primary"], "/primary")[0] == 200, 10, step=0.05)
    for node in ("replica1", "replica2"):
        wait_for(lambda n=node: call(ports[n], "/replica?lag=1s")[0] == 200, 15, step=0.05)  # type: ignore[misc]


def settle() -> None:
    time.sleep(6 * INTERVAL)  # a few monitor rounds


# -- findings ------------------------------------------------------------------------------


def test_a_writable_replica_is_not_a_write_target(
    sandbox: SandboxHandle, ports: dict[str | None, int]
) -> None:
    """Steps: ``SET GLOBAL read_only = 0`` on replica1 (it keeps replicating; the primary
    stays up and writable); ask ``/primary`` on each node's port, as HAProxy's mysql-write
    backend does. Expected: 200 on the primary's port only. Was: 200 on replica1's port too
    ("writable primary"), so HAProxy would balance writes onto a replica."""
    all_healthy(ports)
    try:
        sql(sandbox, "replica1", "SET GLOBAL read_only = 0")
        settle()
        status, doc = call(ports["replica1"], "/primary")
        assert status == 503, doc
        assert "primary" in doc["reason"], doc["reason"]
        assert call(ports["primary"], "/primary")[0] == 200
        assert call(ports[None], "/primary?node=replica1")[0] == 503
        assert call(ports["replica1"], "/replica?lag=1s")[0] == 200  # still a good replica
    finally:
        sql(sandbox, "replica1", "SET GLOBAL read_only = 1")
    all_healthy(ports)


# -- tried and behaved correctly -----------------------------------------------------------


def test_a_promoted_replica_is_the_only_primary(
    sandbox: SandboxHandle, ports: dict[str | None, int]
) -> None:
    """Failover by hand: the primary turns read_only, replica1 stops replicating and turns
    writable: replica1's port answers /primary 200, the old primary's 503."""
    all_healthy(ports)
    try:
        sql(sandbox, "primary", "SET GLOBAL read_only = 1")
        sql(sandbox, "replica1", "STOP SLAVE")
        sql(sandbox, "replica1", "SET GLOBAL read_only = 0")
        wait_for(lambda: call(ports["replica1"], "/primary")[0] == 200, 5, step=0.05)
        assert call(ports["primary"], "/primary")[0] == 503
        assert call(ports["replica2"], "/primary")[0] == 503
        assert call(ports["replica1"], "/replica?lag=1s")[0] == 503  # replicates no more
        # replica2 still follows the demoted primary: writes on replica1 never reach it
        wait_for(
            lambda: "not from the write target" in call(ports["replica2"], "/replica")[1]["reason"],
            5,
            step=0.05,
        )
        assert call(ports["replica2"], "/replica?lag=1s")[0] == 503
    finally:
        sql(sandbox, "replica1", "SET GLOBAL read_only = 1")
        sql(sandbox, "replica1", "START SLAVE")
        sql(sandbox, "primary", "SET GLOBAL read_only = 0")
        sandbox.wait_replicated()
    all_healthy(ports)


def test_duplicate_key_on_a_replica_turns_it_503(
    sandbox: SandboxHandle, ports: dict[str | None, int]
) -> None:
    """A row written on replica2 alone (sql_log_bin=0), then the same key on the primary:
    replica2's SQL thread stops with 1062 while its IO thread runs."""
    all_healthy(ports)
    sql(sandbox, "primary", f"CREATE DATABASE IF NOT EXISTS {DB}")
    sql(sandbox, "primary", f"CREATE TABLE IF NOT EXISTS {DB}.t (id INT PRIMARY KEY)")
    sandbox.wait_replicated()
    try:
        with sandbox.connect("replica2") as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"INSERT INTO {DB}.t VALUES (1)")
        sql(sandbox, "primary", f"INSERT INTO {DB}.t VALUES (1)")
        wait_for(lambda: call(ports["replica2"], "/replica?lag=1s")[0] == 503, 5, step=0.05)
        _, doc = call(ports["replica2"], "/replica?lag=1s")
        assert "1062" in doc["reason"] and "sql thread No" in doc["reason"], doc["reason"]
        assert doc["node"]["replication"]["io_running"] == "Yes"
        assert call(ports["replica1"], "/replica?lag=1s")[0] == 200
        assert metric(ports[None], "datatier_replica_sql_thread_running", "replica2") == 0
        assert metric(ports[None], "datatier_replica_io_thread_running", "replica2") == 1
        assert metric(ports[None], "datatier_replica_last_error_number", "replica2") == 1062
    finally:
        with sandbox.connect("replica2") as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DELETE FROM {DB}.t WHERE id = 1")
        sql(sandbox, "replica2", "START SLAVE")
        sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
        sandbox.wait_replicated()
    all_healthy(ports)


def test_a_frozen_replica_is_not_served_from_stale_memory(
    sandbox: SandboxHandle, ports: dict[str | None, int], monitor: Monitor
) -> None:
    """SIGSTOP replica2's mariadbd: within check_timeout plus a few intervals its /replica
    turns 503 and stays so; its lag gauge is NaN and node_up 0; replica1's check answers at
    once meanwhile. After SIGCONT it comes back."""
    all_healthy(ports)
    sandbox.sandbox.fault("replica2", "pause")
    try:
        frozen = time.monotonic()
        wait_for(lambda: call(ports["replica2"], "/replica?lag=1s")[0] == 503, 5, step=0.02)
        assert time.monotonic() - frozen <= CHECK_TIMEOUT + 10 * INTERVAL + 0.5
        for _ in range(10):  # and it never flips back to 200 while frozen
            started = time.monotonic()
            assert call(ports["replica1"], "/replica?lag=5s")[0] == 200
            assert time.monotonic() - started < 0.5
            assert call(ports["replica2"], "/replica?lag=1s")[0] == 503
            time.sleep(INTERVAL)
        wait_for(lambda: metric(ports[None], "datatier_node_up", "replica2") == 0, 5, step=0.05)
        assert math.isnan(metric(ports[None], "datatier_replica_heartbeat_lag_seconds", "replica2"))
    finally:
        sandbox.sandbox.fault("replica2", "resume")
    sandbox.wait_replicated()
    all_healthy(ports)


def test_dropped_heartbeat_table_is_recreated(
    sandbox: SandboxHandle, ports: dict[str | None, int]
) -> None:
    all_healthy(ports)
    sql(sandbox, "primary", "DROP TABLE IF EXISTS datatier.heartbeat")
    # the writer's next beat fails, the one after recreates the table and beats again
    sandbox.wait_replicated()
    all_healthy(ports)
    assert call(ports["replica1"], "/replica?lag=1s")[1]["node"]["lag_seconds"] < 1.0


def test_hostile_http_clients_do_not_block_checks(ports: dict[str | None, int]) -> None:
    port = ports["replica1"]
    all_healthy(ports)
    slow: list[socket.socket] = []
    try:
        for _ in range(200):  # slowloris: a request line and half a header, then silence
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /replica HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        started = time.monotonic()
        assert call(port, "/replica?lag=5s", timeout=2)[0] == 200
        assert time.monotonic() - started < 1.0

        def raw(data: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
                return b"".join(chunks)

        huge = raw(b"GET /replica HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert huge.startswith(b"HTTP/1.1 431") or huge.startswith(b"HTTP/1.0 431"), huge[:80]
        many = b"".join(b"X-%d: y\r\n" % i for i in range(150))
        answer = raw(b"GET /replica HTTP/1.1\r\n" + many + b"\r\n")
        assert answer.split(b" ", 2)[1] == b"431", answer[:80]
        garbage = raw(bytes(range(256)) * 4 + b"\r\n\r\n")
        assert b"400" in garbage, garbage[:200]  # HTTP/0.9 style: no status line
        assert call(port, "/replica?lag=5s", "HEAD")[0] == 200
        assert call(port, "/replica?lag=5s", "OPTIONS")[0] == 200
        assert call(port, "/replica", "POST")[0] == 501
        assert call(port, "/nope")[0] == 404
        assert call(port, "/replica?lag=-1s")[0] == 400
        assert call(port, "/replica?lag=1e9")[0] == 400
        assert call(port, "/replica?lag=nan")[0] == 400
        assert call(port, "/replica?lag=5s&lag=5s")[0] == 400
        assert call(port, "/primary?node=%00")[0] == 400
        started = time.monotonic()
        assert call(port, "/replica?lag=5s", timeout=2)[0] == 200
        assert time.monotonic() - started < 1.0
    finally:
        for s in slow:
            with contextlib.suppress(OSError):
                s.close()


def test_second_health_server_on_a_taken_port(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    with socket.create_server(("127.0.0.1", port)):
        code = main(["health", "serve", "--listen", f"127.0.0.1:{port}=replica1"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_metrics_of_a_stopped_monitor_do_not_claim_fresh_numbers(sandbox: SandboxHandle) -> None:
    """Steps: a health server whose monitor stops measuring (its thread ends, as on a bug);
    wait past ``stale_after``; scrape /metrics. Expected: /replica says stale (503) and the
    metrics agree: no node counted up, lag gauges NaN (the collector's doc: "a gap instead
    of a stale number"). Was: node_up 1 and the last lag exported as current for ever, so a
    lag or node-down alert could never fire."""
    health = replace(sandbox.config.health, check_timeout=CHECK_TIMEOUT, replica_max_lag=5.0)
    mon = Monitor(sandbox.config.mysql, health, interval=INTERVAL)
    mon.measure_once()  # one good round (heartbeat rows from the module's writer or before)
    srv = _bind(mon, None)
    port = srv.server_address[1]
    try:
        assert metric(port, "datatier_node_up", "replica1") == 1
        time.sleep(mon.stale_after + 0.2)
        status, doc = call(port, "/replica?node=replica1&lag=5s")
        assert status == 503 and "stale" in doc["reason"], doc
        assert call(port, "/health")[0] == 503
        for node in NODES:
            assert metric(port, "datatier_node_up", node) == 0, node
            assert math.isnan(metric(port, "datatier_node_read_only", node)), node
        for node in ("replica1", "replica2"):
            assert math.isnan(metric(port, "datatier_replica_heartbeat_lag_seconds", node))
            assert math.isnan(metric(port, "datatier_replica_sql_thread_running", node))
        assert math.isnan(metric(port, "datatier_primary_heartbeat_age_seconds", "primary"))
        assert metric(port, "datatier_node_check_errors_total", "replica1") == 0  # counters stay
    finally:
        srv.shutdown()
        srv.server_close()
        mon.stop()


def test_a_trickling_client_is_closed_at_the_request_deadline(
    ports: dict[str | None, int],
) -> None:
    """Steps: send half a request, then one more header byte every 0.4 s to a listener with
    client_timeout 2 s. Expected: closed about 2 s after connecting, however the bytes
    trickle. Was: the timeout applied to each receive only, so the connection (a thread and
    a file descriptor) was held for as long as the client kept dribbling."""
    with socket.create_connection(("127.0.0.1", ports["replica1"]), timeout=5) as s:
        started = time.monotonic()
        s.sendall(b"GET /replica?lag=5s HTTP/1.1\r\nX-Slow: ")
        closed_after = None
        while time.monotonic() - started < 6.0:
            time.sleep(0.4)
            try:
                s.sendall(b"a")
                s.settimeout(0.01)
                if s.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None, "still open after 6 s of trickling"
        assert closed_after < 3.5, closed_after


def test_a_flood_of_slow_clients_cannot_starve_haproxy_checks(
    use_sandbox_config: SandboxHandle,
) -> None:
    """Steps: `datatier health serve` with an open-file limit of 256 (systemd's default soft
    limit is 1024: the same at a smaller scale); 300 clients connect and send half a
    request each; then a check as HAProxy's (2 s timeout). Expected: answered at once.
    Was: each slow client held a file descriptor and a thread; once the limit was reached
    accept() failed, the backlog filled, and every check timed out: HAProxy would mark every
    node DOWN, writes and reads alike."""
    port = _free_port()

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", "health", "serve",
         "--listen", f"127.0.0.1:{port}=primary", "--interval", "0.1"],
        preexec_fn=limit_files,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    slow: list[socket.socket] = []

    def check() -> int | str:
        try:
            return call(port, "/primary", timeout=2)[0]
        except OSError as exc:
            return repr(exc)

    try:
        wait_for(lambda: check() == 200, 15, step=0.05)
        for _ in range(300):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /primary HTTP/1.1\r\nX-Slow: ")
            except OSError:
                break  # the old server: backlog full
            slow.append(s)
        for _ in range(5):
            started = time.monotonic()
            assert check() == 200
            assert time.monotonic() - started < 1.0
    finally:
        for s in slow:
            with contextlib.suppress(OSError):
                s.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err


def _source_port(sandbox: SandboxHandle, node: str, port: int) -> None:
    """Re-point ``node``'s replication at ``port`` (same host, user and password), from its
    GTID position."""
    sql(sandbox, node, "STOP SLAVE")
    sql(sandbox, node, f"CHANGE MASTER TO MASTER_PORT={int(port)}, MASTER_USE_GTID=slave_pos")
    sql(sandbox, node, "START SLAVE")


def test_a_chained_replica_is_measured_against_the_primary(
    sandbox: SandboxHandle, ports: dict[str | None, int]
) -> None:
    """Steps: re-point replica2 at replica1 (which logs what it applies: a chained
    replica, current to the millisecond); then stop replica1's SQL thread. Expected: replica2
    is 200 while the chain is current, 503 once replica1 (and so replica2) falls behind.
    Was: replica2's lag was read from the heartbeat row of its own source (replica1, which
    writes none): 503 "no heartbeat seen" for a healthy replica."""
    nodes = sandbox.config.mysql.nodes
    all_healthy(ports)
    try:
        _source_port(sandbox, "replica2", nodes["replica1"].port)
        settle()
        sandbox.wait_replicated()
        with contextlib.suppress(AssertionError):
            wait_for(lambda: call(ports["replica2"], "/replica?lag=1s")[0] == 200, 5, step=0.05)
        status, doc = call(ports["replica2"], "/replica?lag=1s")
        assert status == 200, doc["reason"]  # was: "no heartbeat seen"
        assert doc["node"]["replication"]["source_port"] == nodes["replica1"].port
        one_shot = Monitor(sandbox.config.mysql, sandbox.config.health)
        try:
            snap = one_shot.measure_once()
        finally:
            one_shot.stop()
        assert snap.nodes["replica2"].lag is not None  # as `replication status` and `check`
        assert snap.replica_check("replica2", 5.0)[0], snap.replica_check("replica2", 5.0)
        sql(sandbox, "replica1", "STOP SLAVE SQL_THREAD")
        wait_for(lambda: call(ports["replica2"], "/replica?lag=1s")[0] == 503, 5, step=0.05)
        assert "lagging" in call(ports["replica2"], "/replica?lag=1s")[1]["reason"]
    finally:
        sql(sandbox, "replica1", "START SLAVE")
        _source_port(sandbox, "replica2", nodes["primary"].port)
        sandbox.wait_replicated()
    all_healthy(ports)


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ('"x 10.9.9.9:3306 #"', "10.0.0.2"),
        ('"db2\\n    server evil 10.9.9.9:3306 #"', "10.0.0.2"),
        ("db2", "10.0.0.2 # 10.9.9.9"),
        ("db2", "10.9.9.9:3306\\n    server evil 10.9.9.9:3306"),
    ],
)
def test_hostile_node_names_cannot_inject_haproxy_servers(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], name: str, host: str
) -> None:
    """Steps: a config whose replica's name (or host) holds a space and '#' or a newline;
    `datatier deploy render haproxy`. Expected: exit 2 naming the key, nothing rendered.
    Was: exit 0 and ``server x 10.9.9.9:3306 # 10.0.0.2:3306 check ...`` in both backends:
    an HAProxy server with no health check, sent writes and reads whatever its state."""
    path = tmp_path / "datatier.toml"
    path.write_text(
        '[mysql.nodes.db1]\nhost = "10.0.0.1"\nrole = "primary"\n'
        f'[mysql.nodes.{name}]\nhost = "{host}"\n'
    )
    code = main(["--config", str(path), "deploy", "render", "haproxy"])
    out, err = capsys.readouterr()
    assert code == 2, out
    assert "10.9.9.9" not in out and "mysql.nodes." in err


def test_ordinary_node_names_and_hosts_still_render(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "datatier.toml"
    path.write_text(
        '[mysql.nodes."db-1.eu_west"]\nhost = "db1.example.com"\nrole = "primary"\n'
        '[mysql.nodes.db2]\nhost = "fd00::12"\n[mysql.nodes.db3]\nhost = "[fd00::13]"\n'
    )
    assert main(["--config", str(path), "deploy", "render", "haproxy"]) == 0
    assert "server db-1.eu_west db1.example.com:3306 check" in capsys.readouterr().out


def test_a_writable_replica_is_not_failed_over_to_while_it_replicates(
    sandbox: SandboxHandle,
) -> None:
    """Steps: replica1's read_only switched off while it replicates; the primary down (a
    monitor whose primary is configured on a closed port: the real one keeps serving the
    other tests). Expected: /primary 503 everywhere until replica1 stops replicating (a
    promotion), then 200 on replica1. Was: 200 on replica1 at once: HAProxy would fail
    writes over to a replica that resumes applying the old primary's binlog when it returns
    (and breaks on the writes it took meanwhile)."""
    nodes = dict(sandbox.config.mysql.nodes)
    nodes["primary"] = replace(nodes["primary"], port=_free_port())
    health = replace(sandbox.config.health, check_timeout=CHECK_TIMEOUT)
    mon = Monitor(replace(sandbox.config.mysql, nodes=nodes), health, interval=INTERVAL)
    srv = None
    try:
        sql(sandbox, "replica1", "SET GLOBAL read_only = 0")
        mon.start()
        wait_for(lambda: mon.snapshot is not None and mon.snapshot.round >= 3, 10)
        srv = _bind(mon, "replica1")
        port = srv.server_address[1]
        status, doc = call(port, "/primary")
        assert status == 503, doc
        assert "still replicating" in doc["reason"], doc["reason"]
        sql(sandbox, "replica1", "STOP SLAVE")  # the promotion
        wait_for(lambda: call(port, "/primary")[0] == 200, 5, step=0.05)
    finally:
        if srv is not None:
            srv.shutdown()
            srv.server_close()
        mon.stop()
        sql(sandbox, "replica1", "SET GLOBAL read_only = 1")
        sql(sandbox, "replica1", "START SLAVE")
        sandbox.wait_replicated()


def test_a_frozen_primary(sandbox: SandboxHandle, ports: dict[str | None, int]) -> None:
    """SIGSTOP the primary's mariadbd: the replicas' IO threads still say Yes (the TCP
    connection is open), but /primary turns 503 within check_timeout and the replicas turn
    503 as their heartbeat lag passes the limit, naming the primary; all back after
    SIGCONT (the heartbeat writer reconnects by itself)."""
    all_healthy(ports)
    sandbox.sandbox.fault("primary", "pause")
    try:
        wait_for(lambda: call(ports["primary"], "/primary")[0] == 503, 5, step=0.05)
        wait_for(lambda: call(ports["replica1"], "/replica?lag=1s")[0] == 503, 5, step=0.05)
        _, doc = call(ports["replica1"], "/replica?lag=1s")
        assert "primary unreachable" in doc["reason"], doc["reason"]
        assert call(ports[None], "/health")[0] == 200  # the endpoint itself is fine
    finally:
        sandbox.sandbox.fault("primary", "resume")
    sandbox.wait_replicated()
    all_healthy(ports)


def test_check_fails_a_replica_with_read_only_off(
    use_sandbox_config: SandboxHandle,
    ports: dict[str | None, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Steps: read_only off on replica1 (it still replicates, lag tiny); `datatier check
    --only "replica lag"`. Expected: exit 1, replica1 failed with a hint. Was: exit 0, all
    pass: nothing told the operator that writes through the read port would fork it."""
    sandbox = use_sandbox_config
    all_healthy(ports)  # the module's heartbeat writer runs

    def run() -> tuple[int, dict[str, Any]]:
        capsys.readouterr()
        code = main(["check", "--only", "replica lag", "--max-lag", "5", "--json"])
        rows = json.loads(capsys.readouterr().out)["checks"]
        return code, {r["target"].split()[0]: r for r in rows}

    try:
        sql(sandbox, "replica1", "SET GLOBAL read_only = 0")
        code, rows = run()
    finally:
        sql(sandbox, "replica1", "SET GLOBAL read_only = 1")
    assert code == 1, rows
    assert rows["replica1"]["status"] == "fail" and "read_only is off" in str(rows["replica1"])
    assert rows["replica2"]["status"] == "pass"
    assert run()[0] == 0


def test_an_ipv6_listener_serves(monitor: Monitor) -> None:
    """Steps: ``--listen [::1]:PORT=replica1`` (the form parse_listen documents for IPv6).
    Expected: it serves. Was: exit 3 "Address family for hostname not supported" (the
    server socket was always IPv4)."""
    port = _free_port()
    srv = HealthServer(("::1", port), monitor, 1.0, "replica1", client_timeout=2.0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        conn = http.client.HTTPConnection("::1", port, timeout=5)
        try:
            conn.request("GET", "/replica?lag=5s")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def test_the_heartbeat_writer_refuses_a_writable_replica(sandbox: SandboxHandle) -> None:
    """Steps: read_only off on replica2 (it replicates); a heartbeat writer opened on it
    (`replication heartbeat --node replica2`, a slip). Expected: refused, nothing written.
    Was: it wrote a beat into replica2's binlog under replica2's server_id: a forked GTID
    history (gtid_strict_mode stops its SQL thread at the primary's next transaction)."""
    writer = HeartbeatWriter(endpoint(sandbox.config.mysql, "replica2"), interval=INTERVAL)
    try:
        sql(sandbox, "replica2", "SET GLOBAL read_only = 0")
        with pytest.raises(OperationFailed, match="replicates from"):
            writer.open()
    finally:
        writer.close()
        sql(sandbox, "replica2", "SET GLOBAL read_only = 1")
    with sandbox.connect("replica2") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos, @@server_id")
        after, server_id = cur.fetchone()
    assert f"-{server_id}-" not in after  # no transaction of replica2's own


def test_the_heartbeat_writer_stops_writing_on_a_demoted_primary(
    sandbox: SandboxHandle, ports: dict[str | None, int]
) -> None:
    """Steps: with the writer running, the primary turns read_only (a demotion, the first
    step of a failover). Expected: no more beats on it (the account may hold SUPER or
    READ_ONLY ADMIN, which read_only does not stop). Was: the sandbox's account (which may
    set read_only, so it bypasses it) went on beating into the demoted primary: its own
    transactions, which fork it from the new primary once it is pointed at it."""
    all_healthy(ports)

    def beats() -> int:
        with sandbox.connect("primary") as conn, conn.cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(beats), 0) FROM datatier.heartbeat")
            return int(cur.fetchone()[0])

    try:
        sql(sandbox, "primary", "SET GLOBAL read_only = 1")
        time.sleep(5 * INTERVAL)
        first = beats()
        time.sleep(10 * INTERVAL)
        assert beats() == first
    finally:
        sql(sandbox, "primary", "SET GLOBAL read_only = 0")
    all_healthy(ports)


def test_connection_cap_evicts_the_longest_waiting_and_refuses_when_all_are_busy(
    monitor: Monitor,
) -> None:
    """The admission rule in process: with max_clients 4, ten idle clients evict each other
    oldest first and a check still answers; with every slot busy a new connection is closed
    at once (and the accept loop keeps serving)."""
    srv = HealthServer(("127.0.0.1", _free_port()), monitor, 1.0, "replica1", max_clients=4)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    port = srv.server_address[1]
    idle = []
    try:
        for _ in range(10):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        assert call(port, "/replica?lag=5s", timeout=2)[0] == 200
        wait_for(lambda: srv.evicted_total >= 7, 5)
        assert idle[0].recv(10) == b""  # the oldest was closed
        for s in idle:
            s.close()
        wait_for(lambda: len(srv._clients) == 0, 5)
        busy = [socket.socket() for _ in range(4)]  # stand-ins for slots being answered
        try:
            with srv._clients_lock:
                srv._clients.update(dict.fromkeys(busy, False))
            with socket.create_connection(("127.0.0.1", port), timeout=5) as refused:
                refused.settimeout(5)
                assert refused.recv(10) == b""
        finally:
            with srv._clients_lock:
                for s in busy:
                    srv._clients.pop(s, None)
            for s in busy:
                s.close()
        assert call(port, "/replica?lag=5s", timeout=2)[0] == 200
    finally:
        for s in idle:
            s.close()
        srv.shutdown()
        srv.server_close()
        thread.join()
