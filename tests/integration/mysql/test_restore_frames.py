"""Framed data objects (:mod:`datatier.mysql.frames`) load statement by statement on
datatier's own connections, with no stock client; older unframed objects still go to the
client. Whatever the values hold, statements are cut where the frames say; a failure names
the object and statement; a frame holding a second statement is refused by the server; bad
frames are an integrity failure. On the sandbox's real primary and replica."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import ObjectRecord
from datatier.errors import IntegrityFailure, OperationFailed
from datatier.mysql.connection import endpoint
from datatier.mysql.frames import frame
from datatier.mysql.load import SQLLoader
from datatier.mysql.sqltext import PRELUDE, prelude_statements
from tests.integration.conftest import SandboxHandle, wait_for
from tests.integration.integrity import loaded_config

DB = "integ_frames"
VALUES = [
    "a;\nb",
    "-- next statement: 3 bytes\n",
    "');\nINSERT INTO `t` VALUES (99,'x');\n",
    "back\\slash'quote",
    "nul\0byte\x1a",
    "数据 ✓ 😀\r\n",
]


def record(table: str, part: int) -> ObjectRecord:
    key = f"p/id/data/{DB}/tables/{table}/data-{part:05d}.sql.zst"
    return ObjectRecord(key, "data", 1, "00", 100, "STANDARD", DB, table, part)


def insert(table: str, rows: list[tuple[int, str]]) -> bytes:
    values = ",\n".join(f"({i},{literal(v)})" for i, v in rows)
    return f"INSERT INTO `{table}` (`id`,`v`) VALUES\n{values};\n".encode()


def literal(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
    return "'" + escaped.replace("\x1a", "\\Z") + "'"


def framed(*statements: bytes) -> bytes:
    return PRELUDE + b"".join(frame(len(s)) + s for s in statements)


@pytest.fixture
def target(sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        for table in ("t", "u", "victim"):
            cur.execute(f"CREATE TABLE {DB}.{table} (id INT PRIMARY KEY, v TEXT)")
    sandbox.wait_replicated()
    yield sandbox
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")


def loader(
    sandbox: SandboxHandle, texts: dict[str, bytes], *, piece: int = 7, binlog: bool = True
) -> SQLLoader:
    """A loader whose objects arrive in ``piece``-byte chunks (frames cut anywhere)."""
    config = loaded_config(sandbox).config

    def fetch(obj: ObjectRecord) -> Iterator[bytes]:
        text = texts[obj.key]
        return iter([text[i : i + piece] for i in range(0, len(text), piece)])

    return SQLLoader(endpoint(config.mysql, "primary"), fetch, lambda db: db, binlog=binlog)


def rows(sandbox: SandboxHandle, table: str, node: str = "primary") -> list[tuple[int, str]]:
    with sandbox.connect(node) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, v FROM {DB}.{table} ORDER BY id")
        return [(i, v) for i, v in cur.fetchall()]


def test_framed_objects_load_every_value_without_a_client(
    target: SandboxHandle, clients: list[Any]
) -> None:
    wanted = [(i, VALUES[i % len(VALUES)] * (1 + i % 3)) for i in range(60)]
    objs = [record("t", 1), record("t", 2), record("u", 1)]
    texts = {
        objs[0].key: framed(*(insert("t", wanted[i : i + 7]) for i in range(0, 28, 7))),
        objs[1].key: framed(insert("t", wanted[28:])),
        objs[2].key: framed(insert("u", wanted[:5])),
    }
    loaded: list[str] = []
    sql = loader(target, texts)
    sql.on_loaded = lambda obj: loaded.append(obj.key)
    sql.load_all(objs, ["data"])
    assert rows(target, "t") == wanted
    assert rows(target, "u") == wanted[:5]
    assert sorted(loaded) == sorted(o.key for o in objs)
    assert clients == []


@pytest.mark.parametrize("unframed_first", [True, False])
def test_unframed_objects_of_older_backups_go_to_the_stock_client(
    target: SandboxHandle, clients: list[Any], unframed_first: bool
) -> None:
    """Small objects of one database load as one batch on one thread, whichever kind comes
    first in it: an unframed first one sends the batch through one client, a framed first
    one sends only the unframed ones there."""
    wanted = [(i, VALUES[i % len(VALUES)]) for i in range(12)]
    objs = [record("t", 1), record("u", 1), record("victim", 1)]
    texts = {
        objs[0].key: PRELUDE + insert("t", wanted),
        objs[1].key: framed(insert("u", wanted)),
        objs[2].key: framed(insert("victim", wanted[:3])),
    }
    if not unframed_first:
        objs.reverse()
    loader(target, texts).load_all(objs, ["data"])
    assert rows(target, "t") == wanted
    assert rows(target, "u") == wanted
    assert rows(target, "victim") == wanted[:3]
    assert len(clients) == 1


def test_a_failing_statement_names_its_object_and_number(target: SandboxHandle) -> None:
    obj = record("t", 1)
    first, duplicate = insert("t", [(1, "a"), (2, "b")]), insert("t", [(3, "c"), (2, "d")])
    with pytest.raises(OperationFailed) as caught:
        loader(target, {obj.key: framed(first, duplicate)}).load_all([obj], ["data"])
    number = len(prelude_statements()) + 2
    assert caught.value.message.startswith(
        f"loading the rows of `{DB}`.`t` (part 1) failed at its statement {number}: ERROR 1062"
    )
    assert rows(target, "t") == [(1, "a"), (2, "b")]  # autocommit, as the stock client


def test_a_frame_holding_a_second_statement_is_refused_by_the_server(
    target: SandboxHandle,
) -> None:
    obj = record("t", 1)
    smuggled = b"INSERT INTO `t` VALUES (5,'x'); DROP TABLE victim;\n"
    with pytest.raises(OperationFailed, match="ERROR 1064"):
        loader(target, {obj.key: framed(smuggled)}).load_all([obj], ["data"])
    assert rows(target, "t") == []
    assert rows(target, "victim") == []  # still there


@pytest.mark.parametrize(
    ("text", "applied"),
    [
        (PRELUDE + frame(500) + insert("t", [(1, "a")]), []),  # promises more than there is
        (PRELUDE + frame(10) + insert("t", [(1, "a")]), []),  # cuts into a statement
        (framed(insert("t", [(1, "a")])) + insert("t", [(2, "b")]), [(1, "a")]),  # unframed
    ],
)
def test_frames_that_lie_are_an_integrity_failure(
    target: SandboxHandle, text: bytes, applied: list[tuple[int, str]]
) -> None:
    """Statements before the bad frame ran (as a client would have run them); nothing at
    or after it did."""
    obj = record("t", 1)
    with pytest.raises(IntegrityFailure, match=obj.key):
        loader(target, {obj.key: text}).load_all([obj], ["data"])
    assert rows(target, "t") == applied


@pytest.mark.parametrize("binlog", [True, False])
def test_binlog_off_keeps_the_rows_off_the_replicas(target: SandboxHandle, binlog: bool) -> None:
    obj = record("t", 1)
    wanted = [(1, "a"), (2, "b")]
    loader(target, {obj.key: framed(insert("t", wanted))}, binlog=binlog).load_all([obj], ["data"])
    target.wait_replicated()
    assert rows(target, "t") == wanted
    assert rows(target, "t", "replica1") == (wanted if binlog else [])


def test_a_connection_killed_mid_object_fails_the_load_and_names_it(
    target: SandboxHandle,
) -> None:
    """The server kills the loading connection while its statement waits on a lock (an
    operator's KILL, a failover): the load fails at once, naming the object and the
    statement, and no statement after it runs."""
    obj = record("t", 1)
    statements = [insert("t", [(i, "x")]) for i in range(5)]
    sql = loader(target, {obj.key: framed(*statements)})
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sql.load_all([obj], ["data"])
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    lock = target.connect()
    try:
        with lock.cursor() as cur:
            cur.execute(f"LOCK TABLES {DB}.t WRITE")
        worker = threading.Thread(target=run)
        worker.start()
        waiting: list[int] = []

        def blocked() -> bool:
            with target.connect() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB=%s AND "
                    "STATE LIKE 'Waiting for table metadata lock%%'",
                    (DB,),
                )
                waiting[:] = [row[0] for row in cur.fetchall()]
            return bool(waiting)

        wait_for(blocked, timeout=30)
        with target.connect() as conn, conn.cursor() as cur:
            cur.execute(f"KILL {waiting[0]}")
    finally:
        with lock.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        lock.close()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], OperationFailed)
    number = len(prelude_statements()) + 1
    assert failure[0].message.startswith(
        f"loading the rows of `{DB}`.`t` (part 1) failed at its statement {number}: ERROR"
    )
    assert rows(target, "t") == []


def test_a_connection_dropped_while_idle_between_objects_is_replaced(
    target: SandboxHandle,
) -> None:
    """A thread's connection sits idle while it runs other work (an ALTER adding deferred
    indexes, a bundle's client): the server may drop it (wait_timeout, a KILL). The next
    object gets a new connection, in the same session (here: binlog off), not an error."""
    objs = [record("t", 1), record("u", 1)]
    texts = {
        objs[0].key: framed(insert("t", [(1, "a")])),
        objs[1].key: framed(insert("u", [(2, "b")])),
    }
    sql = loader(target, texts, binlog=False)
    sql.jobs = 1  # one thread, one connection, objects in turn
    killed: list[int] = []

    def drop_idle(_: ObjectRecord) -> None:
        with target.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB=%s AND COMMAND='Sleep'",
                (DB,),
            )
            for (thread,) in cur.fetchall():
                cur.execute(f"KILL {thread}")
                killed.append(thread)

    sql.on_loaded = drop_idle
    sql.load_all(objs, ["data"])
    assert killed, "the first object's connection was idle in the database"
    target.wait_replicated()
    assert rows(target, "t") + rows(target, "u") == [(1, "a"), (2, "b")]
    assert rows(target, "u", "replica1") == [], "the new connection skips the binlog too"


def test_binlog_off_without_the_privilege_is_one_clear_error(target: SandboxHandle) -> None:
    user, password = "integ_nobinlog", "pw-nobinlog"
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT ALL ON {DB}.* TO '{user}'@'%'")
    try:
        config = loaded_config(target).config
        ep = dataclasses.replace(endpoint(config.mysql, "primary"), user=user, password=password)
        obj = record("t", 1)
        texts = {obj.key: framed(insert("t", [(1, "a")]))}
        sql = SQLLoader(ep, lambda o: iter([texts[o.key]]), lambda db: db, binlog=False)
        with pytest.raises(OperationFailed) as caught:
            sql.load_all([obj], ["data"])
        assert caught.value.message.startswith(
            f"turning the binlog off for a restore on {ep.label} failed: ERROR 1227"
        )
        assert password not in caught.value.message
        with target.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER=%s", (user,)
            )
            assert cur.fetchone() == (0,), "the refused connection was closed"
        assert rows(target, "t") == []
    finally:
        with target.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
