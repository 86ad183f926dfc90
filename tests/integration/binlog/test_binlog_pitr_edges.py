"""Point-in-time restore targets at the edges, on the sandbox's real MariaDB and S3 server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.binlog_support import PitrWindow, pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "pitr_edge_db"
POLICY = "pitr_edge"


@pytest.fixture
def window(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PitrWindow]:
    """An empty archive and table DB.t, not backed up yet."""
    targets = ("pitr_edge_r", "pitr_edge_none")
    with pitr_window(use_sandbox_config, POLICY, DB, *targets, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT)")
        yield window


def test_restore_to_the_backups_own_gtid(window: PitrWindow) -> None:
    window.sql(f"INSERT INTO {DB}.t VALUES (1, 'at the backup')")
    manifest = window.backup()
    gtid = manifest.consistency["gtid_pos"]
    window.sql(f"INSERT INTO {DB}.t VALUES (2, 'after the backup')")
    window.archive()
    argv = ["restore", "--policy", POLICY, "--until-gtid", gtid, "--rename", f"{DB}=pitr_edge_r"]
    assert main([*argv, "--dry-run", "--scan"]) == 0  # nothing to replay: no segment to scan
    assert main(argv) == 0
    rows = query(window.config, "primary", "SELECT id, v FROM pitr_edge_r.t ORDER BY id")
    assert rows == [(1, "at the backup")]


def test_a_target_the_scan_refuses_says_nothing_was_loaded(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """A GTID of the right domain and number but another server is refused while scanning
    the staged segments, before anything is restored: no "may be partly loaded" note."""
    window.backup()
    window.sql(
        f"INSERT INTO {DB}.t VALUES (3, 'archived')", f"INSERT INTO {DB}.t VALUES (4, 'archived')"
    )
    window.archive()
    domain, _, seq = window.gtid().split("-")
    inside = int(seq) - 1  # inside a segment: only the scan sees which server wrote it
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
    assert query(window.config, "primary", "SHOW DATABASES LIKE 'pitr_edge_none'") == []
    dry = ["restore", "--policy", POLICY, "--until-gtid", f"{domain}-77-{inside}",
           "--rename", f"{DB}=pitr_edge_none", "--dry-run"]  # fmt: skip
    assert main(dry) == 0  # the plan alone reads no segment: the gap does not show
    capsys.readouterr()
    assert main([*dry, "--scan"]) == 2  # the scan shows it now
    assert "is not in the archive" in capsys.readouterr().err
    assert query(window.config, "primary", "SHOW DATABASES LIKE 'pitr_edge_none'") == []
