"""`datatier check` against the sandbox: each check passes when its precondition holds and
fails when that precondition is broken for real (an account without grants, a bucket that
does not exist or is not provisioned, a policy whose last run left no backup, a stopped
heartbeat writer, a stopped replica SQL thread, a staging filesystem too small)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from datatier.cli import main
from datatier.mysql.connection import endpoint
from datatier.mysql.heartbeat import HeartbeatWriter
from tests.integration.conftest import SandboxHandle, sql, unavailable, wait_for

DB = "ops_check_db"


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    """Exit code and checks of ``check --json``; its summary fields agree with the checks."""
    capsys.readouterr()
    code = main(["check", *args, "--json"])
    doc = json.loads(capsys.readouterr().out)
    if "error" in doc:  # refused before any check ran
        return code, []
    rows: list[dict[str, Any]] = doc["checks"]
    assert doc["counts"] == {
        s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "warn", "skip")
    }
    assert doc["ok"] is (doc["counts"]["fail"] == 0) is (code == 0)
    assert all(r["ok"] is (r["status"] != "fail") for r in rows)
    return code, rows


def only(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["check"] == name]


@pytest.fixture(scope="module")
def policy(sandbox: SandboxHandle) -> Iterator[str]:
    sql(sandbox, "primary", f"CREATE DATABASE IF NOT EXISTS {DB}")
    sql(sandbox, "primary", f"CREATE TABLE IF NOT EXISTS {DB}.t (id INT PRIMARY KEY, b BLOB)")
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        cur.executemany(
            f"REPLACE INTO {DB}.t VALUES (%s, %s)", [(i, os.urandom(1024)) for i in range(200)]
        )
    sandbox.wait_replicated()
    path = sandbox.write_policy(
        "ops-check",
        f'engine = "mysql"\nschedule = "@daily"\n[source]\nnode = "replica1"\n'
        f'databases = ["{DB}"]\n',
    )
    yield "ops-check"
    path.unlink()
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")


def test_privileges(
    use_sandbox_config: SandboxHandle,
    policy: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    monkeypatch.setenv("DATATIER_BINLOG__POLICY", policy)  # the archiver's needs checked too
    code, rows = check(capsys, policy, "--only", "privileges")
    assert code == 0, rows
    assert {r["target"] for r in only(rows, "privileges")} >= {
        "backup ops-check on replica1",
        "restore on primary",
        "heartbeat on primary",
        "monitor on replica2",
        "binlog archive on primary",
    }
    sql(sandbox, "primary", "DROP USER IF EXISTS 'dt_narrow'@'127.0.0.1'")
    sql(sandbox, "primary", "CREATE USER 'dt_narrow'@'127.0.0.1' IDENTIFIED BY 'narrow-pass-1'")
    sql(sandbox, "primary", f"GRANT SELECT, SHOW VIEW ON {DB}.* TO 'dt_narrow'@'127.0.0.1'")
    sandbox.wait_replicated()
    try:
        monkeypatch.setenv("DATATIER_MYSQL__USER", "dt_narrow")
        monkeypatch.setenv("DATATIER_MYSQL__PASSWORD", "narrow-pass-1")
        code, rows = check(capsys, policy, "--only", "privileges")
    finally:
        sql(sandbox, "primary", "DROP USER IF EXISTS 'dt_narrow'@'127.0.0.1'")
    assert code == 1
    by_target = {r["target"]: r for r in rows}
    dump = by_target["backup ops-check on replica1"]
    assert dump["status"] == "fail"
    assert "TRIGGER (dump triggers (missing: triggers silently left out))" in dump["detail"]
    assert "EVENT" in dump["detail"] and "SHOW VIEW" not in dump["detail"]  # held on the db
    assert "SLAVE MONITOR" in by_target["monitor on replica1"]["detail"]
    assert by_target["restore on primary"]["status"] == "fail"
    assert dump["hint"]
    archiver = by_target["binlog archive on primary"]
    assert archiver["status"] == "fail"
    assert "REPLICATION SLAVE" in archiver["detail"] and "PROCESS" in archiver["detail"]


def test_an_archiver_account_lacking_only_process_is_a_warning(
    use_sandbox_config: SandboxHandle,
    policy: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without PROCESS the archiver archives everything but vouches for no idle time: the
    check warns (with the hint), every other job's needs pass, and the run exits 0."""
    sandbox = use_sandbox_config
    monkeypatch.setenv("DATATIER_BINLOG__POLICY", policy)
    sql(sandbox, "primary", "DROP USER IF EXISTS 'dt_noproc'@'127.0.0.1'")
    sql(sandbox, "primary", "CREATE USER 'dt_noproc'@'127.0.0.1' IDENTIFIED BY 'noproc-pass-1'")
    sql(sandbox, "primary", "GRANT ALL PRIVILEGES ON *.* TO 'dt_noproc'@'127.0.0.1'")
    sql(sandbox, "primary", "REVOKE PROCESS ON *.* FROM 'dt_noproc'@'127.0.0.1'")
    sandbox.wait_replicated()
    try:
        monkeypatch.setenv("DATATIER_MYSQL__USER", "dt_noproc")
        monkeypatch.setenv("DATATIER_MYSQL__PASSWORD", "noproc-pass-1")
        code, rows = check(capsys, policy, "--only", "privileges")
        text_code = main(["check", policy, "--only", "privileges"])
        text = capsys.readouterr().out
    finally:
        sql(sandbox, "primary", "DROP USER IF EXISTS 'dt_noproc'@'127.0.0.1'")
    assert code == 0 == text_code, rows
    by_target = {r["target"]: r for r in rows}
    archiver = by_target.pop("binlog archive on primary")
    assert archiver["status"] == "warn" and archiver["ok"] is True
    assert "PROCESS" in archiver["detail"] and "REPLICATION SLAVE" not in archiver["detail"]
    assert archiver["hint"]
    assert {r["status"] for r in by_target.values()} == {"pass"}, by_target
    warn_line = next(line for line in text.splitlines() if "binlog archive on primary" in line)
    assert warn_line.startswith("WARN") and "PROCESS" in warn_line
    assert "hint: GRANT" in text


