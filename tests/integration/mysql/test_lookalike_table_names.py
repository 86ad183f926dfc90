"""Tables of one database whose names differ only by letter case or accent (`cafe`, `café`,
`Cafe`, `CAFÉ`, `straße`, `strasse`, and `café` decomposed), on the case-sensitive sandbox
(``lower_case_table_names=0``), each with its own columns and rows: a backup, a restore of
all or of exactly one of them (``--tables``, ``--rename``) and a point-in-time replay of
rows written to each after the base keep every table, column, index, trigger and row where
it belongs.

What MariaDB 10.11 allows and answers here (checked by hand on the sandbox):

- columns and indexes of one table are compared case-insensitively but accent-sensitively:
  `e` and `E` are refused as duplicates, `e` and `é` (and indexes `ke`/`ké`) are two;
- triggers and views differ by case and accent (`tr_cafe`, `tr_café`, `TR_CAFE`); routines
  and events do not (``p_café`` after ``p_cafe``: "already exists"), so none are here;
- information_schema answers a single-valued ``TABLE_NAME = 'cafe'`` (TABLES, COLUMNS,
  STATISTICS) for `cafe` alone, but a many-valued ``TABLE_NAME IN ('cafe', 'x')`` (and
  ``LIKE 'cafe'``) for all four cafés, and ``IN ('cafe', 'café')`` for `cafe` alone; its
  ``ORDER BY TABLE_NAME`` puts the four in no order of their own. The catalogue reads
  whole databases (``TABLE_SCHEMA = %s``) and keys every row by the exact names it returns.

This module compares the tables through SHOW statements and backtick-quoted names, which
the server resolves exactly, never through information_schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.mysql.connection import connect, endpoint
from datatier.mysql.introspect import introspect
from tests.integration.binlog_support import pitr_window
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.conftest import back_up

SOURCE = "lk_src"
FULL, ONE = "lk_full", "lk_one"
PITR, PITR_ALL, PITR_ONE = "lk_pitr", "lk_pitr_all", "lk_pitr_one"
POLICY, PITR_POLICY = "lk_names", "lk_pitr"

NFD = "cafe\u0301"  # `café` decomposed: e and a combining acute accent
# name -> (columns, rows): every table's columns and rows differ from the others'
TABLES: dict[str, tuple[str, list[str]]] = {
    "cafe": ("id INT PRIMARY KEY, a INT, j LONGTEXT", ["(1, 10, '[1]')"]),
    "café": ("id INT PRIMARY KEY, b VARCHAR(10), bb INT", ["(2, 'é', 20)", "(3, 'è', 30)"]),
    "Cafe": (
        "id INT PRIMARY KEY, c INT, j JSON, UNIQUE KEY k (c)",
        ["(4, 40, '[4]')", "(5, 50, NULL)", "(6, 60, '{}')"],
    ),
    "CAFÉ": ("id INT PRIMARY KEY, d VARCHAR(10)", [f"({i}, 'CAFÉ{i}')" for i in range(7, 11)]),
    "straße": (
        "id INT PRIMARY KEY, e INT, `é` INT, KEY ke (e), KEY `ké` (`é`)",
        [f"({i}, {i}, {-i})" for i in range(11, 16)],
    ),
    "strasse": ("id INT PRIMARY KEY, f VARCHAR(10)", [f"({i}, 'ss{i}')" for i in range(16, 22)]),
    NFD: ("id INT PRIMARY KEY, n INT", ["(22, 1)", "(23, 2)"]),
}
TRIGGERS = {  # name -> (table, what it sets): one per café
    "tr_cafe": ("cafe", "NEW.a = IFNULL(NEW.a, -1)"),
    "tr_café": ("café", "NEW.bb = IFNULL(NEW.bb, -2)"),
    "TR_CAFE": ("Cafe", "NEW.c = IFNULL(NEW.c, -3)"),
    "TR_CAFÉ": ("CAFÉ", "NEW.d = IFNULL(NEW.d, 'none')"),
}
VIEWS = {"v_cafe": "cafe", "v_café": "café", "V_CAFE": "Cafe", "V_CAFÉ": "CAFÉ"}


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def run(sandbox: SandboxHandle, *statements: str) -> list[tuple[Any, ...]]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        return list(cur.fetchall())


def create(database: str) -> list[str]:
    """The statements creating every look-alike table (with its rows), trigger and view."""
    statements = [f"CREATE DATABASE {q(database)} CHARACTER SET utf8mb4"]
    for name, (columns, rows) in TABLES.items():
        statements += [
            f"CREATE TABLE {q(database)}.{q(name)} ({columns}) CHARACTER SET utf8mb4",
            f"INSERT INTO {q(database)}.{q(name)} VALUES {', '.join(rows)}",
        ]
    statements.append(f"USE {q(database)}")  # unqualified: a --rename restore moves them
    for name, (table, sets) in TRIGGERS.items():
        statements.append(
            f"CREATE TRIGGER {q(name)} BEFORE INSERT ON {q(table)} FOR EACH ROW SET {sets}"
        )
    for name, table in VIEWS.items():
        statements.append(
            f"CREATE VIEW {q(database)}.{q(name)} AS SELECT * FROM {q(database)}.{q(table)}"
        )
    return statements


def table_state(sandbox: SandboxHandle, database: str, table: str) -> dict[str, Any]:
    """A table's columns, indexes, triggers and rows (``CHECKSUM TABLE`` too)."""
    name = f"{q(database)}.{q(table)}"
    columns = run(sandbox, f"SHOW COLUMNS FROM {name}")
    indexes = run(sandbox, f"SHOW INDEX FROM {name}")
    return {
        "columns": [(c[0], c[1], c[2], c[3]) for c in columns],
        "indexes": sorted((str(i[2]), int(i[3]), str(i[4]), int(i[1])) for i in indexes),
        "rows": run(sandbox, f"SELECT * FROM {name} ORDER BY id"),
        "checksum": run(sandbox, f"CHECKSUM TABLE {name}")[0][1],
    }


