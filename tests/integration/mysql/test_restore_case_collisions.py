"""A backup of a case-sensitive server (the sandbox: ``lower_case_table_names=0``) holding
names that differ only by letter case (tables `Orders` and `orders` of one database;
databases `CF_Shop` and `cf_shop`), restored into a server that folds names (an extra real
MariaDB started with ``--lower-case-table-names=1``). There both names are one: each table's
object starts with DROP TABLE IF EXISTS, so restoring `Orders` dropped the `orders` restored
just before and the restore failed (exit 1, at its row count check) with one table's rows
gone; the two databases were to be loaded into one. Now such a restore is refused before
anything changes (exit 2, naming the colliding names and the target's setting);
``--tables``/``--databases`` choosing one of them, or ``--rename`` moving one away, restores
it; a restore without such names into the folding server still works.

Found on the way: the backup of `CF_Shop` and `cf_shop` held `cf_shop` without its tables
(exit 0), and the non-empty target check missed one of them (information_schema ``IN``
lists, see :mod:`datatier.mysql.lettercase`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import Manifest
from datatier.cli import main
from datatier.mysql.claim import lock_name
from datatier.mysql.lettercase import name_key
from datatier.mysql.physical.scratch import free_port
from datatier.sandbox.services.mariadb import MariaDBService
from tests.integration.conftest import SandboxHandle
from tests.integration.mariadb_support import connect_to, extra_mariadb
from tests.integration.mysql.conftest import back_up

DB = "cf_db"  # holds `Orders` (2 rows) and `orders` (3 rows)
UPPER, LOWER = "CF_Shop", "cf_shop"  # each holds `t`
PLAIN = "cf_plain"  # no names differing by case
LETTERS = "cf_letters"  # `İa` and `ia`, capital and small delta sigma: one each here
GEORGIAN = "cf_georgian"  # `Ⴀa` and `ⴀa`: two even where names fold
SOURCES = (DB, UPPER, LOWER, PLAIN, LETTERS, GEORGIAN)
ROWS_UPPER = [(1, "Orders"), (2, "Orders")]
ROWS_LOWER = [(10, "orders"), (20, "orders"), (30, "orders")]
DELTA_SIGMA, delta_sigma = "\u0394\u03a3", "\u03b4\u03c3"  # Python: "\u03b4\u03c2", final
LETTER_ROWS = {
    "İa": [(1, "İa")],
    "ia": [(2, "ia"), (3, "ia")],
    DELTA_SIGMA: [(4, "upper")],
    delta_sigma: [(5, "lower")],
}
GEORGIAN_ROWS = {"Ⴀa": [(1, "Ⴀa")], "ⴀa": [(2, "ⴀa"), (3, "ⴀa")]}


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def on_sandbox(sandbox: SandboxHandle, *statements: str) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    sandbox.wait_replicated()


@pytest.fixture(scope="module")
def backups(sandbox: SandboxHandle) -> Iterator[dict[str, Manifest]]:
    """Backups of the sandbox (names compared case-sensitively there): ``tables`` of DB,
    ``databases`` of UPPER and LOWER, ``plain`` of PLAIN."""
    drop = [f"DROP DATABASE IF EXISTS {q(db)}" for db in SOURCES]
    on_sandbox(sandbox, *drop)
    on_sandbox(
        sandbox,
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.Orders (id INT PRIMARY KEY, v VARCHAR(10))",
        f"CREATE TABLE {DB}.orders (id INT PRIMARY KEY, v VARCHAR(10))",
        f"INSERT INTO {DB}.Orders VALUES " + ", ".join(f"({i}, '{v}')" for i, v in ROWS_UPPER),
        f"INSERT INTO {DB}.orders VALUES " + ", ".join(f"({i}, '{v}')" for i, v in ROWS_LOWER),
        *(f"CREATE DATABASE {q(db)}" for db in (UPPER, LOWER, PLAIN)),
        f"CREATE TABLE {UPPER}.t (id INT PRIMARY KEY, v VARCHAR(10))",
        f"CREATE TABLE {LOWER}.t (id INT PRIMARY KEY, v VARCHAR(10))",
        f"INSERT INTO {UPPER}.t VALUES (1, '{UPPER}')",
        f"INSERT INTO {LOWER}.t VALUES (2, '{LOWER}'), (3, '{LOWER}')",
        f"CREATE TABLE {PLAIN}.Items (id INT PRIMARY KEY, v VARCHAR(10))",
        f"INSERT INTO {PLAIN}.Items VALUES (5, 'plain')",
    )
    on_sandbox(
        sandbox,
        *(f"CREATE DATABASE {db} CHARACTER SET utf8mb4" for db in (LETTERS, GEORGIAN)),
        *(
            f"CREATE TABLE {db}.`{t}` (id INT PRIMARY KEY, v VARCHAR(10)) CHARACTER SET utf8mb4"
            for db, names in ((LETTERS, LETTER_ROWS), (GEORGIAN, GEORGIAN_ROWS))
            for t in names
        ),
        *(
            f"INSERT INTO {db}.`{t}` VALUES " + ", ".join(f"({i}, '{v}')" for i, v in rows)
            for db, names in ((LETTERS, LETTER_ROWS), (GEORGIAN, GEORGIAN_ROWS))
            for t, rows in names.items()
        ),
    )
    yield {
        "letters": back_up(sandbox, "cf_letters", [LETTERS]),
        "georgian": back_up(sandbox, "cf_georgian", [GEORGIAN]),
        "tables": back_up(sandbox, "cf_tables", [DB]),
        "databases": back_up(sandbox, "cf_databases", [UPPER, LOWER]),
        "plain": back_up(sandbox, "cf_plain", [PLAIN]),
    }
    on_sandbox(sandbox, *drop)


@pytest.fixture(scope="module")
def folding(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory, test_port_base: int
) -> Iterator[MariaDBService]:
    """An empty MariaDB comparing names lower-cased (``--lower-case-table-names=1``)."""
    port = free_port(range(test_port_base + 310, test_port_base + 320))
    workdir = tmp_path_factory.mktemp("folding") / "server"
    with extra_mariadb(
        sandbox, "folding", port, workdir, server_id=9, extra_args=["--lower-case-table-names=1"]
    ) as svc:
        yield svc


@pytest.fixture
def target(
    use_sandbox_config: SandboxHandle, folding: MariaDBService
) -> Iterator[tuple[SandboxHandle, MariaDBService]]:
    """The folding server with no database of the test's own, before and after it."""
    sandbox = use_sandbox_config
    assert run(sandbox, folding, "SELECT @@lower_case_table_names") == [(1,)]
    clear(sandbox, folding)
    yield sandbox, folding
    clear(sandbox, folding)


