"""An XA transaction whose statements write a restored database's table: its prepare is
refused (exit 2, nothing restored) and the message says so (the XA transaction, its xid and
GTID, what to do). With another default database it read "ends inside a statement's row
events" (review finding; sandbox's real MariaDB and S3 server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.backup.service import run_backup
from datatier.binlog.archiver import Archiver
from datatier.cli import main
from tests.integration.binlog_support import fresh_policy, query
from tests.integration.conftest import SandboxHandle

DB = "t5xaref_db"
OTHER = "t5xaref_other"
TARGET = "t5xaref_r"
POLICY = "t5xaref"
ENV = {"DATATIER_BINLOG__POLICY": POLICY, "DATATIER_BINLOG__MAX_ARCHIVE_LAG": "2"}


@pytest.fixture(params=[OTHER, DB])
def pitr(
    request: pytest.FixtureRequest,
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A backup of DB; a row in DB; then, in a session whose default database is OTHER (or
    DB itself), an XA transaction inserting into DB.t, prepared and committed; the GTID
    after it."""
    sandbox = use_sandbox_config
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    loaded, policy, _ = fresh_policy(sandbox, POLICY, DB, ENV, TARGET, OTHER)
    try:
        query(sandbox.config, "primary", f"CREATE DATABASE {OTHER}")
        query(sandbox.config, "primary", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT)")
        sandbox.wait_replicated(60)
        run_backup(loaded, policy)
        query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (1, 'mine')")
        with sandbox.connect("primary") as conn, conn.cursor() as cur:
            cur.execute(f"USE {request.param}")
            cur.execute("SET SESSION binlog_format = 'ROW'")
            cur.execute("XA START 'xaref1'")
            cur.execute(f"INSERT INTO {DB}.t VALUES (2, 'xa')")
            for verb in ("END", "PREPARE", "COMMIT"):
                cur.execute(f"XA {verb} 'xaref1'")
            cur.execute("SELECT @@gtid_binlog_pos")
            gtid = str(cur.fetchone()[0])
        Archiver(loaded, policy, node="primary", once=True).run()
        yield gtid
    finally:
        for db in (DB, TARGET, OTHER):
            query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {db}")
        sandbox.wait_replicated(60)


def test_an_xa_transaction_on_a_restored_table_from_another_database_is_refused_clearly(
    pitr: str, use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["restore", "--policy", POLICY, "--until-gtid", pitr, "--rename", f"{DB}={TARGET}"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "ends inside" not in err
    assert "is XA transaction 'xaref1', prepared with changes to a restored database" in err, err
    assert "--until-gtid" in err, err  # the way out
    assert query(use_sandbox_config.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
