"""The first failure of a restore job stops its siblings' statements at once
(:mod:`datatier.mysql.interrupt`), on the sandbox's real primary.

A sibling waiting on a row lock (held here by an open transaction of the test) used to wait
out ``innodb_lock_wait_timeout`` (raised for these tests far past their assertions) before
the restore reported the failure. A stock client killed mid-statement does not end its
statement on the server: an INSERT waiting on a row lock runs on, and loads its row once
the lock is released (checked below: the row must not appear), so its connection is
killed too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from datatier.backup.manifest import ObjectRecord
from datatier.errors import OperationFailed
from datatier.mysql.connection import endpoint
from datatier.mysql.load import SQLLoader
from datatier.mysql.sqltext import PRELUDE
from tests.integration.conftest import SandboxHandle, wait_for
from tests.integration.integrity import loaded_config
from tests.integration.mysql.test_restore_frames import framed, insert

DB = "integ_stop"
LONG_WAIT = 3600


def record(table: str, size: int) -> ObjectRecord:
    key = f"p/id/data/{DB}/tables/{table}/data-00001.sql.zst"
    return ObjectRecord(key, "data", 1, "00", size, "STANDARD", DB, table, 1)


def restore_statements(sandbox: SandboxHandle, pattern: str) -> list[tuple[int, str, str]]:
    """(id, state, statement) of every statement on the primary matching ``pattern``
    (LIKE) but this query."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ID, STATE, INFO FROM information_schema.PROCESSLIST "
            "WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
            (pattern,),
        )
        return [tuple(row) for row in cur.fetchall()]


@pytest.fixture
def long_lock_waits(sandbox: SandboxHandle) -> Iterator[None]:
    """Lock waits of new sessions last an hour (the old behaviour would hang that long)."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.innodb_lock_wait_timeout, @@GLOBAL.lock_wait_timeout")
        saved = cur.fetchone()
        cur.execute(f"SET GLOBAL innodb_lock_wait_timeout = {LONG_WAIT}")
        cur.execute(f"SET GLOBAL lock_wait_timeout = {LONG_WAIT}")
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SET GLOBAL innodb_lock_wait_timeout = {int(saved[0])}")
        cur.execute(f"SET GLOBAL lock_wait_timeout = {int(saved[1])}")


@pytest.fixture
def target(sandbox: SandboxHandle, long_lock_waits: None) -> Iterator[SandboxHandle]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        for table in ("t", "victim"):
            cur.execute(f"CREATE TABLE {DB}.{table} (id INT PRIMARY KEY, v TEXT)")
        cur.execute(f"INSERT INTO {DB}.t VALUES (1, 'there before')")  # the failure
    yield sandbox
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")


@pytest.mark.parametrize("blocked", ["framed", "client"])
def test_the_first_failure_kills_a_sibling_waiting_on_a_row_lock(
    target: SandboxHandle, blocked: str
) -> None:
    """``framed``: the sibling's statement runs on a loader connection (libmariadb);
    ``client``: an unframed object of an older backup, through the stock client."""
    victim, failing = record("victim", 3 << 20), record("t", 2 << 20)  # separate jobs (not
    # one batch of small tables), the largest, victim, first
    victim_sql = insert("victim", [(1, "from the restore")])
    texts = {
        victim.key: framed(victim_sql) if blocked == "framed" else PRELUDE + victim_sql,
        failing.key: framed(insert("t", [(1, "duplicate")])),
    }

    def fetch(obj: ObjectRecord) -> Iterator[bytes]:
        if obj is failing:  # fail only once the sibling waits on the test's row lock
            wait_for(lambda: bool(waiting()), timeout=30)
        return iter([texts[obj.key]])

    def waiting() -> list[tuple[int, str, str]]:
        return restore_statements(target, "INSERT INTO `victim`%")

    config = loaded_config(target).config
    loaded: list[str] = []
    loader = SQLLoader(
        endpoint(config.mysql, "primary"),
        fetch,
        lambda db: db,
        jobs=2,
        on_loaded=lambda obj: loaded.append(obj.key),
    )
    holder = target.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO {DB}.victim VALUES (1, 'the test holds this row')")
        started = time.monotonic()
        with pytest.raises(OperationFailed) as caught:
            loader.load_all([victim, failing], ["data"])
        took = time.monotonic() - started
        left = waiting()
    finally:
        with holder.cursor() as cur:
            cur.execute("ROLLBACK")  # releases the row: an orphaned INSERT would run now
        holder.close()
    assert caught.value.message.startswith(f"loading the rows of `{DB}`.`{failing.table}`")
    assert "ERROR 1062" in caught.value.message or "Duplicate entry" in caught.value.message
    assert took < 10, f"the failure was reported after {took:.1f} s"
    assert left == [], "no statement of the restore is left on the server"
    assert loaded == []
    time.sleep(0.5)
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {DB}.victim")
        assert cur.fetchone()[0] == 0, "the killed sibling's row never arrives"


def test_the_first_failure_stops_an_alter_adding_deferred_keys(target: SandboxHandle) -> None:
    """An ALTER adding a table's deferred indexes waits on the test's lock of the table: it
    is killed too, and its table not reported loaded."""
    victim, failing = record("victim", 3 << 20), record("t", 2 << 20)
    texts = {
        victim.key: framed(insert("victim", [(2, "x")])),
        failing.key: framed(insert("t", [(1, "duplicate")])),
    }

    def fetch(obj: ObjectRecord) -> Iterator[bytes]:
        if obj is failing:
            wait_for(lambda: bool(restore_statements(target, "ALTER TABLE%")), timeout=30)
        return iter([texts[obj.key]])

    config = loaded_config(target).config
    loader = SQLLoader(endpoint(config.mysql, "primary"), fetch, lambda db: db, jobs=2)
    loader._alters[(DB, "victim")] = "ALTER TABLE `victim` ADD KEY `v` (`v`(10))"
    holder = target.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT * FROM {DB}.victim")  # a metadata lock the ALTER waits on
        started = time.monotonic()
        with pytest.raises(OperationFailed, match="Duplicate entry"):
            loader.load_all([victim, failing], ["data"])
        took = time.monotonic() - started
        left = restore_statements(target, "ALTER TABLE%")
    finally:
        with holder.cursor() as cur:
            cur.execute("ROLLBACK")
        holder.close()
    assert took < 10, f"the failure was reported after {took:.1f} s"
    assert left == []
