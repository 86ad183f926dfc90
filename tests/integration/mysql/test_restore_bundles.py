"""Small tables' data objects load in bundles, one stock client per bundle
(:mod:`datatier.mysql.load`): every row arrives, a failure names the object it happened in
(not just the bundle), and definition objects share one connection per thread without one
object's session leaking into the next. On the sandbox's real primary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import ObjectRecord
from datatier.errors import OperationFailed
from datatier.mysql.connection import endpoint
from datatier.mysql.load import SQLLoader
from datatier.mysql.sqltext import PRELUDE, block, creation_session
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import loaded_config

DB = "integ_bundles"
TABLES = 5


def record(kind: str, table: str, part: int = 0, raw_size: int = 100) -> ObjectRecord:
    key = f"p/id/data/{DB}/tables/{table}/{kind}.sql.zst"
    return ObjectRecord(key, kind, 1, "00", raw_size, "STANDARD", DB, table, part)


def schema(table: str) -> bytes:
    statements = [f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} (id INT PRIMARY KEY)"]
    return PRELUDE + block(statements).encode()


def data(table: str, rows: int) -> bytes:
    values = ",\n".join(f"({i})" for i in range(rows))
    return PRELUDE + f"INSERT INTO `{table}` VALUES\n{values};\n".encode()


@pytest.fixture
def target(sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
    yield sandbox
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")


def loader(sandbox: SandboxHandle, texts: dict[str, bytes], jobs: int = 2) -> SQLLoader:
    config = loaded_config(sandbox).config
    return SQLLoader(
        endpoint(config.mysql, "primary"),
        lambda obj: iter([texts[obj.key]]),
        lambda db: db,
        jobs=jobs,
    )


def test_small_tables_load_in_bundles_with_every_row(
    target: SandboxHandle, clients: list[Any]
) -> None:
    names = [f"t{i}" for i in range(TABLES)]
    objects = [record("schema", t) for t in names] + [record("data", t, 1) for t in names]
    texts = {o.key: schema(o.table or "") for o in objects if o.kind == "schema"}
    texts |= {o.key: data(o.table or "", 10 + i) for i, o in enumerate(objects[TABLES:])}
    loaded: list[str] = []
    sql = loader(target, texts)
    sql.on_loaded = lambda obj: loaded.append(obj.key)
    sql.load_all(objects, ["schema", "data"])
    assert len(clients) == 1  # five tables' data through one client
    assert sorted(loaded) == sorted(o.key for o in objects)
    with target.connect() as conn, conn.cursor() as cur:
        for i, name in enumerate(names):
            cur.execute(f"SELECT COUNT(*) FROM {DB}.{name}")
            assert cur.fetchone() == (10 + i,)


def test_a_failure_in_a_bundle_names_its_object_and_line(target: SandboxHandle) -> None:
    names = [f"t{i}" for i in range(TABLES)]
    objects = [record("schema", t) for t in names] + [record("data", t, 1) for t in names]
    texts = {o.key: schema(o.table or "") for o in objects if o.kind == "schema"}
    texts |= {o.key: data(o.table or "", 3) for o in objects[TABLES:]}
    broken = objects[TABLES + 3]
    texts[broken.key] = data(broken.table or "", 2) + b"INSERT INTO `t3` VALUES (0);\n"
    lines = texts[broken.key].count(b"\n")
    with pytest.raises(OperationFailed) as caught:
        loader(target, texts, jobs=2).load_all(objects, ["schema", "data"])
    label = f"the rows of `{DB}`.`{broken.table}` (part 1)"
    assert caught.value.message.startswith(f"loading {label} (its line {lines}) failed")
    assert "Duplicate entry" in caught.value.message


def test_definitions_on_one_connection_do_not_inherit_a_session(target: SandboxHandle) -> None:
    """A trigger created under NO_ZERO_DATE and latin1, then, on the same connection, a
    table whose zero-date default only the PRELUDE's sql_mode accepts."""
    base = ["CREATE TABLE a (id INT PRIMARY KEY, v INT)"]
    trigger = [
        "DROP TRIGGER IF EXISTS a_bi",
        *creation_session("STRICT_ALL_TABLES,NO_ZERO_DATE", "latin1_swedish_ci"),
        "CREATE TRIGGER a_bi BEFORE INSERT ON a FOR EACH ROW SET NEW.v = 1",
    ]
    later = ["CREATE TABLE b (id INT PRIMARY KEY, d DATE NOT NULL DEFAULT '0000-00-00')"]
    objects = [record("schema", "a"), record("triggers", "a"), record("views", "b")]
    bodies = (PRELUDE + block(s).encode() for s in (base, trigger, later))
    texts = dict(zip((o.key for o in objects), bodies, strict=True))
    loader(target, texts, jobs=1).load_all(objects, ["schema", "triggers", "views"])
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT SQL_MODE, COLLATION_CONNECTION FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = %s",
            (DB,),
        )
        assert cur.fetchone() == ("STRICT_ALL_TABLES,NO_ZERO_DATE", "latin1_swedish_ci")
        cur.execute(f"SHOW CREATE TABLE {DB}.b")
        assert "DEFAULT '0000-00-00'" in cur.fetchone()[1]
