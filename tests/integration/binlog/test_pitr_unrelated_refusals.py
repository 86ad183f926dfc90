"""Transactions the replay cannot reproduce (an XA transaction, user variables in statement
format) in a database *outside* the restore refused the whole point-in-time restore (exit 2),
although nothing of them would be replayed: one application using XA (JTA) or a statement-
format session on another database makes every other database unrestorable past that point
(tester's regression tests, sandbox's real MariaDB and S3 server).
Now such a transaction is left out; one acting on a restored database is still refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "t5unrel_db"
OTHER = "t5unrel_other"
TARGET = "t5unrel_r"
POLICY = "t5unrel"
CASES = {
    "xa": (
        "ROW",
        [
            "XA START 't5'",
            "INSERT INTO t VALUES (9, 'xa')",
            "XA END 't5'",
            "XA PREPARE 't5'",
            "XA COMMIT 't5'",
        ],
    ),
    "user-variable": ("STATEMENT", ["SET @a = 5", "INSERT INTO t VALUES (@a, 'var')"]),
}


@pytest.fixture(params=list(CASES))
def pitr(
    request: pytest.FixtureRequest,
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A row in DB after the backup, then the case's transaction in OTHER; the GTID after."""
    binlog_format, statements = CASES[request.param]
    with pitr_window(
        use_sandbox_config, POLICY, DB, TARGET, OTHER, monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE DATABASE {OTHER}",
            *(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v TEXT)" for db in (DB, OTHER)),
        )
        window.backup()
        window.sql(f"INSERT INTO {DB}.t VALUES (1, 'mine')")
        with window.session(OTHER, binlog_format=binlog_format) as cur:
            for sql in statements:
                cur.execute(sql)
        gtid = window.gtid()
        window.archive()
        yield gtid


def test_an_unreplayable_transaction_outside_the_restore_does_not_block_it(
    pitr: str, use_sandbox_config: SandboxHandle
) -> None:
    argv = ["restore", "--policy", POLICY, "--until-gtid", pitr, "--rename", f"{DB}={TARGET}"]
    assert main(argv) == 0
    assert query(use_sandbox_config.config, "primary", f"SELECT id, v FROM {TARGET}.t") == [
        (1, "mine")
    ]


def test_an_xa_commit_of_a_transaction_prepared_before_the_backup_is_refused(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prepared before the base's snapshot (its rows are not in the backup), committed
    after: the commit alone is in the replayed range. Leaving it out would lose the rows
    without a word; it is refused (exit 2), nothing changed."""
    sandbox = use_sandbox_config
    with pitr_window(sandbox, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT)")
        with sandbox.connect("primary") as conn, conn.cursor() as cur:
            cur.execute("SET SESSION binlog_format = 'ROW'")
            for sql in ("XA START 't5pre'", f"INSERT INTO {DB}.t VALUES (4, 'xa')",
                        "XA END 't5pre'", "XA PREPARE 't5pre'"):  # fmt: skip
                cur.execute(sql)
        window.backup()
        window.sql("XA COMMIT 't5pre'")
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", POLICY, "--until-gtid", gtid, "--rename", f"{DB}={TARGET}"]
        assert main(argv) == 2
        assert query(sandbox.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