def state(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    """Everything of ``database`` by exact name: each table's state, each view's kind and
    rows, each trigger's table and statement (as SHOW lists them, never information_schema)."""
    found: dict[str, Any] = {}
    for name, kind in run(sandbox, f"SHOW FULL TABLES FROM {q(database)}"):
        if kind == "VIEW":
            found[name] = ("view", run(sandbox, f"SELECT * FROM {q(database)}.{q(name)}"))
        else:
            found[name] = table_state(sandbox, database, name)
    for row in run(sandbox, f"SHOW TRIGGERS FROM {q(database)}"):
        found[f"trigger {row[0]}"] = (row[2], row[3])
    return found


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    """A backup of SOURCE, and SOURCE's state when it was taken."""
    drop = [f"DROP DATABASE IF EXISTS {q(db)}" for db in (SOURCE, FULL, ONE)]
    run(sandbox, *drop)
    run(sandbox, *create(SOURCE))
    before = state(sandbox, SOURCE)
    assert len([k for k in before if not k.startswith("trigger ")]) == len(TABLES) + len(VIEWS)
    yield back_up(sandbox, POLICY, [SOURCE]), before
    run(sandbox, *drop)
    sandbox.wait_replicated()


def test_the_backup_holds_each_look_alike_with_its_own_rows(
    backup: tuple[Manifest, dict[str, Any]],
) -> None:
    manifest, _ = backup
    held = sorted((t.database, t.name, t.rows) for t in manifest.tables)
    assert held == sorted((SOURCE, n, len(rows)) for n, (_, rows) in TABLES.items())


def test_a_policy_leaving_some_look_alikes_out_backs_up_the_others(
    sandbox: SandboxHandle, backup: tuple[Manifest, dict[str, Any]]
) -> None:
    """``exclude_tables`` naming `café` and `Cafe` (and their views) leaves out those two
    alone."""
    out = ["café", "Cafe", "v_café", "V_CAFE"]
    sandbox.write_policy(
        f"{POLICY}_ex",
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{SOURCE}"]\n'
        f"exclude_tables = {json.dumps([f'{SOURCE}.{n}' for n in out])}\n",
    )
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, f"{POLICY}_ex"))
    held = sorted(t.name for t in manifest.tables)
    assert held == sorted(n for n in TABLES if n not in out)
    views = sorted(o.table or "" for o in manifest.objects if o.kind == "views")
    assert views == sorted(n for n in VIEWS if n not in out)


