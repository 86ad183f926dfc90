"""Statements whose session default database is outside the restore, replayed on the
sandbox's real MariaDB and S3 server: replayed when every name in them is qualified with the
restored database, refused when one is not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "pitr_q_db"
OTHER = "pitr_q_other"
TARGETS = ("pitr_q_r", "pitr_q_r2")
POLICY = "pitr_q"
QUALIFIED = [  # run with OTHER as the default database, in statement format
    f"UPDATE {DB}.a SET v = 'updated' WHERE id = 1",
    f"INSERT INTO `{DB}`.`a` (id, v) VALUES (3, 'three') /* {OTHER}.a */",
    f"DELETE FROM {DB}.a WHERE v = 'two' -- FROM a",
    f"RENAME TABLE {DB}.b TO {DB}.b2",
    f"DROP TABLE {DB}.c",
    f"TRUNCATE TABLE {DB}.d",
]
UNQUALIFIED = f"INSERT INTO {DB}.a SELECT id + 10, v FROM t"  # t is OTHER.t


@pytest.fixture
def pitr(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """The backup, then QUALIFIED and UNQUALIFIED (the GTIDs after each), archived; OTHER is
    dropped afterwards, so a replay that needed it (USE) would fail."""
    with pitr_window(
        use_sandbox_config, POLICY, DB, OTHER, *TARGETS, monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE DATABASE {OTHER}",
            f"CREATE TABLE {OTHER}.t (id INT, v TEXT)",
            f"INSERT INTO {OTHER}.t VALUES (1, 'o')",
        )
        for table in ("a", "b", "c", "d"):
            window.sql(
                f"CREATE TABLE {DB}.{table} (id INT PRIMARY KEY, v TEXT)",
                f"INSERT INTO {DB}.{table} VALUES (1, 'one'), (2, 'two')",
            )
        window.backup()
        with window.session(OTHER, binlog_format="STATEMENT") as cur:
            for sql in QUALIFIED:
                cur.execute(sql)
            gtid = window.gtid()
            cur.execute(UNQUALIFIED)
        last = window.gtid()
        window.archive()
        window.sql(f"DROP DATABASE {OTHER}")
        yield gtid, last


def test_qualified_statements_from_another_default_database_replay(
    pitr: tuple[str, str], use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    config = use_sandbox_config.config
    code = main(
        ["restore", "--policy", POLICY, "--until-gtid", pitr[0], "--rename", f"{DB}=pitr_q_r"]
    )
    # Before: exit 2, "acts on restored databases and on pitr_q_other".
    assert code == 0, capsys.readouterr().err
    rows = query(config, "primary", "SELECT id, v FROM pitr_q_r.a ORDER BY id")
    assert rows == [(1, "updated"), (3, "three")]
    tables = {r[0] for r in query(config, "primary", "SHOW TABLES FROM pitr_q_r")}
    assert tables == {"a", "b2", "d"}
    assert query(config, "primary", "SELECT COUNT(*) FROM pitr_q_r.d") == [(0,)]
    assert query(config, "primary", "SELECT COUNT(*) FROM pitr_q_r.b2") == [(2,)]
    assert query(config, "primary", f"SHOW DATABASES LIKE '{OTHER}'") == []  # no USE of it


def test_a_statement_with_an_unqualified_name_is_still_refused(
    pitr: tuple[str, str], use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["restore", "--policy", POLICY, "--until-gtid", pitr[1], "--rename", f"{DB}=pitr_q_r2"]
    assert main([*argv, "--dry-run", "--scan"]) == 2
    err = capsys.readouterr().err
    assert f"acts on restored databases and on {OTHER}" in err, err
    assert main(argv) == 2
    assert f"acts on restored databases and on {OTHER}" in capsys.readouterr().err
    assert query(use_sandbox_config.config, "primary", "SHOW DATABASES LIKE 'pitr_q_r2'") == []
