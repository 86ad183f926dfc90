"""DDL between the base backup and the target, replayed on the sandbox's real servers.

After the backup: ALTER TABLE (add, change type, drop a column), RENAME TABLE, DROP TABLE,
CREATE TABLE ... SELECT, TRUNCATE, a table created after the backup, a table named like its
database, a view; rows written around each. The reference is made without datatier:
replica2 replicates ``UNTIL master_gtid_pos = G``. ``restore --until-gtid G --rename``
(whole database, and ``--tables`` of one altered table) must give exactly its state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from datatier.cli import main
from tests.integration.binlog_support import (
    PitrWindow,
    binlog_env,
    checksums,
    pitr_window,
    query,
    set_env,
    until,
)
from tests.integration.conftest import SandboxHandle

DB = "pitr_ddl_db"
POLICY = "pitr_ddl"
DDL = [
    "ALTER TABLE a ADD COLUMN w INT DEFAULT 7",
    "INSERT INTO a VALUES (4, 'q', 8)",
    "UPDATE a SET v = 'X' WHERE id = 1",
    "RENAME TABLE b TO b2",
    "INSERT INTO b2 VALUES (3, 30)",
    "DROP TABLE c",
    "CREATE TABLE e AS SELECT * FROM a",
    "TRUNCATE d",
    "INSERT INTO d VALUES (5, 5)",
    "CREATE TABLE f (id INT PRIMARY KEY, s TEXT)",
    "INSERT INTO f VALUES (1, 'new')",
    f"ALTER TABLE {DB}.{DB} ADD COLUMN `{DB}.x` INT DEFAULT 4",
    f"INSERT INTO {DB} (id, n) VALUES (2, 2)",
    "CREATE VIEW v AS SELECT id, w FROM a",
    "ALTER TABLE a DROP COLUMN v, MODIFY w BIGINT",
    "INSERT INTO a VALUES (5, 9000000000)",
    "UPDATE a SET w = w + 100 WHERE id < 3",
]


@pytest.fixture(scope="module")
def scenario(sandbox: SandboxHandle) -> Iterator[dict[str, Any]]:
    config = sandbox.config
    # the source's view will name a dropped table: a later backup of every database
    # (provisioning a replica, say) would rightly refuse it, so DB goes afterwards
    with pitr_window(sandbox, POLICY, DB, "pitr_ddl_r", "pitr_ddl_t") as window:
        for sql in (
            "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20))",
            "INSERT INTO a VALUES (1, 'x'), (2, 'y'), (3, 'z')",
            "CREATE TABLE b (id INT PRIMARY KEY, n INT)",
            "INSERT INTO b VALUES (1, 10), (2, 20)",
            "CREATE TABLE c (id INT PRIMARY KEY, n INT)",
            "INSERT INTO c VALUES (1, 1)",
            "CREATE TABLE d (id INT PRIMARY KEY, n INT)",
            "INSERT INTO d VALUES (1, 1), (2, 2)",
            f"CREATE TABLE {DB} (id INT PRIMARY KEY, n INT)",
            f"INSERT INTO {DB} VALUES (1, 1)",
        ):
            _run(window, sql)
        window.backup()
        for sql in DDL:
            _run(window, sql)
        gtid = window.gtid()
        query(config, "replica2", "STOP SLAVE")
        try:
            _run(window, "DROP TABLE a")  # the disaster
            _run(window, "UPDATE d SET n = 0")
            window.archive()
            query(config, "replica2", f"START SLAVE UNTIL master_gtid_pos = '{gtid}'")
            until(lambda: query(config, "replica2", "SHOW SLAVE STATUS")[0][11] == "No", 60)
            reference = checksums(config, "replica2", DB)
            views = query(config, "replica2", f"SELECT * FROM {DB}.v ORDER BY id")
            yield {"gtid": gtid, "reference": reference, "views": views}
        finally:
            query(config, "replica2", "START SLAVE")


def _run(window: PitrWindow, sql: str) -> None:
    with window.session() as cur:
        cur.execute(sql)


def restore(gtid: str, *args: str) -> int:
    return main(["restore", "--policy", POLICY, "--until-gtid", gtid, *args])


@pytest.fixture
def pitr_env(use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> SandboxHandle:
    set_env(monkeypatch, binlog_env(POLICY))
    return use_sandbox_config


def test_whole_database_renamed_equals_the_reference(
    scenario: dict[str, Any], pitr_env: SandboxHandle
) -> None:
    query(pitr_env.config, "primary", "DROP DATABASE IF EXISTS pitr_ddl_r")
    code = restore(scenario["gtid"], "--rename", f"{DB}=pitr_ddl_r")
    assert code == 0
    got = checksums(pitr_env.config, "primary", "pitr_ddl_r")
    assert set(got) == set(scenario["reference"])  # b2, e, f there; b, c gone
    assert got == scenario["reference"]
    assert (
        query(pitr_env.config, "primary", "SELECT * FROM pitr_ddl_r.v ORDER BY id")
        == (scenario["views"])
    )


def test_one_altered_table_equals_the_reference(
    scenario: dict[str, Any], pitr_env: SandboxHandle
) -> None:
    query(pitr_env.config, "primary", "DROP DATABASE IF EXISTS pitr_ddl_t")
    code = restore(scenario["gtid"], "--tables", f"{DB}.a", "--rename", f"{DB}=pitr_ddl_t")
    assert code == 0
    got = checksums(pitr_env.config, "primary", "pitr_ddl_t")
    assert got == {k: v for k, v in scenario["reference"].items() if k.split("#")[0] == "a"}
