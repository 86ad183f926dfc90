"""Unattended jobs on the sandbox: a failing backup leaves its trace everywhere an operator
looks. The metric (in the store, read by `health serve`'s /metrics), the node_exporter
textfile, the webhook call (a real local HTTP server) and one JSON log line with the reason;
prune and verify do the same, and the notify command gets the event on stdin."""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from datatier.backup.jobstatus import read_status
from datatier.backup.metrics import BackupCollector
from datatier.backup.stats import BackupStatsMonitor
from datatier.backup.stores import store_for
from datatier.cli import main
from datatier.config import load
from datatier.metrics import build_registry
from datatier.replication.health import HealthServer
from datatier.replication.monitor import Monitor
from tests.httpsink import sink
from tests.integration.conftest import SandboxHandle, sql
from tests.integration.replication.test_replication import PORTS

POLICY = "ops-jobs"
DB = "ops_jobs_db"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of series ``name{labels}`` in exposition ``text`` (None if absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        series, _, number = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', series))
        if series.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(number)
    return None


def json_lines(err: str) -> list[dict[str, object]]:
    lines = [line for line in err.splitlines() if line.strip()]
    docs = []
    for line in lines:
        docs.append(json.loads(line))  # a plain-text line would fail here
    return docs


@pytest.fixture(scope="module")
def policy(sandbox: SandboxHandle) -> Iterator[str]:
    sql(sandbox, "primary", f"CREATE DATABASE IF NOT EXISTS {DB}")
    sql(sandbox, "primary", f"CREATE TABLE IF NOT EXISTS {DB}.t (id INT PRIMARY KEY, v TEXT)")
    sql(sandbox, "primary", f"REPLACE INTO {DB}.t VALUES (1, 'a'), (2, 'b')")
    sandbox.wait_replicated()
    path = sandbox.write_policy(
        POLICY, f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )
    yield POLICY
    path.unlink()
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")


def test_a_failing_backup_is_recorded_notified_logged_and_exported(
    use_sandbox_config: SandboxHandle,
    policy: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    prom = tmp_path / "datatier-backup.prom"
    assert main(["backup", "run", policy, "--metrics-file", str(prom)]) == 0
    text = prom.read_text()
    assert sample(text, "datatier_job_last_attempt_success", policy=policy, job="backup") == 1.0
    first_success = sample(text, "datatier_backup_last_success_timestamp_seconds", policy=policy)
    assert first_success is not None and abs(first_success - time.time()) < 120
    capsys.readouterr()

    with sink(PORTS) as hook:
        monkeypatch.setenv("DATATIER_MYSQL__NODES__REPLICA1__PORT", "1")  # nothing listens
        monkeypatch.setenv("DATATIER_NOTIFY__WEBHOOK_URL", hook.url)
        monkeypatch.setenv("DATATIER_NOTIFY__TIMEOUT", "5")
        assert main(["backup", "run", policy, "--metrics-file", str(prom)]) == 3
        events = hook.events()
    # One JSON line with the reason; nothing plain follows it.
    docs = json_lines(capsys.readouterr().err)
    failed = [d for d in docs if d["event"] == "job.failed"]
    assert len(failed) == 1 and failed[0]["level"] == "error"
    assert "cannot connect to MySQL replica1" in str(failed[0]["error"])
    assert failed[0]["exit_code"] == 3 and "hint" in failed[0]
    assert docs[-1]["event"] in ("job.failed", "notify.sent")
    assert not [d for d in docs if d["event"] == "command.failed"]  # not said twice
    backup_failed = [d for d in docs if d["event"] == "backup.failed"]
    assert all(d["exit_code"] == 3 and d["error"] for d in backup_failed)
    password = sandbox.config.mysql.password.reveal()
    assert all(password not in json.dumps(d) for d in docs)
    # The webhook got the event.
    assert len(events) == 1
    event = events[0]
    assert event["event"] == "job.failed" and event["job"] == "backup"
    assert event["policy"] == policy and event["exit_code"] == 3
    assert "cannot connect to MySQL replica1" in event["error"] and event["host"]
    # The textfile says it: failed now, last success unchanged.
    text = prom.read_text()
    assert sample(text, "datatier_job_last_attempt_success", policy=policy, job="backup") == 0.0
    assert sample(text, "datatier_job_last_exit_code", policy=policy, job="backup") == 3.0
    assert (sample(text, "datatier_job_failures_total", policy=policy, job="backup") or 0) >= 1.0
    assert (
        sample(text, "datatier_backup_last_success_timestamp_seconds", policy=policy)
        == first_success
    )
    assert not list(tmp_path.glob("*.prom.*"))  # no temporary file left behind
    # The store keeps the record, so health serve's /metrics (another process, another
    # host) exports it too.
    monkeypatch.delenv("DATATIER_MYSQL__NODES__REPLICA1__PORT")
    config = load(str(sandbox.config_path)).config
    status = read_status(store_for(config.backup.default_store, config), policy, "backup")
    assert status.last is not None and status.last.exit_code == 3
    assert status.last_success is not None
    stats = BackupStatsMonitor(
        sandbox.root / "backups",
        config.backup.default_store,
        lambda url: store_for(url, config),
        interval=60,
    )
    stats.refresh()
    monitor = Monitor(config.mysql, config.health)
    registry = build_registry(BackupCollector(lambda: stats.stats))
    server = None
    for port in PORTS:
        try:
            server = HealthServer(("127.0.0.1", port), monitor, 2.0, registry=registry)
            break
        except OSError:
            continue
    assert server is not None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        monitor.stop()
    assert sample(text, "datatier_job_last_attempt_success", policy=policy, job="backup") == 0.0
    assert sample(text, "datatier_backup_catalog_up", policy=policy) == 1.0
    assert (
        sample(text, "datatier_backup_last_success_timestamp_seconds", policy=policy)
        == first_success
    )
    assert "datatier_monitor_up" in text  # one registry: replication and backups


def test_prune_and_verify_write_textfiles_and_a_failed_prune_runs_the_command(
    use_sandbox_config: SandboxHandle,
    policy: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    config = sandbox.config
    store = store_for(config.backup.default_store, config)
    if not list(store.list_objects(f"{policy}/")):
        assert main(["backup", "run", policy]) == 0
    capsys.readouterr()
    assert main(["backups", "list", policy, "--json"]) == 0
    newest = json.loads(capsys.readouterr().out)["backups"][-1]["id"]
    verify_prom = tmp_path / "verify.prom"
    assert main(["backups", "verify", newest, "--metrics-file", str(verify_prom)]) == 0
    text = verify_prom.read_text()
    assert sample(text, "datatier_job_last_attempt_success", policy=policy, job="verify") == 1.0

    prune_prom = tmp_path / "prune.prom"
    assert main(["backups", "prune", policy, "--execute", "--metrics-file", str(prune_prom)]) == 0
    assert sample(prune_prom.read_text(), "datatier_job_last_exit_code", job="prune") == 0.0

    junk = f"{policy}/20200101T000000Z-beef/manifest.json"
    store.put_bytes(junk, b"{not json")
    event_file = tmp_path / "event.json"
    monkeypatch.setenv("DATATIER_NOTIFY__COMMAND", f"sh -c 'cat > {event_file}'")
    try:
        capsys.readouterr()
        code = main(["backups", "prune", policy, "--execute", "--metrics-file", str(prune_prom)])
        assert code == 4
        err = capsys.readouterr().err
    finally:
        store.delete([junk])
    event = json.loads(event_file.read_text())
    assert event["job"] == "prune" and event["exit_code"] == 4
    assert "unreadable manifest" in event["error"] and event["hint"]
    text = prune_prom.read_text()
    assert sample(text, "datatier_job_last_attempt_success", policy=policy, job="prune") == 0.0
    assert sample(text, "datatier_job_last_exit_code", policy=policy, job="prune") == 4.0
    assert [d["exit_code"] for d in json_lines(err) if d["event"] == "job.failed"] == [4]
    assert os.path.exists(prune_prom)


def test_recovery_window_prune_keeps_exactly_the_window_and_its_base(
    use_sandbox_config: SandboxHandle, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three real backups; a window that starts between the second and the third keeps the
    third (inside) and the second (the base a restore to the window's start needs), and
    deletes the first, on the real store."""
    sandbox = use_sandbox_config
    name = "ops-window"
    base = f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    path = sandbox.write_policy(name, base)
    try:
        ids = []
        for _ in range(3):
            capsys.readouterr()
            assert main(["backup", "run", name, "--json"]) == 0
            ids.append(json.loads(capsys.readouterr().out)["id"])
            time.sleep(1.1)  # distinct start times
        assert main(["backups", "list", name, "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        rows = {r["id"]: r for r in listed["backups"]}
        assert listed["count"] == len(rows) == 3
        starts = [datetime.fromisoformat(rows[i]["started_at"]) for i in ids]
        now = starts[2] + timedelta(seconds=5)
        window = (now - (starts[1] + (starts[2] - starts[1]) / 2)).total_seconds() / 86400
        path.write_text(
            base
            + f"[retention]\nkeep_last = 1\nmin_age_days = 0\nrecovery_window_days = {window}\n"
        )
        args = ["backups", "prune", name, "--now", now.isoformat(), "--json"]
        assert main(args) == 0
        plan = json.loads(capsys.readouterr().out)
        kept = {k["id"]: k["reasons"] for k in plan["keep"]}
        assert set(kept) == {ids[1], ids[2]}
        assert any("recovery window" in r for r in kept[ids[2]])
        assert any(r.startswith("base of the") for r in kept[ids[1]])
        assert [d["id"] for d in plan["delete"]] == [ids[0]]
        assert main([*args, "--execute"]) == 0
        capsys.readouterr()
        assert main(["backups", "list", name, "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [r["id"] for r in listed["backups"]] == [ids[1], ids[2]] and listed["count"] == 2
    finally:
        path.unlink()
