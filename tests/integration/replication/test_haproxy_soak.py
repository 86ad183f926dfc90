"""Soak: the real HAProxy, with the config `deploy render haproxy` writes (checks every
500 ms), in front of the sandbox and the real `datatier health serve` process, for at least
60 s. Before the fix, HAProxy's early-closing checks made the endpoint log
``health.handler_failed "[Errno 104] Connection reset by peer"`` with tracebacks every few
seconds. Here the endpoint's log must hold no warning, error or traceback, HAProxy must never
mark a healthy server down, and MySQL connections through HAProxy keep landing right.

``DATATIER_TEST_SOAK_SECONDS`` shortens the soak outside CI (never below 60 s under CI).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymysql

from datatier.cli import main
from tests.integration.conftest import IN_CI, SandboxHandle, unavailable, wait_for
from tests.integration.replication.test_replication import free_port

READ_CHECK = "/replica?lag=2s"  # the rendered read backend's check
SOAK = max(60.0 if IN_CI else 5.0, float(os.environ.get("DATATIER_TEST_SOAK_SECONDS", "60")))


def server_id_via(sandbox: SandboxHandle, port: int) -> int:
    cfg = sandbox.config.mysql
    conn = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=cfg.user,
        password=cfg.password.reveal(),
        connect_timeout=3,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@server_id")
            row = cur.fetchone()
            assert row is not None
            return int(row[0])
    finally:
        conn.close()


def test_haproxy_soak_with_the_rendered_config(
    use_sandbox_config: SandboxHandle, tmp_path: Path
) -> None:
    sandbox = use_sandbox_config
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        unavailable("haproxy is not installed (Debian package haproxy)")
    ports = [free_port() for _ in range(3)]
    while ports != list(range(ports[0], ports[0] + 3)):  # the renderer numbers them in a row
        ports = [free_port() for _ in range(3)]
    write_port, read_port = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    assert (
        main(
            [
                "deploy", "render", "haproxy", "--inter-ms", "500",
                "--health-port-base", str(ports[0]),
                "--write-bind", f"127.0.0.1:{write_port}",
                "--read-bind", f"127.0.0.1:{read_port}",
                "--output", str(cfg),
            ]
        )
        == 0
    )  # fmt: skip
    text = cfg.read_text()
    assert "inter 500ms" in text
    command = text.splitlines()[1].split("datatier health serve", 1)[1].split()
    health_log = tmp_path / "health.log"
    env = {**os.environ, "DATATIER_CONFIG": str(sandbox.config_path)}
    with health_log.open("wb") as out:
        health = subprocess.Popen(
            [sys.executable, "-m", "datatier", "--json-logs", "health", "serve", *command,
             "--heartbeat", "--interval", "0.5"],
            stdout=subprocess.DEVNULL, stderr=out, env=env,
        )  # fmt: skip
    haproxy_log = tmp_path / "haproxy.log"
    proxy = None
    try:
        # HAProxy starts once every endpoint gives the answer its check wants: before the
        # monitor's first round it says 503 "no measurement yet", and a loaded machine can
        # take longer over that round than HAProxy takes to mark a server down.
        assert "uri /primary" in text and f"uri {READ_CHECK}" in text
        checks = [(ports[0], "/primary"), (ports[1], READ_CHECK), (ports[2], READ_CHECK)]
        wait_for(lambda: all(_status(p, uri) == 200 for p, uri in checks), 30, step=0.1)
        with haproxy_log.open("wb") as out:
            proxy = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=out, stderr=out)
        with sandbox.connect("primary") as conn, conn.cursor() as cur:
            cur.execute("SELECT @@server_id")
            primary_id = int(cur.fetchone()[0])
        # Servers start UP; the soak begins once HAProxy has taken both replicas out of the
        # write backend (a fixed sleep raced HAProxy's start and its first checks).
        downs = [b"mysql-write/replica1 is DOWN", b"mysql-write/replica2 is DOWN"]
        wait_for(lambda: all(d in haproxy_log.read_bytes() for d in downs), 30, step=0.1)
        wait_for(lambda: _through(sandbox, write_port) == primary_id, 20, step=0.2)
        started = time.monotonic()
        seen_reads: set[int] = set()
        while time.monotonic() - started < SOAK:
            assert _through(sandbox, write_port) == primary_id
            seen_reads.add(_through(sandbox, read_port))
            time.sleep(0.5)
        assert proxy.poll() is None and health.poll() is None
        conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=5)
        conn.request("GET", "/health")
        reply = conn.getresponse()
        doc = json.loads(reply.read())
        conn.close()
        assert reply.status == 200 and doc["heartbeat"]["note"] is None, doc
        assert doc["heartbeat_writer"]["running"] and doc["heartbeat_writer"]["beats"] > 10
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
        health.send_signal(signal.SIGTERM)
        health.wait(timeout=15)
    assert health.returncode == 0
    assert len(seen_reads - {-1, primary_id}) == 2, seen_reads  # both replicas served reads
    lines = [json.loads(line) for line in health_log.read_text().splitlines() if line.strip()]
    bad = [r for r in lines if r["level"] in ("warning", "error") or "traceback" in r]
    assert bad == [], bad[:3]
    proxy_text = haproxy_log.read_text()
    assert "[ALERT]" not in proxy_text, proxy_text
    for server in ("mysql-write/primary", "mysql-read/replica1", "mysql-read/replica2"):
        assert f"{server} is DOWN" not in proxy_text, proxy_text


def _status(port: int, uri: str) -> int:
    """The health endpoint's status for ``uri`` on ``port`` (0: no answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", uri)
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def _through(sandbox: SandboxHandle, port: int) -> int:
    try:
        return server_id_via(sandbox, port)
    except pymysql.MySQLError:
        return -1
