"""An XA transaction whose statements write a restored database's table: its prepare is
refused (exit 2, nothing restored) and the message says so (the XA transaction, its xid and
GTID, what to do). With another default database it read "ends inside a statement's row
events" (review finding; sandbox's real MariaDB and S3 server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "t5xaref_db"
OTHER = "t5xaref_other"
TARGET = "t5xaref_r"
POLICY = "t5xaref"


@pytest.fixture(params=[OTHER, DB])
def pitr(
    request: pytest.FixtureRequest,
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A backup of DB; a row in DB; then, in a session whose default database is OTHER (or
    DB itself), an XA transaction inserting into DB.t, prepared and committed; the GTID
    after it."""
    with pitr_window(
        use_sandbox_config, POLICY, DB, TARGET, OTHER, monkeypatch=monkeypatch
    ) as window:
        window.sql(f"CREATE DATABASE {OTHER}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT)")
        window.backup()
        window.sql(f"INSERT INTO {DB}.t VALUES (1, 'mine')")
        with window.session(request.param, binlog_format="ROW") as cur:
            cur.execute("XA START 'xaref1'")
            cur.execute(f"INSERT INTO {DB}.t VALUES (2, 'xa')")
            for verb in ("END", "PREPARE", "COMMIT"):
                cur.execute(f"XA {verb} 'xaref1'")
        gtid = window.gtid()
        window.archive()
        yield gtid


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
