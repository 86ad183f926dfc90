"""A point-in-time restore from a server with ``lower_case_table_names=1``: a statement
naming ``LCTN_DB.Orders`` writes the base's ``lctn_db.orders``. The replay's table selection
compared names case-sensitively, so such a statement was silently left out: a
statement-format INSERT under a policy that leaves a table out, an ALTER TABLE under
``--tables`` (the rows after it then lost their new column). Now names are compared as the
server compares them: kept, and a left-out table's statements stay out however spelled
(review finding; an extra real MariaDB started with ``--lower-case-table-names=1`` beside
the sandbox, whose servers run with the Linux default 0).

The other way round, a base from the sandbox replayed into the folding server: the replay
compares names as the source did (the backup records its ``lower_case_table_names``), so a
database `LCTN_PLAIN` beside the restored `lctn_plain` stays out, and tables `Orders` and
`orders` are refused together and restored one at a time with ``--tables``; so is a window
creating `orders` beside the base's `Orders`, before anything changes; a database created in
the window stays out, whatever its name.

And a base from the folding server replayed into the case-sensitive sandbox: the window's
statements spell names in any case, and the replay spells them as the source stored them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.service import run_backup
from datatier.binlog.archiver import Archiver
from datatier.cli import main
from datatier.mysql.pdump import ParallelDumpEngine
from datatier.mysql.physical.scratch import free_port
from datatier.sandbox.services.mariadb import MariaDBService
from tests.integration.binlog_support import own_server_policy, pitr_window, query
from tests.integration.conftest import SandboxHandle
from tests.integration.mariadb_support import connect_to, extra_mariadb, own_config

DB = "lctn_db"
RENAMED = "lctn_r"
POLICY = "pitr_lctn"
NODE = "lctn"
SOURCE = f'engine = "mysql"\n[source]\nnode = "{NODE}"\ndatabases = ["{DB}"]\n'


@pytest.fixture
def server(sandbox: SandboxHandle, tmp_path: Path, test_port_base: int) -> Iterator[MariaDBService]:
    """A fresh MariaDB folding table names (binlog and GTID on, as every sandbox node)."""
    port = free_port(range(test_port_base + 300, test_port_base + 310))
    with extra_mariadb(
        sandbox, NODE, port, tmp_path / "server", server_id=8,
        extra_args=["--lower-case-table-names=1"],
    ) as svc:  # fmt: skip
        yield svc


def run(sandbox: SandboxHandle, svc: MariaDBService, *statements: str) -> list[tuple[object, ...]]:
    with connect_to(sandbox, svc) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
        return list(cur.fetchall())


@pytest.mark.parametrize("case", ["exclude_tables", "tables"])
def test_a_statement_spelling_a_restored_table_otherwise_is_replayed(
    case: str,
    sandbox: SandboxHandle,
    server: MariaDBService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy_text = SOURCE + (
        f'exclude_tables = ["{DB}.audit"]\n' if case == "exclude_tables" else ""
    )
    config_path = own_config(sandbox, server, NODE, tmp_path, {POLICY: policy_text})
    assert run(sandbox, server, "SELECT @@lower_case_table_names") == [(1,)]
    with own_server_policy(config_path, POLICY, monkeypatch) as (loaded, policy, _):
        run(sandbox, server, f"CREATE DATABASE {DB}",
            f"CREATE TABLE {DB}.orders (id INT PRIMARY KEY)",
            f"CREATE TABLE {DB}.audit (id INT PRIMARY KEY)",
            f"INSERT INTO {DB}.orders VALUES (1)")  # fmt: skip
        run_backup(loaded, policy)
        rows: list[tuple[object, ...]]
        if case == "exclude_tables":  # statement format, the only table written named oddly
            window = [
                "SET SESSION binlog_format = 'STATEMENT'",
                "INSERT INTO LCTN_DB.Orders VALUES (2)",
                "INSERT INTO Lctn_Db.AUDIT VALUES (2)",  # left out, as the base left it out
                "SET SESSION binlog_format = 'ROW'",
                "INSERT INTO LCTN_DB.ORDERS VALUES (3)",
            ]
            argv: list[str] = []
            columns, rows = ["id"], [(1,), (2,), (3,)]
        else:
            window = [
                "ALTER TABLE LCTN_DB.Orders ADD COLUMN note VARCHAR(10)",
                "INSERT INTO LCTN_DB.ORDERS VALUES (2, 'after')",
            ]
            argv = ["--tables", f"{DB}.orders"]
            columns, rows = ["id", "note"], [(1, None), (2, "after")]
        run(sandbox, server, f"USE {DB}", *window)
        gtid = str(run(sandbox, server, "SELECT @@gtid_binlog_pos")[0][0])
        Archiver(loaded, policy, node=NODE, once=True).run()

        code = main(["restore", "--policy", POLICY, "--until-gtid", gtid, *argv,
                     "--rename", f"{DB}={RENAMED}"])  # fmt: skip

        assert code == 0
        shown = run(sandbox, server, f"SHOW TABLES FROM {RENAMED}")
        assert shown == [("orders",)], "a table the base left out came back"
        got = run(sandbox, server, f"SELECT {', '.join(columns)} FROM {RENAMED}.orders ORDER BY id")
        assert got == rows


def unrecorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backups taken in the test record no ``lower_case_table_names`` (as older ones)."""
    facts = ParallelDumpEngine._server_facts

    def without(self: ParallelDumpEngine, group: Any) -> dict[str, Any]:
        found = facts(self, group)
        del found["lower_case_table_names"]
        return found

    monkeypatch.setattr(ParallelDumpEngine, "_server_facts", without)


