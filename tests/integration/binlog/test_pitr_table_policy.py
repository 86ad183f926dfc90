"""A point-in-time restore of a policy that backs up some tables of a database
(``[source] tables = ["db.a"]``): the replay also sent the rows written to the database's
other tables, which the base backup does not hold, so it failed with "Table 'db_r.b' doesn't
exist" after the base was loaded (exit 1, a partly restored database), while
``--dry-run --scan`` had said all is well (tester's regression test, sandbox's real MariaDB
and S3 server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "t5tpol"
TARGET = "t5tpol_r"
POLICY = "t5tpol"


@pytest.fixture(
    params=[f'tables = ["{DB}.a"]', f'databases = ["{DB}"]\nexclude_tables = ["{DB}.b"]'],
    ids=["tables", "exclude_tables"],
)
def pitr(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """Tables a (backed up) and b (not); then rows into both, an ALTER of b and a new
        table c (the policy takes it: with exclude_tables, c is replayed; with tables, not), a
    view, and statement-format inserts into a and b."""
    source = f'engine = "mysql"\n[source]\nnode = "replica1"\n{request.param}\n'
    with pitr_window(
        use_sandbox_config, POLICY, DB, TARGET, monkeypatch=monkeypatch, text=source
    ) as window:
        window.sql(*(f"CREATE TABLE {DB}.{table} (id INT PRIMARY KEY)" for table in ("a", "b")))
        window.backup()
        window.sql(
            f"INSERT INTO {DB}.a VALUES (1)",
            f"INSERT INTO {DB}.b VALUES (1)",  # not backed up
            f"INSERT INTO {DB}.a VALUES (2)",
            f"ALTER TABLE {DB}.b ADD COLUMN v INT",
            f"CREATE TABLE {DB}.c (id INT PRIMARY KEY)",
            f"INSERT INTO {DB}.c VALUES (7)",
            f"CREATE VIEW {DB}.v AS SELECT id FROM {DB}.a",
        )
        # MariaDB's default MIXED logs these as statements
        with window.session(binlog_format="STATEMENT") as cur:
            cur.execute("INSERT INTO a VALUES (5)")
            cur.execute("INSERT INTO b (id) VALUES (5)")
        gtid = window.gtid()
        window.archive()
        yield gtid


def test_the_replay_keeps_to_the_tables_the_policy_backs_up(
    pitr: str, use_sandbox_config: SandboxHandle
) -> None:
    """Rows, DDL and statement-format changes of the tables the backup left out are left
    out, by what the backup left out even though the policy was edited since (it now
    excludes a); views and the kept tables' statements replay; a table created later
    follows the policy as it is now (c)."""
    config = use_sandbox_config.config
    # the policy edited after the backup: the replay goes by what the backup left out
    use_sandbox_config.write_policy(
        POLICY,
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
        f'exclude_tables = ["{DB}.a"]\n',
    )
    argv = ["restore", "--policy", POLICY, "--until-gtid", pitr, "--rename", f"{DB}={TARGET}"]
    assert main([*argv, "--dry-run", "--scan"]) == 0
    assert main(argv) == 0
    rows = [(1,), (2,), (5,)]
    assert query(config, "primary", f"SELECT id FROM {TARGET}.a ORDER BY id") == rows
    assert query(config, "primary", f"SELECT id FROM {TARGET}.v ORDER BY id") == rows
    tables = [r[0] for r in query(config, "primary", f"SHOW TABLES FROM {TARGET}")]
    assert tables == ["a", "c", "v"], tables  # c: the policy as it is now takes it
    assert query(config, "primary", f"SELECT id FROM {TARGET}.c") == [(7,)]
