"""Network-style faults: a server frozen mid-operation, then thawed.

``Sandbox.fault(name, "pause")`` freezes a server: ``podman pause`` (the cgroup freezer) on
the container backend, SIGSTOP on the process backend. A frozen server keeps its port open
(the kernel still completes TCP handshakes) but never answers: what a hung host or a
network partition looks like to a client, the case timeouts must handle. Each test checks
what datatier does while the server is frozen (a clear error, or waiting and recovering)
and that nothing is lost once it is thawed.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from datatier.backup.stores import store_for
from datatier.cli import main
from datatier.config import load
from datatier.errors import ServiceUnavailable
from datatier.mysql.connection import endpoint
from datatier.mysql.heartbeat import HeartbeatWriter
from datatier.replication.health import HealthServer
from datatier.replication.monitor import Monitor
from datatier.replication.router import Router
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle, sql, wait_for

INTERVAL = 0.1
DB = "pause_db"
# test_replication takes DATATIER_TEST_HTTP_PORT + 0..99
HTTP_PORT = int(os.environ.get("DATATIER_TEST_HTTP_PORT", "26100")) + 150
HTTP_PORTS = range(HTTP_PORT, HTTP_PORT + 10)


class Paused:
    """Context manager: ``name`` frozen inside, thawed (always) on the way out."""

    def __init__(self, sandbox: SandboxHandle, name: str) -> None:
        self.sandbox, self.name = sandbox, name

    def __enter__(self) -> Paused:
        self.sandbox.sandbox.fault(self.name, "pause")
        self.since = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sandbox.sandbox.fault(self.name, "resume")


@pytest.fixture(scope="module")
def data(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        for name in ("a_first", "b_second", "c_third"):
            cur.execute(f"CREATE TABLE {DB}.{name} (id INT PRIMARY KEY, v VARCHAR(100))")
            cur.execute(
                f"INSERT INTO {DB}.{name} SELECT seq, REPEAT(CHAR(65 + seq % 26), 60) "
                f"FROM {DB}.seq_1_to_50000"
            )
    sandbox.wait_replicated()
    for node in ("primary", "replica1"):
        sandbox.write_policy(
            f"pause-{node}",
            'engine = "mysql"\nbundle_tables = false\n'  # these tests lock one table's objects
            f'[source]\nnode = "{node}"\ndatabases = ["{DB}"]\n',
        )
    yield
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    sandbox.wait_replicated()


@pytest.fixture(scope="module")
def monitor(sandbox: SandboxHandle) -> Iterator[Monitor]:
    writer = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=INTERVAL).start()
    health = replace(sandbox.config.health, check_timeout=1.0, replica_max_lag=1.0)
    mon = Monitor(sandbox.config.mysql, health, interval=INTERVAL).start()
    wait_for(lambda: mon.snapshot is not None and mon.snapshot.round >= 3, 10)
    yield mon
    mon.stop()
    writer.stop()


@pytest.fixture(scope="module")
def health(monitor: Monitor) -> Iterator[HealthServer]:
    for port in HTTP_PORTS:
        try:
            srv = HealthServer(("127.0.0.1", port), monitor, 1.0)
            break
        except OSError:
            continue
    else:
        raise AssertionError("no free HTTP port for the health server")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def get(srv: HealthServer, path: str) -> tuple[int, Any]:
    """GET ``path``; the endpoint answers from memory, so 2 s is plenty even now."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def server_id(router: Router, intent: str, max_lag: float | None = None) -> int:
    with router.connection(intent, max_lag) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@server_id")
        return int(cur.fetchone()[0])


def test_paused_primary_health_503_writes_refused_then_recovers(
    sandbox: SandboxHandle, data: None, monitor: Monitor, health: HealthServer
) -> None:
    router = Router(sandbox.config, monitor)
    wait_for(lambda: get(health, "/primary?node=primary")[0] == 200, 10)
    sql(sandbox, "primary", f"INSERT INTO {DB}.a_first VALUES (100001, 'before the pause')")
    with Paused(sandbox, "primary") as paused:
        wait_for(lambda: get(health, "/primary?node=primary")[0] == 503, 10, step=0.1)
        took = time.monotonic() - paused.since
        status, doc = get(health, "/primary?node=primary")
        assert status == 503 and not doc["healthy"], doc
        assert doc["reason"].startswith(("unreachable", "check of primary is stale")), doc
        assert sandbox.service_state("primary") == "unresponsive"
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="primary"):
            server_id(router, "write")
        assert time.monotonic() - started < 2, "a write must be refused from the snapshot"
        # The monitor itself stays healthy: one hung node never stalls the others.
        status, doc = get(health, "/health")
        assert status == 200 and doc["monitor_alive"], doc
        assert get(health, "/replica?node=replica1&lag=30s")[0] == 200
    assert took < 5, f"the endpoint took {took:.1f} s to notice the frozen primary"
    wait_for(lambda: get(health, "/primary?node=primary")[0] == 200, 15, step=0.1)
    assert server_id(router, "write") == 1
    sandbox.wait_replicated()
    for node in ("primary", "replica1", "replica2"):
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT v FROM {DB}.a_first WHERE id = 100001")
            assert cur.fetchone() == ("before the pause",), node