def test_introspect_reads_each_look_alike_alone(
    sandbox: SandboxHandle, backup: tuple[Manifest, dict[str, Any]]
) -> None:
    """``TABLE_NAME = %s`` (TABLES, COLUMNS, STATISTICS, CHECK_CONSTRAINTS) answers for the
    one table named: `cafe`'s LONGTEXT `j` is not taken for `Cafe`'s JSON `j`."""
    _, before = backup
    with connect(endpoint(sandbox.config.mysql, "primary")) as conn:
        for name in TABLES:
            schema = introspect(conn, f"{SOURCE}.{name}")
            columns = [(c.name, c.data_type) for c in schema.columns]
            shown = [(c[0], "json" if c[0] == "j" and name == "Cafe" else c[1].split("(")[0])
                     for c in before[name]["columns"]]  # fmt: skip
            assert columns == shown, name
            indexes = sorted({i[0] for i in before[name]["indexes"]})
            assert sorted(i.name for i in schema.indexes) == indexes, name


def test_a_full_restore_recreates_every_look_alike_exactly(
    use_sandbox_config: SandboxHandle, backup: tuple[Manifest, dict[str, Any]]
) -> None:
    manifest, before = backup
    run(use_sandbox_config, f"DROP DATABASE IF EXISTS {FULL}")
    assert main(["restore", manifest.backup_id, "--rename", f"{SOURCE}={FULL}"]) == 0
    assert state(use_sandbox_config, FULL) == before
    assert main(["backups", "verify", manifest.backup_id, "--restore-test"]) == 0


