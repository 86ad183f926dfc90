"""Tester 2's findings on the forced point-in-time restore in place (2026-12-03, after
c66c458/a2f1a48: ``--force`` drops what the replay window creates before loading).

The on-call "put the database back as it was at T": ``restore --policy P --until-gtid G
--force`` into the source database itself. Each test asserts what SHOULD happen and failed
when written. Fixed (their tests here): 1, 2 and 10 (a latin1 client's non-ASCII names:
read in the client's charset since), 3, 4 and 6 (now refused up front), 5, 7, 8, 9.

Findings:

1. ``ALTER TABLE p CONVERT PARTITION p0 TO TABLE p0t`` in the window (MariaDB 10.7+)
   is not read as creating ``p0t`` (created.py: ALTER TABLE names only RENAME targets).
   In place, the target still holds ``p0t`` (rows of after T): nothing dropped, the
   base loaded, then the replay fails "Table 'p0t' already exists": exit 1, the
   database half restored.
2. A table the window creates from a latin1 client (``CREATE TABLE IF NOT EXISTS
   `café```) is noted under the statement's bytes decoded as UTF-8 with surrogates
   (``caf\udce9``), which matches no name on the target: ``café`` is not dropped, the
   replay's IF NOT EXISTS keeps it, exit 0 with the row of after T in it (at T it was
   empty). A plain CREATE TABLE fails after loading (exit 1).
3. ``RENAME TABLE IF EXISTS log0 TO log`` is scanned as naming tables ``IF``,
   ``EXISTS``, ``log0``, ``log``; every other name counts as created, so ``EXISTS`` is
   "created in the replay window": a table ``EXISTS`` made after T (the window never
   names it) is dropped by --force and lost (exit 0), instead of being left as it is.
4. ``child`` with FOREIGN KEY ``fk_child`` is created in the window (or is in the
   base); after T it is renamed (``later_child_old``: the constraint name, unique per
   database, goes with it). The renamed table is left as it is, and the replay's (or
   the base's own) CREATE TABLE child fails on the duplicate constraint name (errno
   121): exit 1 after the base loaded (the base variant: half of the base's bundle
   loaded), where the plan could have refused (exit 2) or gone on.
5. Procedures, functions and events created after T stay after a forced in-place
   restore (exit 0), but ``left_as_they_are`` (and the plan's text) names only tables,
   views and sequences: an event of after T that deletes from a restored table is not
   mentioned.
6. The base holds a table whose column defaults to NEXTVAL(s) while ``s`` had been
   dropped; the window creates ``s`` again. The plan's check (tables drawing from
   sequences neither the restore nor the target has) counts the target's ``s``, which
   --force then drops as a window object before loading: CREATE TABLE t fails "Table
   's' doesn't exist", exit 1 with the base half loaded.
7. An ``IF EXISTS`` statement of the window that was a no-op on the source (binlogged
   anyway) acts on the target's object of after T that the plan names in
   ``left_as_they_are``: ``DROP TABLE IF EXISTS later`` / ``DROP VIEW IF EXISTS later``
   drop it (exit 0, the plan said it stays); ``RENAME TABLE IF EXISTS later TO x`` moves
   its rows of after T into ``x``, a table that did not exist at T (exit 0). Likewise a
   window's DROP DATABASE + CREATE DATABASE of the restored database: ``later`` is named
   as left, and the replay drops it (the final state is right, the plan is not).
8. ``--force --dry-run`` without ``--scan`` (exit 0) says nothing of what --force will
   drop as created in the replay window (a table with its rows, a view, a trigger) nor
   of the tables it leaves, not even that ``--scan`` would tell: the on-call engineer's
   dry run reads like a plain restore of the base and the replay. (The README says a
   dry run without --scan reads no segment: a missing hint more than a wrong word.)
9. ``ALTER EVENT ev RENAME TO ev2`` in the window is not read as creating ``ev2``
   (created.py knows only CREATE EVENT): the target's ``ev2`` (of after T) is not
   dropped and the replay fails "Event 'ev2' already exists": exit 1 after the base
   loaded.
10. (Not only in place: any point-in-time restore.) A restored database with a
    non-ASCII name (``t2_dé``) written by a latin1 client that qualifies its names:
    the statement's bytes are scanned as UTF-8 with surrogates (``t2_d\udce9``), not a
    restored database, and the statement is skipped without a word. A statement-format
    INSERT of the window is lost (exit 0, a row of before T missing); a CREATE TABLE is
    skipped and the row events into that table then fail (exit 1 after loading; in
    place, --force had dropped the target's ``log``, known from those row events, and
    nothing recreates it).

Tried and behaved correctly (exit 0 and the state at T, or exit 2 with nothing changed):
CREATE TABLE IF NOT EXISTS / plain / OR REPLACE of window tables, and of a table the
base holds; a window table created and dropped, the name created again after T (gone
after the restore, named in window_replaced); after T a view or sequence under a window
table's name (dropped whatever its kind); CREATE ... IF NOT EXISTS of a trigger,
procedure, event, sequence and view with later versions (CREATE OR REPLACE after T);
statement-format CREATE TABLE ... SELECT, INSERT, UPDATE, RENAME in the window; a
trigger created in the window on a window table and on a base table (row and statement
format DML; rows not doubled); temporary tables in statement format (one shadowing a
base table while another session writes it; two sessions' temporary tables of one
name); RENAME TABLE swap chains (a->tmp, b->a, tmp->b; c0->c1->c2->c0 with c0 reused
after T); case differences (``Log`` in the window, ``log`` after T; procedure ``Pp``
then ``pp``); names with a backtick, a dot, a space, non-ASCII (UTF-8 client) and
ANSI_QUOTES; two databases restored at once with window tables created, renamed and
CREATE ... LIKE across them; --rename SRC=DST --force into an existing copy (the
source database untouched, the copy as at T); --tables DB.a --force (only a and its
trigger replaced; window tables left); --tables of a window table (exit 2, nothing
changed); policy exclude_tables of a table written and of one created in the window
(left untouched, with its trigger); a base trigger moved after T onto a new table;
a dry run (--dry-run --scan --json) listing the same window_replaced (order aside:
the restore lists triggers first) and left_as_they_are as the restore, and changing
nothing; an invalid view in the base is refused at backup time; foreign keys from a
window table to a base table (ON DELETE CASCADE) and from a base table to a window
table (ALTER TABLE a ADD ... FOREIGN KEY REFERENCES parent); a system-versioned table
created in the window (its history rows as at T); ``RENAME TABLE ... WAIT n/NOWAIT``
(read as creating the new name: checked on the scanner only, not on the server).

Observations without a test: a table of exclude_tables created in the window is left as
it is (right) but listed in ``left_as_they_are`` under "created after the target
moment"; test_pitr_in_place's dry-run test asserts ``"log" in out``, which "binlog" in
every segment line satisfies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from datatier.cli import main
from tests.integration.binlog_support import PitrWindow, pitr_window, query
from tests.integration.conftest import SandboxHandle, cli_json

DB, POLICY = "t2_inplace", "t2_inplace"


def state(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    """What ``database`` holds: every table, view and sequence with its kind, columns and
    rows (views: their definition), routines, triggers, events and foreign keys."""

    def q(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return query(sandbox.config, "primary", sql, args or None)

    found: dict[str, Any] = {}
    for name, kind in q(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        database,
    ):
        quoted = "`{}`.`{}`".format(database.replace("`", "``"), str(name).replace("`", "``"))
        if kind == "VIEW":
            body = q(
                "SELECT VIEW_DEFINITION FROM information_schema.VIEWS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                database,
                name,
            )
        else:
            body = sorted(q(f"SELECT * FROM {quoted}"))
        columns = q(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            database,
            name,
        )
        found[f"{kind} {name}"] = (columns, body)
    found["routines"] = sorted(
        q(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME, ROUTINE_DEFINITION FROM "
            "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
            database,
        )
    )
    found["triggers"] = sorted(
        q(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT FROM "
            "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
            database,
        )
    )
    found["events"] = sorted(
        q(
            "SELECT EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS "
            "WHERE EVENT_SCHEMA = %s",
            database,
        )
    )
    found["foreign keys"] = sorted(
        q(
            "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME FROM "
            "information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
            database,
        )
    )
    return found


def run(cur: Any, statements: Iterable[str]) -> None:
    for sql in statements:
        cur.execute(sql)


def scenario(
    window: PitrWindow,
    base: list[str],
    replayed: list[str],
    after: list[str],
    charset: str = "utf8mb4",
) -> tuple[str, dict[str, Any]]:
    """``base`` then a backup; ``replayed`` (the replay window, in a session of client
    character set ``charset``); the target moment; then ``after``; the archive caught up.
    (the target GTID, the database's state at it)."""
    with window.session() as cur:
        run(cur, base)
    window.backup()
    with window.session(charset=charset) as cur:
        run(cur, replayed)
    gtid = window.gtid()
    expected = state(window.sandbox, DB)
    with window.session() as cur:
        run(cur, after)
    window.archive()
    return gtid, expected


def restore(
    capsys: pytest.CaptureFixture[str], gtid: str, *extra: str
) -> tuple[int, dict[str, Any], str]:
    """``restore --policy POLICY --until-gtid gtid --force --json`` (and ``extra``):
    (exit code, the JSON report or {}, stderr)."""
    return cli_json(
        capsys, ["restore", "--policy", POLICY, "--until-gtid", gtid, "--force", "--json", *extra]
    )


@pytest.fixture
def window(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterable[PitrWindow]:
    with pitr_window(use_sandbox_config, POLICY, DB, monkeypatch=monkeypatch) as made:
        yield made


BASE = [
    "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(20))",
    "INSERT INTO a VALUES (1, 'a1'), (2, 'a2')",
]


def test_1_convert_partition_to_table_in_the_window(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The window splits a partition out as table ``p0t`` (MariaDB 10.7+); after T a row
    goes into it. ``p0t`` is created by the window, so --force should drop it and the
    replay recreate it as at T."""
    gtid, expected = scenario(
        window,
        [
            *BASE,
            "CREATE TABLE p (id INT PRIMARY KEY) PARTITION BY RANGE (id) "
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)",
            "INSERT INTO p VALUES (1), (20)",
        ],
        ["INSERT INTO a VALUES (3, 'a3')", "ALTER TABLE p CONVERT PARTITION p0 TO TABLE p0t"],
        ["INSERT INTO p0t VALUES (5)", "DELETE FROM a"],
    )
    code, report, err = restore(capsys, gtid)
    assert code == 0, err
    assert state(window.sandbox, DB) == expected
    assert {"kind": "table", "database": DB, "name": "p0t"} in report["window_replaced"]


def test_3_rename_table_if_exists_drops_a_table_named_exists(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """``RENAME TABLE IF EXISTS log0 TO log`` in the window is read as creating a table
    named ``EXISTS``: a table of that name created after T (which the window never
    names) is dropped by --force and lost, though the plan should leave it as it is."""
    gtid, expected = scenario(
        window,
        BASE,
        [
            "CREATE TABLE log0 (msg VARCHAR(40))",
            "INSERT INTO log0 VALUES ('before T')",
            "RENAME TABLE IF EXISTS log0 TO log",
        ],
        ["CREATE TABLE `EXISTS` (id INT)", "INSERT INTO `EXISTS` VALUES (7)"],
    )
    code, report, err = restore(capsys, gtid)
    assert code == 0, err
    got = state(window.sandbox, DB)
    assert got.pop("BASE TABLE EXISTS", None) == ([("id", "int(11)")], [(7,)])
    assert got == expected
    assert {"kind": "table", "database": DB, "name": "EXISTS"} in report["left_as_they_are"]
    assert "EXISTS" not in {d["name"] for d in report.get("window_replaced", [])}


@pytest.mark.parametrize(
    "noop",
    [
        ["DROP TABLE IF EXISTS later"],
        ["DROP VIEW IF EXISTS later"],
        ["RENAME TABLE IF EXISTS later TO x"],
        [
            f"DROP DATABASE {DB}",
            f"CREATE DATABASE {DB}",
            f"CREATE TABLE {DB}.a (id INT PRIMARY KEY, v VARCHAR(20))",
        ],
    ],
    ids=["drop-table", "drop-view", "rename-table", "drop-database"],
)
def test_7_a_window_statement_acts_on_a_table_the_plan_leaves_as_it_is(
    noop: list[str], window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The window runs ``noop`` while ``later`` does not exist (an IF EXISTS no-op on the
    source, binlogged anyway; or a DROP DATABASE); ``later`` is created after T. The plan
    names ``later`` among the tables --force leaves as they are, yet the replay finds it
    on the target and drops it, or renames it to ``x`` (a table that did not exist at T,
    holding the rows of after T), exit 0. Either the plan's word holds (``later`` kept)
    or the plan does not name it as left; no table of after T may appear."""
    kind = "VIEW" if "VIEW" in noop[0] else "TABLE"
    key = f"{'VIEW' if kind == 'VIEW' else 'BASE TABLE'} later"
    later = (
        "CREATE VIEW later AS SELECT 7 AS id" if kind == "VIEW" else "CREATE TABLE later (id INT)"
    )
    gtid, expected = scenario(
        window,
        BASE,
        ["INSERT INTO a VALUES (3, 'a3')", *noop],
        [
            f"USE {DB}",
            later,
            *(["INSERT INTO later VALUES (7)"] if kind == "TABLE" else []),
            "DELETE FROM a",
        ],
    )
    kept = state(window.sandbox, DB)[key]
    code, report, err = restore(capsys, gtid)
    assert code == 0, err
    named = {(d["kind"], d["name"]) for d in report.get("left_as_they_are", [])}
    got = state(window.sandbox, DB)
    now = got.pop(key, None)
    if (kind.lower(), "later") in named:
        assert now == kept  # named as left as it is: it is
    assert got == expected


def test_8_a_dry_run_without_scan_is_silent_on_what_force_drops(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """``restore --until-gtid G --force --dry-run`` (no --scan) of a target holding
    window table ``wtable``, view ``va`` and trigger ``trg``, and ``later`` of after T:
    exit 0, it lists the base and the segments and says nothing of the objects --force
    will drop before loading nor of the tables it leaves, not even that --scan would
    tell them. The restore then drops ``wtable``, ``va`` and ``trg``."""
    gtid, _ = scenario(
        window,
        BASE,
        [
            "INSERT INTO a VALUES (3, 'a3')",
            "CREATE TABLE wtable (msg VARCHAR(40))",
            "INSERT INTO wtable VALUES ('before T')",
            "CREATE VIEW va AS SELECT id FROM a",
            "CREATE TRIGGER trg BEFORE INSERT ON a FOR EACH ROW SET NEW.v = UPPER(NEW.v)",
        ],
        ["INSERT INTO wtable VALUES ('after T')", "CREATE TABLE later (id INT)"],
    )
    capsys.readouterr()
    code = main(["restore", "--policy", POLICY, "--until-gtid", gtid, "--force", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "wtable" in out or "--scan" in out, out


def test_9_an_event_renamed_in_the_window(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The window creates event ``ev`` and renames it ``ev2`` (ALTER EVENT ... RENAME TO);
    after T ``ev2`` is redefined. ``ev2`` is not read as created by the window, so the
    target's ``ev2`` is not dropped, and the replay's rename fails on it: exit 1 after
    the base was loaded."""
    gtid, expected = scenario(
        window,
        BASE,
        [
            "INSERT INTO a VALUES (3, 'a3')",
            "CREATE EVENT ev ON SCHEDULE EVERY 1 HOUR DISABLE DO DELETE FROM a WHERE id = 1",
            "ALTER EVENT ev RENAME TO ev2",
        ],
        ["ALTER EVENT ev2 DO DELETE FROM a", "DELETE FROM a"],
    )
    code, report, err = restore(capsys, gtid)
    assert code == 0, err
    assert state(window.sandbox, DB) == expected
    assert {"kind": "event", "database": DB, "name": "ev2"} in report["window_replaced"]


ODD_DB = "t2_dé"


def _refused_or_as_at(
    window: PitrWindow, code: int, err: str, before: dict[str, Any], expected: dict[str, Any]
) -> None:
    """A restore that could not give the target moment refuses up front (exit 2, nothing
    changed); one that goes on gives it (exit 0)."""
    got = state(window.sandbox, DB)
    assert code in (0, 2), f"exit {code} after changing the target: {err}"
    if code == 2:
        assert got == before
    else:
        assert {k: v for k, v in got.items() if "later" not in k} == expected


@pytest.mark.parametrize(
    ("created_in", "declared"),
    [
        ("window", "CONSTRAINT fk_child FOREIGN KEY (aid)"),
        ("base", "CONSTRAINT fk_child FOREIGN KEY (aid)"),
        ("window", "FOREIGN KEY (aid)"),  # child_ibfk_1 follows the rename: no clash
    ],
)
def test_4_a_table_renamed_after_t_keeps_its_foreign_key_name(
    created_in: str, declared: str, window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """``child`` with foreign key ``fk_child`` is created in the window (or is in the
    base); after T it is renamed ``later_child_old`` (the constraint name goes with it;
    InnoDB's names are per database) and, for the base's, a new ``child`` made. The
    renamed table is left as it is, and the replay's (the base's) CREATE TABLE child
    failed on the duplicate constraint name (errno 121): exit 1 after the base was
    loaded. Now refused up front (exit 2, nothing changed); a key the server named goes
    on (exit 0, the state at T)."""
    child = [
        f"CREATE TABLE child (aid INT, {declared} REFERENCES a (id))",
        "INSERT INTO child VALUES (1)",
    ]
    in_base = created_in == "base"
    gtid, expected = scenario(
        window,
        [*BASE, *(child if in_base else [])],
        ["INSERT INTO a VALUES (3, 'a3')", *([] if in_base else child)],
        [
            "RENAME TABLE child TO later_child_old",
            *(["CREATE TABLE child (aid INT)"] if in_base else []),
            "DELETE FROM a WHERE id = 2",
        ],
    )
    before = state(window.sandbox, DB)
    code, _, err = restore(capsys, gtid)
    if "CONSTRAINT" in declared:
        assert code == 2 and "foreign keys named like ones the restore creates" in err, err
        assert "'fk_child' of `t2_inplace`.`later_child_old`" in err, err
        _refused_or_as_at(window, code, err, before, expected)
    else:
        assert code == 0, err
        got = state(window.sandbox, DB)
        got["foreign keys"] = [k for k in got["foreign keys"] if "later" not in k[1]]
        assert {k: v for k, v in got.items() if "later" not in k} == expected


def test_5_routines_and_events_created_after_t_are_left_unnamed(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """A procedure, a function and an event created after T stay after the restore
    (exit 0), yet the plan's ``left_as_they_are`` named only tables: the on-call engineer
    was not told that the database holds objects of after T (an event that keeps writing
    into the restored tables once the scheduler runs). The base's routine and the
    window's (replaced, named) are not listed."""
    gtid, _ = scenario(
        window,
        [*BASE, "CREATE PROCEDURE base_p() SELECT 1"],
        [
            "INSERT INTO a VALUES (3, 'a3')",
            "CREATE FUNCTION win_f() RETURNS INT DETERMINISTIC RETURN 2",
        ],
        [
            "CREATE PROCEDURE later_p() DELETE FROM a",
            "CREATE FUNCTION later_f() RETURNS INT DETERMINISTIC RETURN 1",
            "CREATE EVENT later_ev ON SCHEDULE EVERY 1 MINUTE DISABLE DO DELETE FROM a",
        ],
    )
    code, report, err = restore(capsys, gtid)
    assert code == 0, err
    left = {(d["kind"], d["name"]) for d in report.get("left_as_they_are", [])}
    assert left == {("procedure", "later_p"), ("function", "later_f"), ("event", "later_ev")}


def test_6_the_window_drops_a_sequence_the_base_draws_from(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The base holds ``t`` whose column defaults to NEXTVAL(s) while ``s`` had been
    dropped; the window creates ``s`` again. The plan's check (tables drawing from
    sequences neither the restore nor the target has) is satisfied by the target's ``s``,
    which --force then drops as created in the window before the base loads: CREATE TABLE
    t fails, exit 1 with the window's objects dropped and the base half loaded."""
    gtid, expected = scenario(
        window,
        [
            *BASE,
            "CREATE SEQUENCE s",
            "CREATE TABLE t (id INT DEFAULT NEXTVAL(s), v INT)",
            "DROP SEQUENCE s",
        ],
        ["INSERT INTO a VALUES (3, 'a3')", "CREATE SEQUENCE s START WITH 100"],
        ["DELETE FROM a"],
    )
    before = state(window.sandbox, DB)
    code, _, err = restore(capsys, gtid)
    assert code == 2 and "draws its DEFAULT from sequence" in err, err
    _refused_or_as_at(window, code, err, before, expected)


def test_2_a_table_named_in_a_latin1_session(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The window creates table ``café`` from a latin1 client (the statement's bytes are
    latin1); at T it is empty, after T it gets a row. It should be dropped before loading
    and come back empty; the replay's CREATE TABLE IF NOT EXISTS met it instead."""
    gtid, expected = scenario(
        window,
        BASE,
        [
            "INSERT INTO a VALUES (3, 'a3')",
            "CREATE TABLE IF NOT EXISTS `café` (msg VARCHAR(40))",
        ],
        ["INSERT INTO `café` VALUES ('after T')", "DELETE FROM a"],
        charset="latin1",
    )
    assert expected["BASE TABLE café"][1] == []
    code, report, err = restore(capsys, gtid)
    assert code == 0, err
    assert state(window.sandbox, DB) == expected  # café holds 'after T' now
    assert {"kind": "table", "database": DB, "name": "café"} in report["window_replaced"]


@pytest.mark.parametrize(
    "statements",
    [
        ["SET SESSION binlog_format = 'STATEMENT'", f"INSERT INTO `{ODD_DB}`.a VALUES (3, 'a3')"],
        [f"CREATE TABLE `{ODD_DB}`.log (id INT)", f"INSERT INTO `{ODD_DB}`.log VALUES (5)"],
    ],
    ids=["statement-insert", "create-table"],
)
def test_10_a_latin1_client_naming_a_non_ascii_database(
    statements: list[str],
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Policy database ``t2_dé``; in the window a latin1 client (no default database)
    writes ``t2_dé``.a in statement format, or creates ``t2_dé``.log and inserts a row.
    The statement's latin1 bytes are scanned as UTF-8 with surrogates (``t2_d\\udce9``),
    a database the restore does not hold: the statement is skipped. The INSERT is lost
    (exit 0, the row of before T missing); for the CREATE TABLE, the row events of
    ``log`` then fail "Table 't2_dé.log' doesn't exist" (exit 1 after loading)."""
    text = f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{ODD_DB}"]\n'
    quoted = f"`{ODD_DB}`"
    with pitr_window(
        use_sandbox_config, POLICY, quoted, monkeypatch=monkeypatch, text=text
    ) as window:
        window.sql(
            f"CREATE TABLE {quoted}.a (id INT PRIMARY KEY, v VARCHAR(20))",
            f"INSERT INTO {quoted}.a VALUES (1, 'a1'), (2, 'a2')",
        )
        window.backup()
        with window.sandbox.connect(charset="latin1") as conn, conn.cursor() as cur:
            run(cur, statements)
        gtid = window.gtid()
        expected = state(window.sandbox, ODD_DB)
        window.sql(f"DELETE FROM {quoted}.a")
        window.archive()
        code, _, err = restore(capsys, gtid)
        assert code == 0, err
        assert state(window.sandbox, ODD_DB) == expected