def run(sandbox: SandboxHandle, svc: MariaDBService, *statements: str) -> list[tuple[Any, ...]]:
    with connect_to(sandbox, svc) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
        return list(cur.fetchall())


def clear(sandbox: SandboxHandle, svc: MariaDBService) -> None:
    dropped = (*SOURCES, "cf_other", "cf_copy", TRIG)
    run(sandbox, svc, *(f"DROP DATABASE IF EXISTS {q(db)}" for db in dropped))


def ours(sandbox: SandboxHandle, svc: MariaDBService) -> list[tuple[Any, ...]]:
    """Every table of a database whose name starts with ``cf_`` on ``svc``, with its rows."""
    found = run(
        sandbox,
        svc,
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA LIKE 'cf\\_%' ORDER BY 1, 2",
    )
    return [
        (db, t, run(sandbox, svc, f"SELECT id, v FROM {q(db)}.{q(t)} ORDER BY id"))
        for db, t in found
    ]


def databases(sandbox: SandboxHandle, svc: MariaDBService) -> list[str]:
    rows = run(sandbox, svc, "SHOW DATABASES LIKE 'cf\\_%'")
    return sorted(str(r[0]) for r in rows)


def restore(backup: Manifest, svc: MariaDBService, *argv: str) -> int:
    return main(["restore", backup.backup_id, "--target", f"{svc.host}:{svc.port}", *argv])


