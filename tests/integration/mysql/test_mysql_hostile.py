"""Hostile but legal names and bodies against the parallel dump, on the real sandbox.

Regression tests for issue 12 items 1 and 2: text in a routine body that looks like
mariadb-dump's section titles once overwrote a table's data object (exit 0, t1's rows gone),
and a table whose name held a newline was appended to the previous table's objects. Each
object is now produced per table from the server's catalogue, so neither can happen; these
tests create exactly those objects (through the driver, which keeps comments) and more, then
back up, verify, restore and compare.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle, q

DB = "hostile db"
CJK_DB = "数据库" * 16 + "库库"  # 50 characters: 450 bytes percent-encoded
FAKE_TITLE = "--\n-- Dumping data for table `t1`\n--"
TABLES = {
    "t1": 300,
    "t1\nnext": 7,  # once appended to t1's objects
    FAKE_TITLE: 5,  # a table named like a dump section title
    "Table structure for table `t1`": 3,
    "..": 2,
    ".": 2,
    ".datatier-tmp.x": 2,
    "_routines.sql.zst": 2,
    "a~b": 2,
    "T1": 4,  # differs from t1 only by case
}
PROC = """CREATE PROCEDURE `p;;` (OUT n INT)
BEGIN
  -- a comment the driver keeps
--
-- Dumping data for table `t1`
--
/*
--
-- Table structure for table `t1`
--
*/
  SELECT ';;' AS a, '$$' AS b, 'DELIMITER ;' AS c, '\\nUSE other;' AS d;
  SELECT COUNT(*) INTO n FROM t1 AS
delimiter
  WHERE delimiter.id > 0;
