"""`datatier check --only "binlog retention"` against the sandbox's real primary and S3
server: it passes while a real archiver keeps up, and fails, for real, when the archiver
stops while the server writes, when the server purges binlogs the archive lacks, and when
the archive then holds a gap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.binlog_support import ArchiverProcess, fresh_policy, query, until
from tests.integration.conftest import SandboxHandle
from tests.integration.ops.checks.test_check import check, only

POLICY = "check-binlog"
DB = "check_binlog_db"
ENV = {"DATATIER_BINLOG__POLICY": POLICY, "DATATIER_BINLOG__MAX_ARCHIVE_LAG": "1"}
NAME = "binlog retention"


@pytest.fixture
def archive_env(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ArchiverProcess]:
    sandbox = use_sandbox_config
    fresh_policy(sandbox, POLICY, DB, ENV)
    query(sandbox.config, "primary", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    yield ArchiverProcess(sandbox.config_path, ENV, tmp_path / "archiver.log")
    query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {DB}")
    (sandbox.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)


def verdict(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code, rows = check(capsys, "--only", NAME)
    (row,) = only(rows, NAME)
    return code, row


def test_empty_archive_of_a_named_policy_fails_and_unset_archiving_is_skipped(
    archive_env: ArchiverProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, row = verdict(capsys)
    assert code == 1 and row["status"] == "fail"
    assert "archive is empty" in str(row["detail"]) and "binlog archive" in str(row["hint"])
    monkeypatch.delenv("DATATIER_BINLOG__POLICY")
    monkeypatch.setenv("DATATIER_BACKUP__POLICIES_DIR", str(tmp_path))  # no MySQL policy
    code, row = verdict(capsys)
    assert code == 0 and row["status"] == "skip"
    assert "not set up" in str(row["detail"])


def test_passes_while_kept_up_fails_when_stopped_purged_past_then_gapped(
    archive_env: ArchiverProcess, sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    archiver, cfg = archive_env, sandbox.config
    assert archiver.once().returncode == 0
    code, row = verdict(capsys)
    assert code == 0 and row["status"] == "pass", row
    assert "no gap" in str(row["detail"]) and f"{POLICY}/_binlogs/" in str(row["target"])

    # The archiver is not running while the server writes: past twice max_archive_lag it fails.
    query(cfg, "primary", f"INSERT INTO {DB}.t VALUES (1)")
    until(lambda: verdict(capsys)[1]["status"] == "fail", 30)
    code, row = verdict(capsys)
    assert code == 1 and "trails primary by" in str(row["detail"]), row
    assert "binlog archive" in str(row["hint"])

    # The server purges the binlog holding that transaction before it was archived.
    query(cfg, "primary", "FLUSH BINARY LOGS")
    query(cfg, "primary", f"INSERT INTO {DB}.t VALUES (2)")
    current = str(query(cfg, "primary", "SHOW MASTER STATUS")[0][0])
    position = str(query(cfg, "primary", "SELECT @@gtid_binlog_pos")[0][0])
    for replica in ("replica1", "replica2"):
        query(cfg, replica, "SELECT MASTER_GTID_WAIT(%s, 30)", (position,))

    def purged() -> bool:  # files still needed for crash recovery are kept for a moment
        query(cfg, "primary", f"PURGE BINARY LOGS TO '{current}'")
        return bool(query(cfg, "primary", "SHOW BINARY LOGS")[0][0] == current)

    until(purged, 30)
    code, row = verdict(capsys)
    assert code == 1 and "has purged binlogs the archive does not hold" in str(row["detail"])
    assert current in str(row["detail"]) and "full backup" in str(row["hint"])

    # The archiver runs again: it records the gap, and the check names it.
    result = archiver.once()
    assert result.returncode == 1 and "GAP" in result.stderr, result.stderr
    code, row = verdict(capsys)
    assert code == 1 and "the archive has gaps" in str(row["detail"]), row
    assert "purged" in str(row["detail"])