@pytest.mark.parametrize("json_output", [False, True])
def test_tables_differing_by_case_are_refused_before_anything_changes(
    json_output: bool,
    target: tuple[SandboxHandle, MariaDBService],
    backups: dict[str, Manifest],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox, svc = target
    capsys.readouterr()

    code = restore(backups["tables"], svc, *(["--json"] if json_output else []))

    out, err = capsys.readouterr()
    assert (code, ours(sandbox, svc), databases(sandbox, svc)) == (2, [], [])
    assert f"{DB}.Orders" in err and f"{DB}.orders" in err
    assert "lower_case_table_names=1" in err and "--tables" in err
    if json_output:
        doc = json.loads(out)
        assert doc["exit_code"] == 2 and f"{DB}.Orders" in doc["error"]
        assert "--rename" in doc["hint"]
        assert doc["lower_case_table_names"] == 1
        assert doc["collisions"] == [[f"{DB}.Orders", f"{DB}.orders"]]


def test_databases_differing_by_case_are_refused(
    target: tuple[SandboxHandle, MariaDBService],
    backups: dict[str, Manifest],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox, svc = target
    capsys.readouterr()

    code = restore(backups["databases"], svc)

    err = capsys.readouterr().err
    assert (code, ours(sandbox, svc), databases(sandbox, svc)) == (2, [], [])
    assert UPPER in err and LOWER in err and "lower_case_table_names=1" in err


def test_a_dry_run_is_refused_too(
    target: tuple[SandboxHandle, MariaDBService], backups: dict[str, Manifest]
) -> None:
    assert restore(backups["tables"], target[1], "--dry-run") == 2


@pytest.mark.parametrize("table", ["Orders", "orders"])
def test_tables_choosing_one_restores_it(
    table: str, target: tuple[SandboxHandle, MariaDBService], backups: dict[str, Manifest]
) -> None:
    sandbox, svc = target

    code = restore(backups["tables"], svc, "--tables", f"{DB}.{table}")

    assert code == 0
    assert ours(sandbox, svc) == [(DB, "orders", ROWS_UPPER if table == "Orders" else ROWS_LOWER)]


@pytest.mark.parametrize("database", [UPPER, LOWER])
def test_databases_choosing_one_restores_it(
    database: str, target: tuple[SandboxHandle, MariaDBService], backups: dict[str, Manifest]
) -> None:
    sandbox, svc = target

    assert restore(backups["databases"], svc, "--databases", database) == 0
    rows = [(1, UPPER)] if database == UPPER else [(2, LOWER), (3, LOWER)]
    assert ours(sandbox, svc) == [(LOWER, "t", rows)]


def test_rename_moving_one_database_away_restores_both(
    target: tuple[SandboxHandle, MariaDBService], backups: dict[str, Manifest]
) -> None:
    sandbox, svc = target

    code = restore(backups["databases"], svc, "--rename", f"{UPPER}=cf_other")

    assert code == 0
    assert ours(sandbox, svc) == [
        ("cf_other", "t", [(1, UPPER)]),
        (LOWER, "t", [(2, LOWER), (3, LOWER)]),
    ]


def test_rename_into_a_name_folding_onto_another_is_refused(
    target: tuple[SandboxHandle, MariaDBService],
    backups: dict[str, Manifest],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Renamed apart on a case-sensitive server, `CF_OTHER` and `cf_other` are one here."""
    sandbox, svc = target
    capsys.readouterr()

    code = restore(
        backups["databases"], svc, "--rename", f"{UPPER}=CF_OTHER", "--rename", f"{LOWER}=cf_other"
    )

    assert (code, ours(sandbox, svc), databases(sandbox, svc)) == (2, [], [])
    assert "CF_OTHER" in capsys.readouterr().err


def test_a_restore_without_such_names_still_works(
    target: tuple[SandboxHandle, MariaDBService], backups: dict[str, Manifest]
) -> None:
    sandbox, svc = target

    assert restore(backups["plain"], svc) == 0
    assert ours(sandbox, svc) == [(PLAIN, "items", [(5, "plain")])]


def test_a_backup_holds_both_databases_differing_by_case(backups: dict[str, Manifest]) -> None:
    """MariaDB takes `TABLE_SCHEMA IN ('CF_Shop', 'cf_shop')` of information_schema for one
    name: the backup held `cf_shop`'s database but none of its tables (exit 0)."""
    manifest = backups["databases"]
    assert sorted(manifest.databases) == [UPPER, LOWER]
    assert sorted((t.database, t.name, t.rows) for t in manifest.tables) == [
        (UPPER, "t", 1),
        (LOWER, "t", 2),
    ]


def test_a_case_sensitive_target_holding_one_of_them_is_not_empty(
    use_sandbox_config: SandboxHandle,
    backups: dict[str, Manifest],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Into the sandbox itself (case-sensitive), holding `cf_shop` but not `CF_Shop`: the
    check for tables in the target databases asked information_schema for `CF_Shop` alone
    (see above), so `cf_shop`'s table was replaced without --force. Refused, exit 2."""
    sandbox = use_sandbox_config
    on_sandbox(sandbox, f"DROP DATABASE {UPPER}", f"INSERT INTO {LOWER}.t VALUES (9, 'mine')")
    capsys.readouterr()

    code = main(["restore", backups["databases"].backup_id])

    err = capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {LOWER}.t ORDER BY id")
        kept = [int(r[0]) for r in cur.fetchall()]
        cur.execute(f"SHOW DATABASES LIKE '{UPPER}'")
        created = cur.fetchall()
    assert (code, kept, created) == (2, [2, 3, 9], ()), err
    assert f"{LOWER} (1 tables)" in err


def test_names_mariadb_folds_together_though_python_does_not_are_refused(
    target: tuple[SandboxHandle, MariaDBService],
    backups: dict[str, Manifest],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The folding server stores `İa` as `ia` and DELTA_SIGMA as delta_sigma
    (utf8mb3_general_ci's lower case, character by character). Python's ``str.lower``
    gives `i̇a` and a final sigma, so the names were not found to collide: the restore went ahead and
    `ia`'s DROP TABLE IF EXISTS replaced the `ia` restored from `İa`. Now refused (exit 2),
    nothing changed."""
    sandbox, svc = target
    capsys.readouterr()

    code = restore(backups["letters"], svc)

    err = capsys.readouterr().err
    assert (code, ours(sandbox, svc), databases(sandbox, svc)) == (2, [], []), err
    assert f"{LETTERS}.İa" in err and f"{LETTERS}.{DELTA_SIGMA}" in err


def test_names_python_folds_together_though_mariadb_does_not_restore_both(
    target: tuple[SandboxHandle, MariaDBService], backups: dict[str, Manifest]
) -> None:
    """Georgian `Ⴀ` has a lower case in Python's Unicode, not in the server's: `Ⴀa` and
    `ⴀa` are two tables there, and were refused as one."""
    sandbox, svc = target

    assert restore(backups["georgian"], svc) == 0
    assert sorted(ours(sandbox, svc)) == sorted(
        (GEORGIAN, t, rows) for t, rows in GEORGIAN_ROWS.items()
    )


def test_name_key_lower_cases_every_character_as_the_server_does(
    sandbox: SandboxHandle, folding: MariaDBService
) -> None:
    """Every character of the Basic Multilingual Plane (identifiers are utf8mb3) that has a
    lower case in Python or on the server: ``name_key`` gives the server's own
    ``LOWER`` under utf8mb3_general_ci, the collation it folds names with (the two tests
    above show it on tables). Also fails when a newer Python's Unicode adds a case pair
    the server's table lacks."""
    chars = [chr(c) for c in range(0x20, 0x10000) if not 0xD800 <= c < 0xE000]
    differ = []
    with connect_to(sandbox, folding) as conn, conn.cursor() as cur:
        for start in range(0, len(chars), 2000):
            batch = chars[start : start + 2000]
            lower = "LOWER(CONVERT(%s USING utf8mb3) COLLATE utf8mb3_general_ci)"
            cur.execute("SELECT " + ", ".join([lower] * len(batch)), batch)
            for char, server in zip(batch, cur.fetchone(), strict=True):
                if name_key(char, True) != server:
                    differ.append((f"U+{ord(char):04X}", name_key(char, True), server))
    assert differ == []


TRIG = "cf_trig"  # tables `a` and `b`; triggers `Stamp` on `a` and `stamp` on `b`; views


def test_triggers_differing_by_case_both_restored_views_refused(
    target: tuple[SandboxHandle, MariaDBService], capsys: pytest.CaptureFixture[str]
) -> None:
    """Per-database objects whose names differ only by letter case, into the folding
    server. Views share the tables' names, so `Recent` and `recent` are one there: refused
    (exit 2, nothing created). Trigger names stay case-sensitive there (MariaDB 10.11), so
    `Stamp` and `stamp` are both restored (each object's DROP TRIGGER IF EXISTS drops only
    its own), each firing on its table. Routines and events compare names without regard
    to case on every server: no two of them differ only by case."""
    sandbox, svc = target
    on_sandbox(
        sandbox,
        f"DROP DATABASE IF EXISTS {TRIG}",
        f"CREATE DATABASE {TRIG}",
        f"CREATE TABLE {TRIG}.a (id INT PRIMARY KEY, v VARCHAR(10))",
        f"CREATE TABLE {TRIG}.b (id INT PRIMARY KEY, v VARCHAR(10))",
        f"CREATE TRIGGER {TRIG}.Stamp BEFORE INSERT ON {TRIG}.a FOR EACH ROW SET NEW.v = 'A'",
        f"CREATE TRIGGER {TRIG}.stamp BEFORE INSERT ON {TRIG}.b FOR EACH ROW SET NEW.v = 'b'",
    )
    try:
        triggers = back_up(sandbox, "cf_trig", [TRIG])
        on_sandbox(
            sandbox,
            f"CREATE VIEW {TRIG}.Recent AS SELECT id FROM {TRIG}.a",
            f"CREATE VIEW {TRIG}.recent AS SELECT id FROM {TRIG}.b",
        )
        views = back_up(sandbox, "cf_trig", [TRIG])
    finally:
        on_sandbox(sandbox, f"DROP DATABASE IF EXISTS {TRIG}")
    capsys.readouterr()

    refused = restore(views, svc)

    err = capsys.readouterr().err
    assert (refused, databases(sandbox, svc)) == (2, []), err
    assert f"{TRIG}.Recent and {TRIG}.recent" in err and "lower_case_table_names=1" in err

    assert restore(triggers, svc) == 0
    run(sandbox, svc, f"INSERT INTO {TRIG}.a (id) VALUES (1)",
        f"INSERT INTO {TRIG}.b (id) VALUES (2)")  # fmt: skip
    fired = run(sandbox, svc, f"SELECT id, v FROM {TRIG}.a UNION ALL SELECT id, v FROM {TRIG}.b")
    names = run(sandbox, svc, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                f"WHERE TRIGGER_SCHEMA = '{TRIG}' ORDER BY BINARY TRIGGER_NAME")  # fmt: skip
    assert (fired, names) == ([(1, "A"), (2, "b")], [("Stamp",), ("stamp",)])


def test_the_restore_lock_is_one_for_names_the_target_folds_together(
    target: tuple[SandboxHandle, MariaDBService], backups: dict[str, Manifest]
) -> None:
    """A restore into `cf_copy` runs (its lock held, as :mod:`datatier.mysql.claim` holds
    it); another into `CF_Copy`, the same database on this server, must be refused (exit
    5) before it changes anything. The lock was named by the name as given: the second
    took a lock of its own and restored into the database the first was loading."""
    sandbox, svc = target
    with connect_to(sandbox, svc) as first, first.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name("cf_copy"),))
        assert cur.fetchone() == (1,), "the first restore's lock"
        code = restore(backups["plain"], svc, "--rename", f"{PLAIN}=CF_Copy")
    assert (code, databases(sandbox, svc)) == (5, [])