CASED = "lctn_cased"  # on the sandbox (case-sensitive): `Orders` and `orders`


@pytest.mark.parametrize(
    ("recorded", "argv", "expected"),
    [
        (True, [], None),
        (True, ["--dry-run"], None),
        (True, ["--tables", f"{CASED}.orders"], [(10,), (20,)]),
        (True, ["--tables", f"{CASED}.Orders"], [(1,), (2,)]),
        (False, ["--tables", f"{CASED}.orders"], None),
    ],
)
def test_a_case_sensitive_base_with_names_one_here(
    recorded: bool,
    argv: list[str],
    expected: list[tuple[int]] | None,
    use_sandbox_config: SandboxHandle,
    server: MariaDBService,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A base from the sandbox (``lower_case_table_names=0``) holding `Orders` and `orders`,
    replayed into the folding server. The replay matched the binlog's names as the target
    compares them, so it wrote both tables' rows into the one restored, exit 0: `orders`
    held `Orders`' base row and the window's rows of both (its own base row lost); with
    ``--tables`` choosing `orders`, `Orders`' rows of the window came into it. Now the
    whole restore is refused (exit 2, nothing created there); ``--tables`` choosing one
    restores it alone, the replay comparing names as the source did (backups record its
    setting). A base that does not record it (``recorded`` False, as older backups) is
    refused with ``--tables`` too: the replay could not tell the names apart."""
    sandbox = use_sandbox_config
    if not recorded:
        unrecorded(monkeypatch)
    with pitr_window(sandbox, "pitr_cased", CASED, monkeypatch=monkeypatch) as window:
        window.sql(
            f"CREATE TABLE {CASED}.Orders (id INT PRIMARY KEY)",
            f"CREATE TABLE {CASED}.orders (id INT PRIMARY KEY)",
            f"INSERT INTO {CASED}.Orders VALUES (1)",
            f"INSERT INTO {CASED}.orders VALUES (10)",
        )
        assert ("lower_case_table_names" in window.backup().source) == recorded
        window.sql(
            f"INSERT INTO {CASED}.Orders VALUES (2)", f"INSERT INTO {CASED}.orders VALUES (20)"
        )
        gtid = window.gtid()
        window.archive()
        capsys.readouterr()

        code = main(["restore", "--policy", "pitr_cased", "--until-gtid", gtid,
                     "--target", f"{server.host}:{server.port}", *argv])  # fmt: skip

        err = capsys.readouterr().err
        if expected is not None:
            assert code == 0, err
            assert run(sandbox, server, f"SHOW TABLES FROM {CASED}") == [("orders",)]
            assert run(sandbox, server, f"SELECT id FROM {CASED}.orders ORDER BY id") == expected
            return
        shown = run(sandbox, server, f"SHOW DATABASES LIKE '{CASED}'")
        assert (code, shown) == (2, []), err
        assert f"{CASED}.Orders and {CASED}.orders" in err
        assert "lower_case_table_names=1" in err
        assert ("point-in-time" in err) == (not recorded)


PLAIN = "lctn_plain"  # on the sandbox, beside `LCTN_PLAIN` (another database, not backed up)


def test_a_case_sensitive_sources_other_database_stays_out(
    use_sandbox_config: SandboxHandle,
    server: MariaDBService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sandbox (``lower_case_table_names=0``) holds `lctn_plain` (the policy's) and
    `LCTN_PLAIN` (another database). Replayed into the folding server, statements on
    `LCTN_PLAIN` are not the restored database's: names are matched as the source
    compared them (recorded in the backup), not as the target does."""
    sandbox = use_sandbox_config
    upper = PLAIN.upper()
    with pitr_window(sandbox, "pitr_plain", PLAIN, upper, monkeypatch=monkeypatch) as window:
        window.sql(
            f"CREATE DATABASE {upper}",
            f"CREATE TABLE {PLAIN}.t (id INT PRIMARY KEY)",
            f"CREATE TABLE {upper}.t (id INT PRIMARY KEY)",
            f"INSERT INTO {PLAIN}.t VALUES (1)",
        )
        window.backup()
        window.sql(f"INSERT INTO {PLAIN}.t VALUES (2)", f"INSERT INTO {upper}.t VALUES (100)")
        with window.session(upper, binlog_format="STATEMENT") as cur:
            cur.execute("INSERT INTO t VALUES (101)")
        gtid = window.gtid()
        window.archive()

        code = main(["restore", "--policy", "pitr_plain", "--until-gtid", gtid,
                     "--target", f"{server.host}:{server.port}"])  # fmt: skip

        got = run(sandbox, server, f"SELECT id FROM {PLAIN}.t ORDER BY id")
        assert (code, got) == (0, [(1,), (2,)])


WINDOW = "lctn_window"  # on the sandbox (case-sensitive): `Orders` in the base, `orders` later


@pytest.mark.parametrize(
    ("recorded", "argv"),
    [
        (True, []),
        (True, ["--dry-run", "--scan"]),
        (True, ["--rename", f"{WINDOW}=lctn_w2"]),
        (False, []),
    ],
)
def test_a_table_created_in_the_window_differing_by_case_is_refused(
    recorded: bool,
    argv: list[str],
    use_sandbox_config: SandboxHandle,
    server: MariaDBService,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The base (from the sandbox, ``lower_case_table_names=0``) holds `Orders` alone; the
    window creates `orders` (IF NOT EXISTS) and writes rows to both. Replayed into the
    folding server, where the two are one, the replay put both tables' rows into one (exit
    0; without IF NOT EXISTS the replay would fail half-way, the base loaded). Refused
    before anything changes (exit 2), naming both tables and the target's setting, a dry
    run's scan too. A base not recording its source's setting (``recorded`` False, as
    older backups: names compared as the target does) is refused too: the table maps
    spell the two tables apart."""
    sandbox = use_sandbox_config
    if not recorded:
        unrecorded(monkeypatch)
    with pitr_window(sandbox, "pitr_window", WINDOW, monkeypatch=monkeypatch) as window:
        window.sql(
            f"CREATE TABLE {WINDOW}.Orders (id INT PRIMARY KEY)",
            f"INSERT INTO {WINDOW}.Orders VALUES (1)",
        )
        assert ("lower_case_table_names" in window.backup().source) == recorded
        window.sql(
            f"CREATE TABLE IF NOT EXISTS {WINDOW}.orders (id INT PRIMARY KEY)",
            f"INSERT INTO {WINDOW}.Orders VALUES (2)",
            f"INSERT INTO {WINDOW}.orders VALUES (20)",
        )
        gtid = window.gtid()
        window.archive()
        capsys.readouterr()

        code = main(["restore", "--policy", "pitr_window", "--until-gtid", gtid,
                     "--target", f"{server.host}:{server.port}", *argv])  # fmt: skip

        err = capsys.readouterr().err
        shown = run(sandbox, server, "SHOW DATABASES LIKE 'lctn\\_w%'")
        assert (code, shown) == (2, []), err
        assert f"{WINDOW}.Orders" in err and f"{WINDOW}.orders" in err
        assert "lower_case_table_names=1" in err and "created after the base" in err


WDB = "lctn_wdb"  # the base's; the window creates `LCTN_WDB` beside it


def test_a_database_created_in_the_window_differing_by_case_stays_out(
    use_sandbox_config: SandboxHandle,
    server: MariaDBService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database created after the base is not part of the restore (whatever its name):
    `LCTN_WDB`, created in the window beside the base's `lctn_wdb`, is one with it on the
    folding server, and none of its statements (rows or statement format, its default
    database or qualified) may reach the restored `lctn_wdb`."""
    sandbox = use_sandbox_config
    upper = WDB.upper()
    with pitr_window(sandbox, "pitr_wdb", WDB, upper, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {WDB}.t (id INT PRIMARY KEY)", f"INSERT INTO {WDB}.t VALUES (1)")
        window.backup()
        window.sql(
            f"CREATE DATABASE {upper}",
            f"CREATE TABLE {upper}.t (id INT PRIMARY KEY)",
            f"INSERT INTO {upper}.t VALUES (100)",
            f"INSERT INTO {WDB}.t VALUES (2)",
        )
        with window.session(upper, binlog_format="STATEMENT") as cur:
            cur.execute("INSERT INTO t VALUES (101)")
            cur.execute(f"INSERT INTO {upper}.t VALUES (102)")
        gtid = window.gtid()
        window.archive()

        code = main(["restore", "--policy", "pitr_wdb", "--until-gtid", gtid,
                     "--target", f"{server.host}:{server.port}"])  # fmt: skip

        got = run(sandbox, server, f"SELECT id FROM {WDB}.t ORDER BY id")
        assert (code, got) == (0, [(1,), (2,)])


FOLDED = "lctn_src"  # on the folding server; restored into the case-sensitive sandbox


@pytest.mark.parametrize("rename", [None, "lctn_back"])
def test_a_folding_source_round_trips_into_a_case_sensitive_target(
    rename: str | None,
    sandbox: SandboxHandle,
    server: MariaDBService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A backup of the folding server (names stored lower-cased) restored and replayed into
    the sandbox primary (``lower_case_table_names=0``): the window's statements spell names
    in any case (`LCTN_SRC.Items`, `Lctn_Src.ORDERS`), which the source took for its
    lower-cased names and a case-sensitive target takes for others (`İDX`, stored `idx`
    there: lower-cased as the server does, not as Python's ``str.lower``). Every name is as
    the source stored it, every row there."""
    policy = "pitr_lctn_src"
    source = f'engine = "mysql"\n[source]\nnode = "{NODE}"\ndatabases = ["{FOLDED}"]\n'
    config_path = own_config(sandbox, server, NODE, tmp_path, {policy: source})
    dest = rename or FOLDED
    drop = [f"DROP DATABASE IF EXISTS {dest}"]
    with own_server_policy(config_path, policy, monkeypatch) as (loaded, chosen, _):
        run(sandbox, server, f"CREATE DATABASE {FOLDED}",
            f"CREATE TABLE {FOLDED}.Orders (id INT PRIMARY KEY)",
            f"INSERT INTO {FOLDED}.ORDERS VALUES (1)")  # fmt: skip
        run_backup(loaded, chosen)
        run(sandbox, server, "USE LCTN_SRC",
            "CREATE TABLE LCTN_SRC.Items (id INT PRIMARY KEY, Label VARCHAR(10))",
            "INSERT INTO LCTN_SRC.Items VALUES (1, 'One')",
            "ALTER TABLE Lctn_Src.ORDERS ADD COLUMN Note VARCHAR(10)",
            "INSERT INTO lctn_src.Orders VALUES (2, 'row')",
            "SET SESSION binlog_format = 'STATEMENT'",
            "INSERT INTO Items VALUES (2, 'Two')",
            "UPDATE LCTN_SRC.ORDERS o SET o.Note = 'upd' WHERE o.id = 1",
            "CREATE TABLE `İdx` (id INT PRIMARY KEY)",
            "INSERT INTO `İDX` VALUES (7)",
            "SET SESSION binlog_format = 'ROW'")  # fmt: skip
        gtid = str(run(sandbox, server, "SELECT @@gtid_binlog_pos")[0][0])
        Archiver(loaded, chosen, node=NODE, once=True).run()
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(drop[0])
        capsys.readouterr()
        primary = sandbox.config.mysql.nodes["primary"]
        renamed = ["--rename", f"{FOLDED}={rename}"] if rename else []
        try:
            code = main(["restore", "--policy", policy, "--until-gtid", gtid, *renamed,
                         "--target", f"{primary.host}:{primary.port}"])  # fmt: skip
            err = capsys.readouterr().err
            assert code == 0, err
            with sandbox.connect() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                    "ORDER BY 1", (dest,)
                )  # fmt: skip
                tables = [r[0] for r in cur.fetchall()]
                cur.execute(f"SELECT id, Note FROM {dest}.orders ORDER BY id")
                orders = list(cur.fetchall())
                cur.execute(f"SELECT id, Label FROM {dest}.items ORDER BY id")
                items = list(cur.fetchall())
                cur.execute(f"SELECT id FROM {dest}.idx")
                idx = list(cur.fetchall())
        finally:
            with sandbox.connect() as conn, conn.cursor() as cur:
                cur.execute(drop[0])
            sandbox.wait_replicated(60)
        assert tables == ["idx", "items", "orders"]  # İ stored as i there (not Python's i̇)
        assert orders == [(1, "upd"), (2, "row")] and idx == [(7,)]
        assert items == [(1, "One"), (2, "Two")]


def test_a_source_storing_names_as_created_is_refused_into_a_case_sensitive_target(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A base recording ``lower_case_table_names=2`` (names stored as created, compared
    lower-cased: the sandbox's facts altered, as no Linux server runs with 2) replayed into
    the case-sensitive sandbox: its statements need not spell names as stored, and the
    stored spelling cannot be told from them. Refused (exit 2) before anything changes."""
    sandbox = use_sandbox_config
    facts = ParallelDumpEngine._server_facts

    def as_created(self: ParallelDumpEngine, group: Any) -> dict[str, Any]:
        return {**facts(self, group), "lower_case_table_names": 2}

    monkeypatch.setattr(ParallelDumpEngine, "_server_facts", as_created)
    dest = "lctn_two_r"
    with pitr_window(sandbox, "pitr_two", "lctn_two", dest, monkeypatch=monkeypatch) as window:
        window.sql("CREATE TABLE lctn_two.t (id INT PRIMARY KEY)")
        window.backup()
        window.sql("INSERT INTO lctn_two.t VALUES (1)")
        gtid = window.gtid()
        window.archive()
        capsys.readouterr()

        code = main(["restore", "--policy", "pitr_two", "--until-gtid", gtid,
                     "--rename", f"lctn_two={dest}"])  # fmt: skip

        err = capsys.readouterr().err
        created = query(sandbox.config, "primary", f"SHOW DATABASES LIKE '{dest}'")
        assert (code, created) == (2, []), err
        assert "lower_case_table_names=2" in err


SIGMA, sigma = "\u0394\u03a3", "\u03b4\u03c3"  # delta sigma; Python lowers it "\u03b4\u03c2"


def test_a_statement_spelling_a_table_as_the_server_folds_it_is_replayed(
    sandbox: SandboxHandle,
    server: MariaDBService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The folding server stores `İA` as `ia` and SIGMA as sigma (utf8mb3_general_ci's
    lower case). The replay folded a statement's names with Python's ``str.lower`` (`i̇a`,
    a final sigma) and took them for other tables: under ``--tables`` choosing both it left
    out their ALTER TABLEs, and the rows written after them lost their new column (exit
    0). Names are now folded as the server folds them."""
    config_path = own_config(sandbox, server, NODE, tmp_path, {POLICY: SOURCE})
    with own_server_policy(config_path, POLICY, monkeypatch) as (loaded, policy, _):
        run(sandbox, server, f"CREATE DATABASE {DB} CHARACTER SET utf8mb4",
            f"CREATE TABLE {DB}.`İA` (id INT PRIMARY KEY)",
            f"CREATE TABLE {DB}.`{SIGMA}` (id INT PRIMARY KEY)",
            f"CREATE TABLE {DB}.audit (id INT PRIMARY KEY)")  # fmt: skip
        assert run(sandbox, server, f"SHOW TABLES FROM {DB}") == [("audit",), ("ia",), (sigma,)]
        run_backup(loaded, policy)
        run(sandbox, server, f"USE {DB}",
            "ALTER TABLE `İA` ADD COLUMN note VARCHAR(10)", "INSERT INTO `İA` VALUES (1, 'i')",
            f"ALTER TABLE `{SIGMA}` ADD COLUMN note VARCHAR(10)",
            f"INSERT INTO `{SIGMA}` VALUES (2, 's')",
            "INSERT INTO audit VALUES (3)")  # fmt: skip
        gtid = str(run(sandbox, server, "SELECT @@gtid_binlog_pos")[0][0])
        Archiver(loaded, policy, node=NODE, once=True).run()

        chosen = ["--tables", f"{DB}.ia,{DB}.{sigma}", "--rename", f"{DB}={RENAMED}"]
        code = main(["restore", "--policy", POLICY, "--until-gtid", gtid, *chosen])

        assert code == 0
        assert run(sandbox, server, f"SHOW TABLES FROM {RENAMED}") == [("ia",), (sigma,)]
        assert run(sandbox, server, f"SELECT id, note FROM {RENAMED}.ia") == [(1, "i")]
        assert run(sandbox, server, f"SELECT id, note FROM {RENAMED}.`{sigma}`") == [(2, "s")]