def test_paused_replica_leaves_the_read_pool_and_catches_up(
    sandbox: SandboxHandle, data: None, monitor: Monitor, health: HealthServer
) -> None:
    router = Router(sandbox.config, monitor, policy="round_robin")
    wait_for(lambda: get(health, "/replica?node=replica2")[0] == 200, 15, step=0.1)
    with Paused(sandbox, "replica2"):
        wait_for(lambda: get(health, "/replica?node=replica2")[0] == 503, 10, step=0.1)
        assert get(health, "/replica?node=replica1")[0] == 200
        assert get(health, "/primary?node=primary")[0] == 200
        wait_for(lambda: "replica2" not in {r.node for r in router.read_candidates(1.0)[0]}, 10)
        assert {server_id(router, "read", 1.0) for _ in range(6)} == {2}
        sql(sandbox, "primary", f"INSERT INTO {DB}.a_first VALUES (100002, 'during the pause')")
    sandbox.wait_replicated()
    with sandbox.connect("replica2") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT v FROM {DB}.a_first WHERE id = 100002")
        assert cur.fetchone() == ("during the pause",)
    wait_for(lambda: get(health, "/replica?node=replica2")[0] == 200, 15, step=0.1)
    wait_for(lambda: 3 in {server_id(router, "read", 1.0) for _ in range(4)}, 15, step=0.2)


def manifests(store: ObjectStore, policy: str) -> set[str]:
    return {o.key for o in store.list_objects(f"{policy}/") if o.key.endswith("manifest.json")}


def backup_cli(sandbox: SandboxHandle, policy: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), "backup", "run",
         policy, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_s3_paused_mid_backup_the_backup_waits_and_completes(
    sandbox: SandboxHandle, data: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dump is held at c_third by a table lock until an earlier table's data object is
    in S3; then S3 is frozen and the lock released, so the next uploads hang in flight.
    Thawed within the read timeout, the backup finishes, complete and verifiable."""
    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(loaded.config.backup.default_store, loaded.config)
    before_keys = {o.key for o in store.list_objects("pause-primary/")}
    locker: Any = sandbox.connect("primary")
    locker.cursor().execute(f"LOCK TABLES {DB}.c_third WRITE")
    proc = backup_cli(sandbox, "pause-primary")
    try:
        wait_for(
            lambda: any(
                "/a_first/data-" in o.key
                for o in store.list_objects("pause-primary/")
                if o.key not in before_keys
            ),
            30,
            step=0.05,
        )
        with Paused(sandbox, "s3"):
            locker.close()  # the dump goes on; its uploads meet the frozen S3
            locker = None
            time.sleep(4)
            assert proc.poll() is None, "the backup must wait for S3, not give up at once"
        out, err = proc.communicate(timeout=120)
    finally:
        if locker is not None:
            locker.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    backup_id = json.loads(out)["id"]
    capsys.readouterr()
    assert main(["--config", str(sandbox.config_path), "backups", "verify", backup_id]) == 0
    assert sum(1 for k in manifests(store, "pause-primary") if backup_id in k) == 1


def test_backup_from_a_paused_source_fails_clearly_without_manifest(
    sandbox: SandboxHandle, data: None
) -> None:
    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(loaded.config.backup.default_store, loaded.config)
    before = manifests(store, "pause-replica1")
    with Paused(sandbox, "replica1"):
        started = time.monotonic()
        proc = backup_cli(sandbox, "pause-replica1")
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
    assert proc.returncode == 3, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert "replica1" in last and "Traceback" not in err, last
    assert took < 30, f"a frozen source took {took:.0f} s to be reported"
    assert manifests(store, "pause-replica1") == before


def test_primary_paused_mid_restore_the_restore_resumes_and_matches(
    sandbox: SandboxHandle, data: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ["--config", str(sandbox.config_path)]
    assert main([*config, "backup", "run", "pause-replica1", "--json"]) == 0
    backup_id = json.loads(capsys.readouterr().out)["id"]
    copy = f"{DB}_restored"
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {copy}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", *config, "restore", backup_id, "--rename",
         f"{DB}={copy}", "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def loading() -> bool:
            with sandbox.connect() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                    (copy,),
                )
                return bool(cur.fetchone()[0])

        wait_for(loading, 60, step=0.02)
        # Freeze the restore itself first, so it cannot finish in the time `podman pause`
        # takes; it meets the frozen primary once thawed.
        proc.send_signal(signal.SIGSTOP)
        assert proc.poll() is None, "the restore finished before the pause: no fault seen"
        with Paused(sandbox, "primary"):
            proc.send_signal(signal.SIGCONT)
            time.sleep(3)
            assert proc.poll() is None, "the restore finished while the primary was frozen"
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    with sandbox.connect() as conn, conn.cursor() as cur:
        for table in ("a_first", "b_second", "c_third"):
            cur.execute(f"CHECKSUM TABLE {DB}.{table}, {copy}.{table}")
            original, restored = (row[1] for row in cur.fetchall())
            assert original == restored, table
        cur.execute(f"DROP DATABASE {copy}")
