"""A table whose rows live in other tables (a MERGE table over MyISAM tables): the backup
writes its definition and no rows, and a restore gives it back. Found by hand on a sandbox;
the test states the reproduction. On the sandbox's real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store, failure_line
from tests.integration.mysql.conftest import back_up

DB = "integ_nodata_merge"
POLICY = "integ-nodata"
NODES = ("primary", "replica1", "replica2")


def drop(sandbox: SandboxHandle) -> None:
    for node in NODES:
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")


@pytest.fixture
def merge_backup(use_sandbox_config: SandboxHandle) -> Iterator[tuple[SandboxHandle, Manifest]]:
    """DB: MyISAM ``m1`` with two rows and ``mrg``, a MERGE table over it, backed up."""
    sandbox = use_sandbox_config
    drop(sandbox)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.m1 (id INT) ENGINE=MyISAM")
        cur.execute(f"CREATE TABLE {DB}.mrg (id INT) ENGINE=MERGE UNION=({DB}.m1)")
        cur.execute(f"INSERT INTO {DB}.m1 VALUES (1), (2)")
    clear_prefix(default_store(sandbox), POLICY)
    manifest = back_up(sandbox, POLICY, [DB])
    assert {t.name: t.rows for t in manifest.tables} == {"m1": 2, "mrg": 0}
    yield sandbox, manifest
    drop(sandbox)


def test_a_merge_table_restores_and_restore_tests_with_exit_0(
    merge_backup: tuple[SandboxHandle, Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: CREATE TABLE m1 (id INT) ENGINE=MyISAM; CREATE TABLE mrg (id INT)
    ENGINE=MERGE UNION=(m1); two rows in m1; back up (mrg: 0 rows, its rows live in m1);
    DROP DATABASE; `restore ID`. Every table is back with its rows, and the restore exits 1
    "DB.mrg: 2 rows after restore, the backup has 0"; `backups verify ID --restore-test`
    fails the same way (exit 1), every night. Expected: exit 0 for both (the count check
    skips tables whose rows the backup does not hold)."""
    sandbox, manifest = merge_backup
    drop(sandbox)
    capsys.readouterr()
    code = main(["restore", manifest.backup_id, "--target", "primary"])
    err = capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {DB}.mrg")
        assert cur.fetchone()[0] == 2, "restored, rows reachable through the MERGE table"
    assert code == 0, failure_line(err)
    assert main(["backups", "verify", manifest.backup_id, "--restore-test"]) == 0
