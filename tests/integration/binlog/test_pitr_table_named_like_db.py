"""A renamed point-in-time restore of a database holding a table of its own name
(``shop.shop``): a view created after the backup as ``SELECT shop.id FROM shop`` (``shop.id``
is table ``shop``'s column) had ``shop.`` rewritten to the new database name, so the replay
failed with "Unknown column 'shop_r.id'" after the base backup was loaded: exit 1 and a
partly restored database (tester's regression test, sandbox's real MariaDB and S3 server).
Now such a statement is refused before anything changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "t5same"
TARGET = "t5same_r"
POLICY = "t5same"


@pytest.fixture
def pitr(use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with pitr_window(use_sandbox_config, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        window.sql(
            f"CREATE TABLE {DB}.{DB} (id INT PRIMARY KEY, v INT)",
            f"INSERT INTO {DB}.{DB} VALUES (1, 1), (2, 2)",
        )
        window.backup()
        with window.session() as cur:
            cur.execute(f"CREATE VIEW v AS SELECT {DB}.id FROM {DB}")  # table.column
            cur.execute(f"INSERT INTO {DB} VALUES (3, 3)")
        gtid = window.gtid()
        window.archive()
        yield gtid


def test_a_view_on_a_table_named_like_its_database_is_refused_before_anything_changes(
    pitr: str, use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """``shop.id`` could be table ``shop``'s column or database ``shop``'s table ``id``;
    only the server's parser can tell. Renamed, the replay is refused up front (exit 2,
    naming the statement, the scan says it too); under its own name it restores."""
    config = use_sandbox_config.config
    argv = ["restore", "--policy", POLICY, "--until-gtid", pitr]
    capsys.readouterr()
    assert main([*argv, "--rename", f"{DB}={TARGET}", "--dry-run", "--scan"]) == 2
    assert main([*argv, "--rename", f"{DB}={TARGET}"]) == 2
    err = capsys.readouterr().err
    assert f"names {DB} both as a table" in err and "no --rename" in err, err
    assert query(config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == [], "nothing changed"
    query(config, "primary", f"DROP DATABASE {DB}")
    assert main(argv) == 0
    assert query(config, "primary", f"SELECT id FROM {DB}.v ORDER BY id") == [(1,), (2,), (3,)]