END"""
FUNC = "CREATE FUNCTION `f$$`(x INT) RETURNS INT DETERMINISTIC RETURN x + LENGTH(';;$$//')"
TRIGGER = (
    "CREATE TRIGGER `tr\n--` BEFORE INSERT ON t1 FOR EACH ROW BEGIN\n"
    "-- Dumping data for table `t1`\nSET NEW.v = CONCAT(NEW.v, ';;');\nEND"
)
VIEW = "CREATE VIEW `v\n-- Final view structure for view` AS SELECT id, 'x`y' AS `q`, v FROM t1"
EVENT = (
    "CREATE EVENT `ev;;` ON SCHEDULE EVERY 1 DAY DO "
    "INSERT INTO `a~b` VALUES (1000 + (SELECT COUNT(*) FROM t1))"
)


@pytest.fixture(scope="module")
def hostile(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (DB, CJK_DB):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
            cur.execute(f"CREATE DATABASE {q(db)}")
        cur.execute(f"USE {q(DB)}")
        for name, rows in TABLES.items():
            cur.execute(f"CREATE TABLE {q(name)} (id INT PRIMARY KEY, v VARCHAR(64))")
            cur.executemany(
                f"INSERT INTO {q(name)} VALUES (%s, %s)",
                [(i, f"{name[:20]} row {i}") for i in range(1, rows + 1)],
            )
        for statement in (PROC, FUNC, TRIGGER, VIEW, EVENT):
            cur.execute(statement)
        cjk_table = "表" * 50
        cur.execute(f"CREATE TABLE {q(CJK_DB)}.{q(cjk_table)} (id INT PRIMARY KEY, v TEXT)")
        cur.execute(f"INSERT INTO {q(CJK_DB)}.{q(cjk_table)} VALUES (1, '数据'), (2, NULL)")
    sandbox.wait_replicated()
    sandbox.write_policy(
        "hostile",
        'engine = "mysql"\nchunk_mb = 1\n[source]\nnode = "replica1"\n'
        f"databases = [{json.dumps(DB)}, {json.dumps(CJK_DB)}]\n",
    )
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (DB, CJK_DB):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle, hostile: None) -> Manifest:
    loaded = load(str(sandbox.config_path), environ={})
    return run_backup(loaded, load_policy(loaded, "hostile"))


def snapshot(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    """Every table's rows and every routine/trigger/view/event definition of ``database``."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE'",
            (database,),
        )
        tables = sorted(r[0] for r in cur.fetchall())
        found: dict[str, Any] = {}
        for table in tables:
            cur.execute(f"SELECT * FROM {q(database)}.{q(table)} ORDER BY id")
            found[f"rows {table}"] = cur.fetchall()
        for what, sql in (
            ("routines", "SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES "
                         "WHERE ROUTINE_SCHEMA=%s ORDER BY 1"),
            ("triggers", "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                         "WHERE TRIGGER_SCHEMA=%s ORDER BY 1"),
            ("events", "SELECT EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS "
                       "WHERE EVENT_SCHEMA=%s ORDER BY 1"),
            ("views", "SELECT TABLE_NAME FROM information_schema.VIEWS "
                      "WHERE TABLE_SCHEMA=%s ORDER BY 1"),
        ):  # fmt: skip
            cur.execute(sql, (database,))
            found[what] = cur.fetchall()
        found["tables"] = tables
    return found


def test_every_table_gets_its_own_objects_and_record(backup: Manifest) -> None:
    records = {(t.database, t.name): t.rows for t in backup.tables}
    for name, rows in TABLES.items():
        assert records[(DB, name)] == rows, name
    keys = [o.key for o in backup.objects]
    assert len(keys) == len(set(keys)), "every object key is unique"
    assert all(len(k.encode()) < 1024 for k in keys), "S3 keys end at 1,024 bytes"
    sections = [
        (o.database, s.table, s.rows)
        for o in backup.objects
        if o.kind == "bundle"
        for s in o.sections
    ]
    for name in TABLES:
        data = [o for o in backup.objects if o.kind == "data" and o.table == name]
        schemas = [o for o in backup.objects if o.kind == "schema" and o.table == name]
        bundled = [rows for db, table, rows in sections if (db, table) == (DB, name)]
        assert len(schemas) + len(bundled) == 1, f"{name}: one definition, alone or bundled"
        assert sum(o.rows for o in data) + sum(bundled) == TABLES[name], name
        assert [o.part for o in sorted(data, key=lambda o: o.part)] == list(range(1, len(data) + 1))
        assert not (data and bundled), f"{name}: rows in one place"
    assert sections, "chunk_mb = 1: these small tables are bundled"


def test_verify_and_restore_test_pass(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backups", "verify", backup.backup_id]) == 0
    capsys.readouterr()
    assert main(["backups", "verify", backup.backup_id, "--restore-test", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["restore_test"]["tables"] == len(TABLES) + 1


def test_restore_with_rename_gives_back_every_row_and_body(
    use_sandbox_config: SandboxHandle, backup: Manifest
) -> None:
    sandbox = use_sandbox_config
    copies = {DB: "hostile copy", CJK_DB: "数据copy"}
    with sandbox.connect() as conn, conn.cursor() as cur:
        for copy in copies.values():
            cur.execute(f"DROP DATABASE IF EXISTS {q(copy)}")
    args = ["restore", backup.backup_id]
    for src, dst in copies.items():
        args += ["--rename", f"{src}={dst}"]
    assert main(args) == 0
    assert snapshot(sandbox, copies[DB]) == snapshot(sandbox, DB)
    assert snapshot(sandbox, copies[CJK_DB]) == snapshot(sandbox, CJK_DB)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"USE {q(copies[DB])}")
        cur.execute("CALL `p;;`(@n)")
        cur.execute("SELECT @n")
        assert cur.fetchone()[0] == TABLES["t1"], "the restored procedure runs"
        cur.execute("SELECT COUNT(*) FROM `v\n-- Final view structure for view`")
        assert cur.fetchone()[0] == TABLES["t1"], "the view reads the renamed copy's table"
        for copy in copies.values():
            cur.execute(f"DROP DATABASE {q(copy)}")


def test_restoring_one_table_leaves_its_lookalikes_alone(
    use_sandbox_config: SandboxHandle, backup: Manifest
) -> None:
    sandbox = use_sandbox_config
    copy = "hostile_one"
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {copy}")
    assert (
        main(["restore", backup.backup_id, "--rename", f"{DB}={copy}", "--tables", f"{DB}.t1"]) == 0
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (copy,)
        )
        assert [r[0] for r in cur.fetchall()] == ["t1"]
        cur.execute(f"SELECT COUNT(*) FROM {copy}.t1")
        assert cur.fetchone()[0] == TABLES["t1"]
        cur.execute(f"DROP DATABASE {copy}")


def test_objects_stay_plain_sql_for_the_stock_client(
    sandbox: SandboxHandle, backup: Manifest
) -> None:
    """The routine object loads with the stock client; its body's fake titles and
    delimiters are inside one DELIMITER block chosen to occur nowhere in it."""
    import zstandard

    loaded = load(str(sandbox.config_path), environ={})
    _, store = find_backup(loaded, backup.backup_id)
    routines = next(o for o in backup.objects if o.kind == "routines" and o.database == DB)
    text = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(b"".join(store.iter_read(routines.key)))
    )
    assert b"-- Dumping data for table `t1`" in text, "the body is kept verbatim"
    assert b"USE " not in text.replace(b"\\nUSE other;", b"")
