"""A forced point-in-time restore over a target holding what the replay window creates (the
tester's finding 3, 2026-12-03).

The on-call "put it back as it was at T": ``restore --policy P --until-gtid G --force`` into
the source database itself. The base restore replaces the objects the backup holds, but a
table (view, routine...) created after the base is still on the target, with its state of
after T. The replay then met it: ``CREATE TABLE IF NOT EXISTS log`` was a no-op, and the
replayed rows were added to the rows of after T (exit 0, rows of after the target and rows
twice); a plain ``CREATE TABLE``, ``CREATE VIEW`` or ``CREATE PROCEDURE`` failed after the
base was loaded (exit 1). With ``--force`` such objects are now dropped before loading (the
replay recreates them as at T) and the report names them; what neither the base nor the
replay window creates is left as it is, as for a forced restore of the backup alone, and
the plan names it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from datatier.cli import main
from tests.integration.binlog_support import PitrWindow, pitr_window, query
from tests.integration.binlog_support import database_rows as rows
from tests.integration.conftest import SandboxHandle

DB, POLICY = "pitr_inplace", "pitr_inplace"


def routines(sandbox: SandboxHandle, database: str) -> list[tuple[str, str]]:
    found = query(
        sandbox.config,
        "primary",
        "SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s",
        (database,),
    )
    return sorted((str(n), str(d)) for n, d in found)


def _window(window: PitrWindow, *creates: str) -> tuple[str, dict[str, Any]]:
    """Base (table a), then ``creates`` and a row into log; the target moment; then the
    damage: a emptied, another row in log, the procedure and view redefined. (target GTID,
    the tables and routines as at the target)."""
    window.sql(
        f"CREATE TABLE {DB}.a (id INT PRIMARY KEY, v VARCHAR(20))",
        f"INSERT INTO {DB}.a VALUES (1, 'a1'), (2, 'a2')",
    )
    window.backup()
    with window.session() as cur:
        cur.execute("INSERT INTO a VALUES (3, 'a3')")
        for create in creates:
            cur.execute(create)
        cur.execute("INSERT INTO log VALUES ('before T')")
    gtid = window.gtid()
    expected = {"rows": rows(window.sandbox, DB), "routines": routines(window.sandbox, DB)}
    with window.session() as cur:
        cur.execute("DELETE FROM a")
        cur.execute("INSERT INTO log VALUES ('after T')")
        if any("PROCEDURE" in c for c in creates):
            cur.execute("CREATE OR REPLACE PROCEDURE p() SELECT 'after T'")
        if any("VIEW" in c for c in creates):
            cur.execute("CREATE OR REPLACE VIEW va AS SELECT 'after T' AS x")
        cur.execute("CREATE TABLE later (id INT)")  # after T: neither base nor window
        cur.execute("INSERT INTO later VALUES (7)")
    window.archive()
    return gtid, expected


@pytest.mark.parametrize(
    "creates",
    [
        ["CREATE TABLE IF NOT EXISTS log (msg VARCHAR(40))"],
        ["CREATE TABLE log (msg VARCHAR(40))"],
        [
            "CREATE TABLE log (msg VARCHAR(40))",
            "CREATE VIEW va AS SELECT id FROM a",
            "CREATE PROCEDURE p() SELECT 'before T'",
        ],
        [
            "CREATE TABLE log0 (msg VARCHAR(40))",
            "CREATE TABLE IF NOT EXISTS log1 (msg VARCHAR(40))",
            "RENAME TABLE log0 TO log",
        ],
    ],
    ids=["if-not-exists", "plain", "view-and-procedure", "renamed-into"],
)
def test_a_forced_in_place_restore_gives_the_target_moment(
    creates: list[str],
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every table, view and routine as at the target; ``later`` (created after it, not by
    the window) kept as it was; the report lists what --force dropped before loading."""
    with pitr_window(use_sandbox_config, POLICY, DB, monkeypatch=monkeypatch) as window:
        gtid, expected = _window(window, *creates)
        capsys.readouterr()
        code = main(["restore", "--policy", POLICY, "--until-gtid", gtid, "--force", "--json"])
        out = capsys.readouterr()
        assert code == 0, out.err
        got = rows(use_sandbox_config, DB)
        assert got.pop("later") == [(7,)]
        assert got == expected["rows"]
        assert routines(use_sandbox_config, DB) == expected["routines"]
        report = json.loads(out.out)
        later = {"kind": "table", "database": DB, "name": "later"}
        assert report["left_as_they_are"] == [later]
        dropped = report["window_replaced"]
        names = {(d["kind"], d["name"]) for d in dropped}
        assert ("table", "log") in names
        assert "later" not in {n for _, n in names} and "a" not in {n for _, n in names}
        if any("VIEW" in c for c in creates):
            assert {("view", "va"), ("procedure", "p")} <= names