def test_store(
    use_sandbox_config: SandboxHandle, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    code, rows = check(capsys, policy, "--only", "store")
    assert code == 0 and only(rows, "store")[0]["status"] == "pass"
    path = sandbox.write_policy(
        "ops-check-nobucket",
        'engine = "mysql"\nstore = "s3://no-such-bucket-ops/x"\n[source]\nnode = "replica1"\n',
    )
    try:
        code, rows = check(capsys, "ops-check-nobucket", "--only", "store")
    finally:
        path.unlink()
    assert code == 1
    (row,) = only(rows, "store")
    assert row["status"] == "fail" and row["target"] == "s3://no-such-bucket-ops/x"
    assert "no-such-bucket-ops" in row["detail"]


def test_bucket(
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A config of its own, so only this test's bucket is looked at and provisioned."""
    sandbox = use_sandbox_config
    bucket = "ops-check-provisioned"
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "b.toml").write_text(
        'engine = "mysql"\n[source]\nnode = "replica1"\n'
        '[storage]\narchive_class = "GLACIER"\narchive_after_days = 30\n'
    )
    text = sandbox.config_path.read_text().replace(
        'default_store = "s3://datatier-backups/sandbox"', f'default_store = "s3://{bucket}/p"'
    )
    text = text.replace('_file = "secrets/', f'_file = "{sandbox.root}/secrets/')
    cfg = tmp_path / "datatier.toml"
    cfg.write_text(text)
    monkeypatch.setenv("DATATIER_CONFIG", str(cfg))
    code, rows = check(capsys, "--only", "bucket")
    assert code == 1
    (row,) = only(rows, "bucket")
    assert row["status"] == "fail" and "bucket is none" in row["detail"]
    assert main(["provision", "apply", "--only", "bucket", "--execute"]) == 0
    code, rows = check(capsys, "--only", "bucket")
    assert code == 0 and only(rows, "bucket")[0]["status"] == "pass", rows
    s3 = boto3.client(
        "s3",
        endpoint_url=sandbox.config.s3.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=sandbox.config.s3.access_key_id.reveal(),
        aws_secret_access_key=sandbox.config.s3.secret_access_key.reveal(),
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_public_access_block(Bucket=bucket)
    code, rows = check(capsys, "--only", "bucket")
    assert code == 1
    detail = only(rows, "bucket")[0]["detail"]
    assert "versioning is Suspended (wanted Enabled)" in detail
    assert "public_access_block is none" in detail


def test_freshness(
    use_sandbox_config: SandboxHandle, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows = check(capsys, policy, "--only", "freshness")
    if only(rows, "freshness")[0]["status"] == "fail":
        assert "no complete backup (one was due" in only(rows, "freshness")[0]["detail"]
        assert main(["backup", "run", policy]) == 0
        code, rows = check(capsys, policy, "--only", "freshness")
    assert code == 0 and only(rows, "freshness")[0]["status"] == "pass", rows
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    code, rows = check(capsys, policy, "--only", "freshness", "--now", later)
    assert code == 1
    (row,) = only(rows, "freshness")
    assert row["status"] == "fail" and "left no complete backup" in row["detail"]
    assert row["target"] == f"{policy} (@daily)"


def test_heartbeat(use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox = use_sandbox_config
    writer = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=0.2).start()
    try:
        code, rows = check(capsys, "--only", "heartbeat")
        assert code == 0 and only(rows, "heartbeat")[0]["status"] == "pass", rows
    finally:
        writer.stop()
    stale = sandbox.config.health.heartbeat_stale_after
    try:
        wait_for(lambda: check(capsys, "--only", "heartbeat")[0] == 1, stale + 10, step=0.5)
        code, rows = check(capsys, "--only", "heartbeat")
    finally:
        sandbox.clear_heartbeat()
        sandbox.wait_replicated()
    (row,) = only(rows, "heartbeat")
    assert row["status"] == "fail" and row["detail"].startswith("heartbeat writer stopped ")
    assert "replication heartbeat" in row["hint"]


def test_replica_lag(use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox = use_sandbox_config
    writer = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=0.2).start()
    try:
        wait_for(lambda: check(capsys, "--only", "replica lag", "--max-lag", "5")[0] == 0, 10)
        sql(sandbox, "replica2", "STOP SLAVE SQL_THREAD")
        try:
            code, rows = check(capsys, "--only", "replica lag", "--max-lag", "5")
        finally:
            sql(sandbox, "replica2", "START SLAVE")
            sandbox.wait_replicated()
    finally:
        writer.stop()
        sandbox.clear_heartbeat()  # later tests must not see a writer running
        sandbox.wait_replicated()
    assert code == 1
    by_node = {r["target"].split()[0]: r for r in rows}
    assert by_node["replica1"]["status"] == "pass"
    assert by_node["replica2"]["status"] == "fail"
    assert "sql thread No" in by_node["replica2"]["detail"]


def test_legacy_json_list(
    use_sandbox_config: SandboxHandle,
    policy: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DATATIER_JSON_LISTS=1 (deprecated): the bare list of checks, as before 0.2.0, and a
    warning on stderr only."""
    code, rows = check(capsys, policy, "--only", "store")
    monkeypatch.setenv("DATATIER_JSON_LISTS", "1")
    assert main(["check", policy, "--only", "store", "--json"]) == code == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == rows and rows[0]["check"] == "store"
    assert "DATATIER_JSON_LISTS=1 is deprecated" in err and "deprecated" not in out


def test_free_space(
    use_sandbox_config: SandboxHandle,
    policy: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    listed = main(["backups", "list", policy, "--json"]), capsys.readouterr().out
    if listed[0] != 0 or not json.loads(listed[1])["backups"]:
        assert main(["backup", "run", policy]) == 0
    code, rows = check(capsys, policy, "--only", "free space", "--staging-dir", str(tmp_path))
    assert code == 0 and only(rows, "free space")[0]["status"] == "pass", rows
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small tmpfs: {mounted.stderr.decode().strip()}")
    try:
        code, rows = check(capsys, policy, "--only", "free space", "--staging-dir", str(small))
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert code == 1
    (row,) = only(rows, "free space")
    assert row["status"] == "fail" and f"the newest backup of {policy} needs" in row["detail"]
    code, rows = check(capsys, policy, "--only", "free space", "--staging-dir", "/nonexistent/x")
    assert code == 1 and "cannot stat" in only(rows, "free space")[0]["detail"]


def test_all_checks_one_line_each_and_bad_arguments(
    use_sandbox_config: SandboxHandle, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    main(["check", policy])
    lines = capsys.readouterr().out.splitlines()
    assert {line.split()[1] for line in lines if not line.startswith(" ")} >= {
        "privileges",
        "store",
        "freshness",
        "heartbeat",
        "replica",
        "free",
    }
    assert main(["check", "--only", "nonsense"]) == 2
    assert main(["check", "no-such-policy"]) == 2
