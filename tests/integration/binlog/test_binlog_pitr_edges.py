"""Point-in-time restore targets at the edges, on the sandbox's real MariaDB and S3 server."""

from __future__ import annotations

import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.binlog.archiver import Archiver
from datatier.cli import main
from datatier.config import load
from tests.integration.binlog_support import fresh_policy, query
from tests.integration.conftest import SandboxHandle

DB = "pitr_edge_db"
POLICY = "pitr_edge"
ENV = {"DATATIER_BINLOG__POLICY": POLICY, "DATATIER_BINLOG__MAX_ARCHIVE_LAG": "2"}


def test_restore_to_the_backups_own_gtid(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = use_sandbox_config
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    loaded, policy, _ = fresh_policy(sandbox, POLICY, DB, ENV, "pitr_edge_r")
    query(sandbox.config, "primary", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT)")
    query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (1, 'at the backup')")
    sandbox.wait_replicated(60)
    manifest = run_backup(loaded, policy)
    gtid = manifest.consistency["gtid_pos"]
    query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (2, 'after the backup')")
    Archiver(loaded, policy, node="primary", once=True).run()
    argv = ["restore", "--policy", POLICY, "--until-gtid", gtid, "--rename", f"{DB}=pitr_edge_r"]
    assert main([*argv, "--dry-run", "--scan"]) == 0  # nothing to replay: no segment to scan
    assert main(argv) == 0
    rows = query(sandbox.config, "primary", "SELECT id, v FROM pitr_edge_r.t ORDER BY id")
    assert rows == [(1, "at the backup")]


def test_a_target_the_scan_refuses_says_nothing_was_loaded(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A GTID of the right domain and number but another server is refused while scanning
    the staged segments, before anything is restored: no "may be partly loaded" note."""
    sandbox = use_sandbox_config
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (3, 'archived')")
    query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (4, 'archived')")
    loaded = load(str(sandbox.config_path), environ=ENV)
    Archiver(loaded, load_policy(loaded, POLICY), node="primary", once=True).run()
    last = str(query(sandbox.config, "primary", "SELECT @@gtid_binlog_pos")[0][0])
    domain, _, seq = last.split("-")
    inside = int(seq) - 1  # inside a segment: only the scan sees which server wrote it
    query(sandbox.config, "primary", "DROP DATABASE IF EXISTS pitr_edge_none")
    capsys.readouterr()
    code = main(
        [
            "restore", "--policy", POLICY, "--until-gtid", f"{domain}-77-{inside}",
            "--rename", f"{DB}=pitr_edge_none",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is not in the archive" in err and "interrupted" not in err, err
    assert query(sandbox.config, "primary", "SHOW DATABASES LIKE 'pitr_edge_none'") == []
    dry = ["restore", "--policy", POLICY, "--until-gtid", f"{domain}-77-{inside}",
           "--rename", f"{DB}=pitr_edge_none", "--dry-run"]  # fmt: skip
    assert main(dry) == 0  # the plan alone reads no segment: the gap does not show
    capsys.readouterr()
    assert main([*dry, "--scan"]) == 2  # the scan shows it now
    assert "is not in the archive" in capsys.readouterr().err
    assert query(sandbox.config, "primary", "SHOW DATABASES LIKE 'pitr_edge_none'") == []