def test_a_view_of_one_look_alike_needs_that_one_not_another(
    use_sandbox_config: SandboxHandle,
    backup: tuple[Manifest, dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`v_café` alone, into a database holding `cafe`, `Cafe` and `CAFÉ` but not `café`:
    refused (exit 2, nothing changed) as its table is neither restored nor there; with
    `café` it restores (``--force``: the database is not empty; the others are kept)."""
    manifest, before = backup
    sandbox = use_sandbox_config
    others = ("cafe", "Cafe", "CAFÉ")
    run(sandbox, f"DROP DATABASE IF EXISTS {ONE}", f"CREATE DATABASE {ONE}")
    run(sandbox, *(f"CREATE TABLE {ONE}.{q(t)} (id INT PRIMARY KEY)" for t in others))
    argv = ["restore", manifest.backup_id, "--rename", f"{SOURCE}={ONE}", "--force"]
    capsys.readouterr()
    assert main([*argv, "--tables", f"{SOURCE}.v_café"]) == 2
    assert f"add {SOURCE}.café to --tables" in capsys.readouterr().err
    assert sorted(state(sandbox, ONE)) == sorted(others)
    assert main([*argv, "--tables", f"{SOURCE}.v_café,{SOURCE}.café"]) == 0
    restored = state(sandbox, ONE)
    assert (restored["v_café"], restored["café"]) == (before["v_café"], before["café"])
    assert sorted(restored) == sorted([*others, "café", "v_café", "trigger tr_café"])


def test_tables_naming_a_look_alike_the_backup_lacks_is_refused(
    use_sandbox_config: SandboxHandle, backup: tuple[Manifest, dict[str, Any]]
) -> None:
    """`CAFE` is none of the four cafés: refused (exit 2), no database created."""
    manifest, _ = backup
    run(use_sandbox_config, f"DROP DATABASE IF EXISTS {ONE}")
    argv = ["restore", manifest.backup_id, "--rename", f"{SOURCE}={ONE}"]
    assert main([*argv, "--tables", f"{SOURCE}.CAFE"]) == 2
    assert run(use_sandbox_config, f"SHOW DATABASES LIKE '{ONE}'") == []


@pytest.mark.parametrize("table", list(TABLES))
def test_tables_naming_one_look_alike_restores_that_one_alone(
    table: str, use_sandbox_config: SandboxHandle, backup: tuple[Manifest, dict[str, Any]]
) -> None:
    manifest, before = backup
    run(use_sandbox_config, f"DROP DATABASE IF EXISTS {ONE}")
    argv = ["restore", manifest.backup_id, "--rename", f"{SOURCE}={ONE}"]
    assert main([*argv, "--tables", f"{SOURCE}.{table}"]) == 0
    wanted = {table: before[table]} | {
        f"trigger {name}": before[f"trigger {name}"]
        for name, (on, _) in TRIGGERS.items()
        if on == table
    }
    assert state(use_sandbox_config, ONE) == wanted


WRITES = [  # after the base backup: each look-alike written by name, as an application would
    "INSERT INTO cafe (id) VALUES (100)",
    "INSERT INTO `café` (id, b) VALUES (101, 'après')",
    "UPDATE café SET bb = bb + 1 WHERE id = 2",  # unquoted, as the server allows
    "INSERT INTO Cafe (id) VALUES (102)",
    "DELETE FROM Cafe WHERE id = 4",
    "INSERT INTO `CAFÉ` (id) VALUES (103)",
    "UPDATE CAFÉ SET d = 'changed' WHERE id = 7",
    "INSERT INTO straße VALUES (104, 1, 2)",
    "DELETE FROM strasse WHERE id = 16",
    "UPDATE strasse SET f = 'ß' WHERE id = 17",
    "ALTER TABLE `café` ADD COLUMN z INT NOT NULL DEFAULT 7",
    "INSERT INTO `café` (id, b, z) VALUES (105, 'z', 8)",
    "CREATE TABLE CAFe (id INT PRIMARY KEY, g INT)",  # a fifth café, after the base
    "INSERT INTO CAFe VALUES (106, 1)",
]


def written(sandbox: SandboxHandle, binlog_format: str) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"USE {PITR}")
        cur.execute(f"SET SESSION binlog_format = '{binlog_format}'")
        for statement in WRITES:
            cur.execute(statement)


def test_a_point_in_time_replay_writes_each_look_alike_into_its_own_table(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written (row format) to each look-alike after the base, replayed into all of
    them, and into one chosen with ``--tables`` (the others' writes stay out)."""
    sandbox = use_sandbox_config
    with pitr_window(
        sandbox, PITR_POLICY, PITR, PITR_ALL, PITR_ONE, monkeypatch=monkeypatch
    ) as window:
        run(sandbox, f"DROP DATABASE {PITR}", *create(PITR))
        window.backup()
        base = state(sandbox, PITR)
        written(sandbox, "ROW")
        gtid = window.gtid()
        window.archive()
        after = state(sandbox, PITR)
        assert after != base
        argv = ["restore", "--policy", PITR_POLICY, "--until-gtid", gtid]
        assert main([*argv, "--rename", f"{PITR}={PITR_ALL}"]) == 0
        assert state(sandbox, PITR_ALL) == after
        for table in ("café", "Cafe", "strasse"):
            run(sandbox, f"DROP DATABASE IF EXISTS {PITR_ONE}")
            chosen = ["--tables", f"{PITR}.{table}", "--rename", f"{PITR}={PITR_ONE}"]
            assert main([*argv, *chosen]) == 0
            assert state(sandbox, PITR_ONE) == only(after, table), table


def only(found: dict[str, Any], *tables: str) -> dict[str, Any]:
    """Of a :func:`state`, ``tables`` and their triggers."""
    triggers = [f"trigger {n}" for n, (on, _) in TRIGGERS.items() if on in tables]
    return {key: found[key] for key in (*tables, *triggers)}


KEPT = ("cafe", "Cafe", "straße")  # of a policy listing these alone


def test_a_statement_format_replay_keeps_the_writes_of_the_listed_look_alikes_alone(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy whose ``[source] tables`` lists some look-alikes: statement-format writes
    to each are replayed exactly when the statement names a listed one, spelled as it is
    (``--tables`` refuses statement-format changes outright: exit 2, nothing changed)."""
    sandbox = use_sandbox_config
    listed = json.dumps([f"{PITR}.{t}" for t in KEPT])
    text = f'engine = "mysql"\n[source]\nnode = "replica1"\ntables = {listed}\n'
    with pitr_window(
        sandbox, PITR_POLICY, PITR, PITR_ALL, PITR_ONE, monkeypatch=monkeypatch, text=text
    ) as window:
        run(sandbox, f"DROP DATABASE {PITR}", *create(PITR))
        window.backup()
        written(sandbox, "STATEMENT")
        gtid = window.gtid()
        window.archive()
        after = state(sandbox, PITR)
        argv = ["restore", "--policy", PITR_POLICY, "--until-gtid", gtid]
        assert main([*argv, "--rename", f"{PITR}={PITR_ALL}"]) == 0
        assert state(sandbox, PITR_ALL) == only(after, *KEPT)
        chosen = ["--tables", f"{PITR}.Cafe", "--rename", f"{PITR}={PITR_ONE}"]
        assert main([*argv, *chosen]) == 2
        assert run(sandbox, f"SHOW DATABASES LIKE '{PITR_ONE}'") == []
