"""The health server under hostile or careless clients, and the tracked lag thresholds.

Real sockets against a real :class:`HealthServer` (the monitor is never started: its
snapshot is set by hand, as in test_health_server.py).
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from datatier import log
from datatier.config import HealthSettings, MySQLSettings
from datatier.replication.health import HealthServer
from datatier.replication.monitor import Monitor
from datatier.replication.thresholds import ThresholdRegistry
from tests.unit.replication.test_health_server import NODES, PRIMARY, replica, snapshot


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """datatier's log lines (JSON, debug and up) while the test runs."""
    stream = io.StringIO()
    log.configure(level="debug", json_lines=True, stream=stream)
    yield stream
    log.configure()


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def start(client_timeout: float = 5.0) -> tuple[HealthServer, threading.Thread, Monitor]:
    mon = Monitor(MySQLSettings(nodes=NODES), HealthSettings(replica_max_lag=2.0))
    mon.snapshot = snapshot(PRIMARY, replica("replica1", 0.2), replica("replica2", 5.0))
    srv = HealthServer(("127.0.0.1", 0), mon, 2.0, client_timeout=client_timeout)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return srv, thread, mon


def stop(srv: HealthServer, thread: threading.Thread, mon: Monitor) -> None:
    srv.shutdown()
    srv.server_close()
    thread.join()
    mon.stop()


def abort(sock: socket.socket) -> None:
    """Close with a TCP reset, as HAProxy does once its check has the status line."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_hanging_up_early_log_at_debug_without_tracebacks(
    logs: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    srv, thread, mon = start()
    port = srv.server_address[1]
    try:
        for i in range(150):
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET /replica?node=replica2&lag=1s HTTP/1.0\r\n\r\n")
            if i % 3 == 0:
                sock.recv(12)  # read the status line, then reset (HAProxy's httpchk)
            elif i % 3 == 1:
                time.sleep(0.001)
            abort(sock)
        # The server still answers normally afterwards.
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        sock.sendall(b"GET /replica?node=replica1 HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        sock.close()
        assert reply.startswith(b"HTTP/1.1 200 ")
        time.sleep(0.2)
    finally:
        stop(srv, thread, mon)
    found = records(logs)
    assert not [r for r in found if r["level"] in ("error", "warning")], found
    assert all("traceback" not in r for r in found)
    dropped = [r for r in found if r["event"] == "health.client_disconnected"]
    assert all(r["level"] == "debug" for r in dropped)
    assert len(dropped) <= 150  # at most once per connection
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err


def test_half_sent_and_idle_connections_time_out() -> None:
    srv, thread, mon = start(client_timeout=0.3)
    port = srv.server_address[1]
    try:
        half = socket.create_connection(("127.0.0.1", port), timeout=3)
        half.sendall(b"GET /heal")  # never finished
        started = time.monotonic()
        assert half.recv(100) == b""  # the server closed it
        took = time.monotonic() - started
        assert 0.25 <= took < 2.0, took
        half.close()

        idle = socket.create_connection(("127.0.0.1", port), timeout=3)
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive, then silence
        reply = idle.recv(65536)
        assert reply.startswith(b"HTTP/1.1 503 ")
        started = time.monotonic()
        assert idle.recv(100) == b""
        assert time.monotonic() - started < 2.0
        idle.close()
    finally:
        stop(srv, thread, mon)


def test_configured_thresholds_survive_a_flood(logs: io.StringIO) -> None:
    now = [0.0]
    registry = ThresholdRegistry([2.0, 1.0], per_node=4, log_every=60.0, clock=lambda: now[0])
    registry.touch("replica1", 5.0)
    for i in range(100):  # a client inventing thresholds
        registry.touch("replica1", 10.0 + i)
    tracked = registry.tracked(["replica1", "replica2"])
    assert tracked[2.0] == {"replica1", "replica2"} and tracked[1.0] == tracked[2.0]
    chosen = {t for t, nodes in tracked.items() if "replica1" in nodes} - {1.0, 2.0}
    assert chosen == {106.0, 107.0, 108.0, 109.0}  # bounded, newest kept, 5.0 evicted
    assert 106.0 not in {t for t, nodes in tracked.items() if "replica2" in nodes}
    assert registry.counts() == {"replica1": 4}
    floods = [r for r in records(logs) if r["event"] == "health.lag_threshold_flood"]
    assert len(floods) == 1 and floods[0]["level"] == "warning"  # once per minute, not 97 times
    now[0] = 61.0
    registry.touch("replica1", 500.0)
    floods = [r for r in records(logs) if r["event"] == "health.lag_threshold_flood"]
    assert len(floods) == 2 and floods[1]["evicted_total"] == 98
    now[0] = 61.0 + 601.0  # unused client thresholds expire; configured ones never do
    assert registry.tracked(["replica1"]) == {2.0: {"replica1"}, 1.0: {"replica1"}}


def test_a_flood_through_the_endpoint_keeps_configured_hysteresis() -> None:
    """/replica?lag= with 200 invented values: the configured 3 s threshold is still tracked
    for every node, and the client-chosen set per node stays bounded."""
    health = HealthSettings(replica_max_lag=2.0, lag_thresholds=[3.0])
    mon = Monitor(MySQLSettings(nodes=NODES), health)
    for i in range(200):
        mon.register_threshold(0.001 * (i + 1), "replica1")
    tracked = mon.thresholds.tracked(NODES)
    assert {"replica1", "replica2"} <= tracked[3.0] and {"replica1", "replica2"} <= tracked[2.0]
    assert mon.thresholds.counts()["replica1"] <= 16
    mon.stop()


def test_stopped_writer_is_named_in_replica_reasons() -> None:
    stale_primary = snapshot(
        PRIMARY.__class__(**{**PRIMARY.__dict__, "lag": 42.0}),
        replica("replica1", 42.3),
        heartbeat_stale_after=2.5,
    )
    ok, reason = stale_primary.replica_check("replica1", 2.0)
    assert not ok
    assert reason == "heartbeat writer stopped 42 s ago: replica lag unknown (heartbeat lag 42.3 s)"
    assert stale_primary.heartbeat_note() == "heartbeat writer stopped 42 s ago"
    fresh = snapshot(PRIMARY, replica("replica1", 5.0), heartbeat_stale_after=2.5)
    assert fresh.replica_check("replica1", 2.0) == (False, "lagging: 5.000 s > 2 s")
    down = snapshot(
        PRIMARY.__class__(**{**PRIMARY.__dict__, "reachable": False, "lag": None}),
        replica("replica1", 5.0),
    )
    assert down.replica_check("replica1", 2.0)[1].endswith(
        "(primary unreachable: no new heartbeats)"
    )