def test_without_force_it_is_refused_and_the_dry_run_tells_what_force_drops(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No --force: the target is not empty, refused as before (exit 2). With it, the dry
    run names the window's table it would drop and the table it leaves; neither changes
    anything."""
    with pitr_window(use_sandbox_config, POLICY, DB, monkeypatch=monkeypatch) as window:
        gtid, _ = _window(window, "CREATE TABLE IF NOT EXISTS log (msg VARCHAR(40))")
        before = rows(use_sandbox_config, DB)
        argv = ["restore", "--policy", POLICY, "--until-gtid", gtid]
        assert main(argv) == 2
        capsys.readouterr()
        code = main([*argv, "--force", "--dry-run", "--scan"])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert "created in the replay window" in out.out and f"table `{DB}`.`log`" in out.out
        assert "leaves as they are" in out.out and "later" in out.out
        assert rows(use_sandbox_config, DB) == before


def _forced(window: PitrWindow, replayed: list[str], after: list[str], **session: Any) -> Any:
    """Base (table a), ``replayed`` in one session (``session``: its options) and a row
    into a, the target moment, ``after``, the archive caught up; then ``restore --force
    --json`` in place: (the rows as at the target, the report, the rows after)."""
    window.sql(f"CREATE TABLE {DB}.a (id INT PRIMARY KEY)", f"INSERT INTO {DB}.a VALUES (1)")
    window.backup()
    with window.session(**session) as cur:
        for sql in replayed:
            cur.execute(sql)
        cur.execute("INSERT INTO a VALUES (2)")
    gtid = window.gtid()
    expected = rows(window.sandbox, DB)
    with window.session() as cur:
        for sql in after:
            cur.execute(sql)
    window.archive()
    code = main(["restore", "--policy", POLICY, "--until-gtid", gtid, "--force", "--json"])
    return code, expected


def test_a_sessions_temporary_table_is_not_the_window_s_table(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under binlog_format=MIXED (MariaDB's default) a session's temporary table is logged
    in statements: the window's ``stage`` (CREATE TEMPORARY, INSERT, ALTER, TRUNCATE, a
    plain DROP TABLE) is no table of the database. The target's real ``stage`` of after
    the target moment is left as it is (it was dropped as the window's, rows and all)."""
    with pitr_window(use_sandbox_config, POLICY, DB, monkeypatch=monkeypatch) as window:
        temporary = [
            "CREATE TEMPORARY TABLE stage (x INT)",
            "INSERT INTO stage VALUES (5)",
            "ALTER TABLE stage ADD COLUMN y INT",
            "TRUNCATE TABLE stage",
            "DROP TABLE stage",
        ]
        later = ["CREATE TABLE stage (id INT)", "INSERT INTO stage VALUES (7)"]
        capsys.readouterr()
        code, expected = _forced(window, temporary, later, binlog_format="MIXED")
        out = capsys.readouterr()
        assert code == 0, out.err
        report = json.loads(out.out)
        assert "stage" not in {d["name"] for d in report.get("window_replaced", [])}
        assert {"kind": "table", "database": DB, "name": "stage"} in report["left_as_they_are"]
        got = rows(use_sandbox_config, DB)
        assert got.pop("stage") == [(7,)]
        assert got == expected


def test_set_statement_for_a_ddl_is_read_as_that_ddl(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``SET STATEMENT ... FOR CREATE TABLE IF NOT EXISTS later`` in the window (logged as
    written) creates ``later``: the target's ``later``, with a row of after the target
    moment, is dropped before loading and comes back empty, as at the target (read as a
    SET, it was not seen: the replay's IF NOT EXISTS kept the later row, exit 0)."""
    with pitr_window(use_sandbox_config, POLICY, DB, monkeypatch=monkeypatch) as window:
        create = [
            "SET STATEMENT max_statement_time=0 FOR CREATE TABLE IF NOT EXISTS later (id INT)"
        ]
        capsys.readouterr()
        code, expected = _forced(window, create, ["INSERT INTO later VALUES (7)"])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert expected["later"] == []
        report = json.loads(out.out)
        assert {"kind": "table", "database": DB, "name": "later"} in report["window_replaced"]
        assert rows(use_sandbox_config, DB) == expected


def test_a_routine_is_matched_as_the_server_matches_routine_names(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The window creates procedure `café`; after the target it is replaced by `cafe`,
    the same routine name to the server (case- and accent-blind). The target's `cafe` is
    dropped before loading and `café` comes back as at the target (compared in Python as
    different names, it was kept and the replay's CREATE failed after the base loaded)."""
    with pitr_window(use_sandbox_config, POLICY, DB, monkeypatch=monkeypatch) as window:
        create = ["CREATE PROCEDURE `café`() SELECT 'before T'"]
        later = ["DROP PROCEDURE `café`", "CREATE PROCEDURE cafe() SELECT 'after T'"]
        capsys.readouterr()
        code, _ = _forced(window, create, later)
        out = capsys.readouterr()
        assert code == 0, out.err
        assert routines(use_sandbox_config, DB) == [("café", "SELECT 'before T'")]
        report = json.loads(out.out)
        assert {"kind": "procedure", "database": DB, "name": "cafe"} in report["window_replaced"]
