"""Tester 3's findings on forced restores into the source database (2026-12-03, after
c1d43a1/6aa34c6: kept tables holding a restored table's foreign-key name are refused up
front; the routines and events a restore does not define are listed in
``left_as_they_are``).

The on-call "put the database back": ``restore BACKUP_ID --force`` (the backup alone) and
``restore --policy P --until-gtid G --force`` (base backup + binlog replay, in place). Each
test asserts what SHOULD happen and failed when written (MariaDB 10.11 sandbox). Fixed
(their tests here): 1, 2 (the replaced table holding the other's key dropped before any
table is created), 3, 4, 6. Findings 5, 7 and 8 have their tests beside their fixes
(test_packages_restore.py, binlog/test_pitr_event_scheduler.py,
test_long_generated_keys.py; reproductions on branch tester3).

Findings:

1. A kept table's foreign key whose name InnoDB counts as the same as one the restore
   declares, while its bytes differ beyond ASCII letter case, is not refused. InnoDB
   compares key names (``db/name`` in SYS_FOREIGN) with latin1_swedish_ci over the UTF-8
   bytes, so the lead bytes C2/C3 (both weigh 'A'), CE/CF ('I'), EA/EB ('E')... are one:
   ``fk_가`` and ``fk_밀``, ``fk_φ`` and ``fk_Ά``, ``fk_é`` and ``fk_©`` clash (errno 121,
   checked on the server), ``fk_é`` and ``FK_É`` do not. foreign_key_names._fold compares
   bytes with ASCII lower-cased. The backup's ``child`` (key ``fk_밀``) was dropped after
   the backup, and a new ``later`` has key ``fk_가``: ``restore --force`` loads the bundle,
   ``DROP TABLE child`` ... ``CREATE TABLE child`` fails (errno 121): exit 1, "may be
   partly loaded" (test_1). The same in point-in-time restore: the window creates
   ``child`` with ``fk_밀``; after T it is dropped and ``later`` holds ``fk_가``: the base
   loads, then the replay fails: exit 1 (test_1b). Should: exit 2, nothing changed.
2. Two restored tables that swapped names after the backup (``RENAME TABLE orders TO tmp,
   orders_v2 TO orders, tmp TO orders_v2``, a blue/green swap) each carry the other's
   explicitly named foreign key. Neither is a kept table, so nothing is checked; the
   bundle's ``DROP TABLE orders; CREATE TABLE orders`` (key ``fk_orders``) fails on the
   target's ``orders_v2``, which still holds ``fk_orders``: exit 1 after loading began
   (``orders`` dropped with its rows). Should: exit 0 with both tables as at the backup
   (e.g. the replaced tables dropped before any is created), or at least exit 2 up front
   (test_2).
3. Routine names are compared unlike the server (window_objects._definition_key:
   NFD without combining marks, Python ``upper()``; the server: utf8mb3_general_ci,
   one weight per character). ``ß`` upper-cases to ``SS`` and ``ﬁ`` to ``FI``, but on the
   server ``straße`` = ``strase`` ≠ ``strasse``, and ``ﬁx`` ≠ ``fix``. So a procedure
   ``strasse`` (or ``fix``) created after a backup holding ``straße`` (``ﬁx``) stays
   (exit 0) but is missing from ``left_as_they_are``; and ``straße`` created after a
   backup holding ``strase`` (dropped first: one name to the server) is replaced by the
   backup's ``DROP PROCEDURE IF EXISTS `strase``` yet listed as left as it is (test_3).
   The same in point-in-time restore: the window creates ``straße``, ``strasse`` made after
   T is kept and not listed (test_3b).
4. Trigger names are per database too. A backup table ``t`` with trigger ``trg``, renamed
   ``t_old`` after the backup (its trigger goes with it) and made again: ``--force``
   lists ``t_old`` as left as it is, but the backup's triggers object runs ``DROP TRIGGER
   IF EXISTS trg`` and recreates it on ``t``: the kept ``t_old`` silently lost its
   trigger (exit 0, the report says it was left as it is). Should: refused up front like
   a foreign key name (exit 2, nothing changed), or at least said (test_4). The same
   for the base of a point-in-time restore (test_4b).
5. A backup holding an Oracle-mode package (``SET sql_mode = ORACLE; CREATE PACKAGE``)
   cannot be restored: the routines object's ``DROP PACKAGE IF EXISTS `pk``` runs before
   the creation session's sql_mode is set and is a syntax error outside ORACLE mode; the
   tables were already loaded: exit 1, "may be partly loaded". Should: exit 0, the
   packages as at the backup (test_5). Only then can the new listing of packages in
   ``left_as_they_are`` be checked (a package body created after the backup for a spec the
   backup holds: ``DROP PACKAGE`` drops it, so it must not be listed as left).
6. (Minor) ``restore --force --dry-run`` says nothing of the foreign-key refusal the real
   run then makes (exit 0, "would restore ..."), while it says it cannot tell the
   routines and events yet; the on-call engineer's rehearsal reads clean (test_6).
7. (Point-in-time, event scheduler on: MySQL's default, common in production; the
   sandbox runs with it off, the test turns it on.) The base's events are restored with
   their status (ENABLED) before the replay, and fire during it: ``ev`` (every second,
   ``INSERT INTO log``) takes the next AUTO_INCREMENT id, which a replayed row of the
   window then needs: "Duplicate entry '4' for key 'PRIMARY'", exit 1 after the base
   loaded and part of the window replayed (the row of T with id 4 replaced by one of
   the restore's own time). Without a key clash the event's rows would silently mix with
   those of T. Kept events (of after T, now listed in ``left_as_they_are``) fire during the
   replay just the same. Should: exit 0 with every row of T (events held disabled until
   the replay ends), or refused up front while the scheduler runs (test_7).
8. (Not only forced.) A table renamed to a long name (60 characters) keeps its key the
   server named, renamed ``<name>_ibfk_1`` (67 characters; information_schema shows it cut
   to 64): SHOW CREATE TABLE writes it whole, the backup takes it, and the restore's
   CREATE TABLE is refused "Identifier name ... is too long" after the bundle's DROP
   TABLE: exit 1, the table and its rows gone from the target. Should: exit 0 with the
   table as at the backup (the name rewritten or left to the server), or refused before
   anything changes (better: at backup time) (test_8).

Tried and behaved correctly (exit 2 with nothing changed, or exit 0 with the right state
and report):
plain --force: a kept table's key named with a backtick, dot and space (``fk.x y`z``,
kept as ``FK.X Y`Z``) in a --rename target, also with --tables DB.t --rename; a kept
``Child`` (case-sensitive server) holding ``Child_ibfk_1`` against the backup's
``child_ibfk_1`` (refused); a function created after the backup with the name of a
backup procedure (``x``, and ``q'"`é``: listed as function, the procedure replaced); a
procedure ``CAFE`` made after the backup's ``café`` was dropped (replaced, not listed); a
view made after the backup (listed as view); an event backed up from replica1
(SLAVESIDE_DISABLED there) restored ENABLED on the primary.
PITR in place: keys declared by the window in ``ALTER TABLE ... ADD CONSTRAINT `fk.x y`
FOREIGN KEY IF NOT EXISTS``, an inline self-referencing column ``REFERENCES tree (id)``
(generated ``tree_ibfk_1``) and ``/*!50000 CONSTRAINT `fk_ex` */ FOREIGN KEY``, all held
after T by a kept table under other letter case: refused (exit 2) naming all three; once
that table is gone, exit 0 and the state at T (the window's ``straße``, ``f`` and
``ev`` recreated; a later event ``év``, one name with ``ev`` to the server, dropped as
the window's and reported; a later procedure ``f`` beside the window's function ``f``
kept and listed); ``--tables DB.b`` while the window creates ``child`` with a named key
(``child`` left as it is, ``b`` as at T: the window's key names of tables not replayed do
not refuse).

Observations: the scanner reads every executable comment as code, also
``/*!110000 CONSTRAINT fk */`` which MariaDB 10.11 skips (the key is then ``t_ibfk_1``).
No harm in the window's scan: the server writes a comment it skipped to the binlog as
``/* 110000 ...`` (test 9). Inline
``REFERENCES`` does make a foreign key on MariaDB 10.11 (``ir_ibfk_1``), as created.py
assumes. ``CREATE TABLE`` itself refuses an unnamed key on a table of 58+ characters
(the generated name is too long), so only a rename makes finding 8's table. A trigger
the window creates, held by a table kept after T, is dropped and named in
``window_replaced``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from datatier.cli import main
from tests.integration.binlog_support import PitrWindow, pitr_window
from tests.integration.conftest import SandboxHandle, cli_json
from tests.integration.mysql.conftest import back_up

DB, POLICY = "t3_force", "t3-force"


def run(sandbox: SandboxHandle, *statements: str, sql_mode: str | None = None) -> None:
    """Each statement on the primary (in ``sql_mode``, if given)."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        if sql_mode is not None:
            cur.execute("SET SESSION sql_mode = %s", (sql_mode,))
        for sql in statements:
            cur.execute(sql)


def state(sandbox: SandboxHandle, database: str = DB) -> dict[str, Any]:
    """What ``database`` holds: every table and view with its kind and rows, routines,
    triggers, events and foreign keys."""

    def q(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args or None)
            return list(cur.fetchall())

    found: dict[str, Any] = {}
    for name, kind in q(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        database,
    ):
        quoted = "`{}`.`{}`".format(database.replace("`", "``"), str(name).replace("`", "``"))
        found[f"{kind} {name}"] = [] if kind == "VIEW" else sorted(q(f"SELECT * FROM {quoted}"))
    found["routines"] = sorted(
        q(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME, ROUTINE_DEFINITION FROM "
            "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
            database,
        )
    )
    found["triggers"] = sorted(
        q(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = %s",
            database,
        )
    )
    found["events"] = sorted(
        q("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", database)
    )
    found["foreign keys"] = sorted(
        q(
            "SELECT CONSTRAINT_NAME, TABLE_NAME FROM "
            "information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
            database,
        )
    )
    return found


@pytest.fixture
def clean(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    run(use_sandbox_config, f"DROP DATABASE IF EXISTS {DB}")
    yield use_sandbox_config
    run(use_sandbox_config, f"DROP DATABASE IF EXISTS {DB}")


def forced(capsys: pytest.CaptureFixture[str], backup_id: str, *extra: str) -> tuple[int, Any, str]:
    """``restore BACKUP_ID --force --json`` (and ``extra``)."""
    return cli_json(capsys, ["restore", backup_id, "--force", "--json", *extra])


# -- restore BACKUP_ID --force --------------------------------------------------------------


@pytest.mark.parametrize(("kept", "declared"), [("fk_가", "fk_밀"), ("fk_φ", "fk_Ά")])
def test_1_a_kept_key_innodb_counts_as_the_restored_ones_is_refused(
    kept: str, declared: str, clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 1: ``child`` (key ``declared``) dropped after the backup, ``later`` made
    with key ``kept`` (one name to InnoDB): refused up front, nothing changed. Was exit 1
    after the bundle began loading (errno 121)."""
    run(
        clean,
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.a (id INT PRIMARY KEY)",
        f"CREATE TABLE {DB}.child (aid INT, CONSTRAINT `{declared}` FOREIGN KEY (aid) "
        "REFERENCES a (id))",
        f"INSERT INTO {DB}.a VALUES (1), (2)",
        f"INSERT INTO {DB}.child VALUES (1)",
    )
    manifest = back_up(clean, POLICY, [DB])
    run(
        clean,
        f"DROP TABLE {DB}.child",
        f"CREATE TABLE {DB}.later (aid INT, CONSTRAINT `{kept}` FOREIGN KEY (aid) "
        "REFERENCES a (id))",
        f"INSERT INTO {DB}.later VALUES (2)",
    )
    before = state(clean)
    code, _, err = forced(capsys, manifest.backup_id)
    assert code == 2, err
    assert "foreign keys named like ones the restore creates" in err
    assert state(clean) == before


def test_2_restored_tables_that_swapped_names_after_the_backup(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 2: ``orders`` and ``orders_v2`` (each with its named key) swapped after the
    backup: the restore puts both back as at the backup (or refuses up front, nothing
    changed). Was exit 1 after loading began, ``orders`` dropped."""
    run(
        clean,
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.a (id INT PRIMARY KEY)",
        f"CREATE TABLE {DB}.orders (aid INT, CONSTRAINT fk_orders FOREIGN KEY (aid) "
        "REFERENCES a (id))",
        f"CREATE TABLE {DB}.orders_v2 (aid INT, note INT, CONSTRAINT fk_orders_v2 "
        "FOREIGN KEY (aid) REFERENCES a (id))",
        f"INSERT INTO {DB}.a VALUES (1), (2)",
        f"INSERT INTO {DB}.orders VALUES (1)",
        f"INSERT INTO {DB}.orders_v2 VALUES (2, 2)",
    )
    manifest = back_up(clean, POLICY, [DB])
    at_backup = state(clean)
    run(
        clean,
        f"RENAME TABLE {DB}.orders TO {DB}.tmp, {DB}.orders_v2 TO {DB}.orders, "
        f"{DB}.tmp TO {DB}.orders_v2",
    )
    before = state(clean)
    assert before != at_backup
    code, _, err = forced(capsys, manifest.backup_id)
    assert code == 0, err
    assert state(clean) == at_backup


@pytest.mark.parametrize(
    ("in_backup", "later", "left"),
    [("straße", "strasse", True), ("ﬁx", "fix", True), ("strase", "straße", False)],
)
def test_3_routine_names_are_compared_as_the_server_compares_them(
    in_backup: str,
    later: str,
    left: bool,
    clean: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Finding 3: a procedure ``later`` made after the backup, which holds ``in_backup``.
    Another name to the server (``left``): kept and listed; the same name: replaced by
    the backup's and not listed."""
    run(
        clean,
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)",
        f"CREATE PROCEDURE {DB}.`{in_backup}`() SELECT 'backup'",
    )
    manifest = back_up(clean, POLICY, [DB])
    if not left:  # one name to the server: the backup's goes first
        run(clean, f"DROP PROCEDURE {DB}.`{in_backup}`")
    run(clean, f"CREATE PROCEDURE {DB}.`{later}`() SELECT 'later'")
    code, report, err = forced(capsys, manifest.backup_id)
    assert code == 0, err
    routines = sorted(r[1] for r in state(clean)["routines"])
    listed = [d for d in report.get("left_as_they_are", []) if d["kind"] == "procedure"]
    if left:
        assert routines == sorted([in_backup, later])
        assert listed == [{"kind": "procedure", "database": DB, "name": later}]
    else:
        assert routines == [in_backup]
        assert listed == []


def test_4_a_kept_tables_trigger_named_like_a_restored_one(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 4: ``t`` (trigger ``trg``) renamed ``t_old`` after the backup and made
    again. ``t_old`` is left as it is, trigger included: refused up front (the trigger
    name is the database's), nothing changed. Was exit 0, ``t_old``'s trigger dropped
    while the report listed ``t_old`` as left as it is."""
    run(
        clean,
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, n INT DEFAULT 0)",
        f"CREATE TRIGGER {DB}.trg BEFORE INSERT ON {DB}.t FOR EACH ROW SET NEW.n = 1",
        f"INSERT INTO {DB}.t (id) VALUES (1)",
    )
    manifest = back_up(clean, POLICY, [DB])
    run(
        clean,
        f"RENAME TABLE {DB}.t TO {DB}.t_old",  # its trigger goes with it
        f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, n INT DEFAULT 0)",
    )
    before = state(clean)
    assert before["triggers"] == [("trg", "t_old")]
    code, _, err = forced(capsys, manifest.backup_id)
    assert code == 2, err
    assert state(clean) == before


def test_6_a_dry_run_tells_of_the_foreign_key_check(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 6: the dry run of a forced restore the real run refuses for a kept key's
    name says so, or that it cannot tell before reading the backup (as it says of
    routines). Was exit 0 and not a word of foreign keys."""
    run(
        clean,
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.a (id INT PRIMARY KEY)",
        f"CREATE TABLE {DB}.child (aid INT, CONSTRAINT fk_child FOREIGN KEY (aid) "
        "REFERENCES a (id))",
    )
    manifest = back_up(clean, POLICY, [DB])
    run(
        clean,
        f"RENAME TABLE {DB}.child TO {DB}.later_child",
        f"CREATE TABLE {DB}.child (aid INT)",
    )
    code, _, err = forced(capsys, manifest.backup_id)
    assert code == 2, err  # the real run refuses
    capsys.readouterr()
    code = main(["restore", manifest.backup_id, "--force", "--dry-run"])
    out = capsys.readouterr()
    assert code == 2 or "foreign key" in out.out, out.out


# -- restore --policy P --until-gtid G --force (in place) -----------------------------------

PDB, PPOLICY = "t3_inplace", "t3_inplace"


@pytest.fixture
def window(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PitrWindow]:
    with pitr_window(use_sandbox_config, PPOLICY, PDB, monkeypatch=monkeypatch) as made:
        yield made


def scenario(
    window: PitrWindow, base: list[str], replayed: list[str], after: list[str]
) -> tuple[str, dict[str, Any]]:
    """``base`` then a backup; ``replayed`` (the window); the target moment; then
    ``after``; the archive caught up: (the target GTID, the database's state at it)."""
    with window.session() as cur:
        for sql in base:
            cur.execute(sql)
    window.backup()
    with window.session() as cur:
        for sql in replayed:
            cur.execute(sql)
    gtid = window.gtid()
    at_t = state(window.sandbox, PDB)
    with window.session() as cur:
        for sql in after:
            cur.execute(sql)
    window.archive()
    return gtid, at_t


def pitr(capsys: pytest.CaptureFixture[str], gtid: str) -> tuple[int, Any, str]:
    """``restore --policy PPOLICY --until-gtid gtid --force --json``."""
    argv = ["restore", "--policy", PPOLICY, "--until-gtid", gtid, "--force", "--json"]
    return cli_json(capsys, argv)


PBASE = ["CREATE TABLE a (id INT PRIMARY KEY)", "INSERT INTO a VALUES (1), (2)"]


def test_1b_a_kept_key_innodb_counts_as_the_windows_is_refused(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 1, the window's key: ``child`` (key ``fk_밀``) created in the window,
    dropped after T; ``later`` holds ``fk_가`` (one name to InnoDB): refused up front,
    nothing changed. Was exit 1 after the base loaded (the replay's CREATE TABLE child,
    errno 121)."""
    gtid, _ = scenario(
        window,
        PBASE,
        [
            "CREATE TABLE child (aid INT, CONSTRAINT `fk_밀` FOREIGN KEY (aid) REFERENCES a (id))",
            "INSERT INTO child VALUES (1)",
        ],
        [
            "DROP TABLE child",
            "CREATE TABLE later (aid INT, CONSTRAINT `fk_가` FOREIGN KEY (aid) REFERENCES a (id))",
            "INSERT INTO later VALUES (2)",
        ],
    )
    before = state(window.sandbox, PDB)
    code, _, err = pitr(capsys, gtid)
    assert code == 2, err
    assert "foreign keys named like ones the restore creates" in err
    assert state(window.sandbox, PDB) == before


def test_3b_a_later_routine_the_server_tells_apart_from_the_windows_is_listed(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 3, in place: the window creates procedure ``straße``; ``strasse`` (another
    procedure to the server) made after T stays and is listed as left as it is. Was
    kept (exit 0) and not listed."""
    gtid, at_t = scenario(
        window,
        PBASE,
        ["CREATE PROCEDURE `straße`() SELECT 1"],
        ["CREATE PROCEDURE strasse() SELECT 2"],
    )
    code, report, err = pitr(capsys, gtid)
    assert code == 0, err
    got = state(window.sandbox, PDB)
    assert ("PROCEDURE", "strasse", "SELECT 2") in got["routines"]
    assert {**got, "routines": [r for r in got["routines"] if r[1] != "strasse"]} == at_t
    assert report.get("left_as_they_are") == [
        {"kind": "procedure", "database": PDB, "name": "strasse"}
    ]


def test_4b_a_kept_tables_trigger_named_like_one_of_the_base(
    window: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 4, in place: the base's ``t`` (trigger ``trg``) renamed ``t_old`` after T
    and made again: ``t_old`` is kept with its trigger (refused up front, nothing
    changed). Was exit 0, ``trg`` moved from the kept ``t_old`` to the restored ``t``."""
    gtid, _ = scenario(
        window,
        [
            *PBASE,
            "CREATE TABLE t (id INT PRIMARY KEY, n INT DEFAULT 0)",
            "CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.n = 1",
        ],
        ["INSERT INTO t (id) VALUES (1)"],
        ["RENAME TABLE t TO t_old", "CREATE TABLE t (id INT PRIMARY KEY, n INT DEFAULT 0)"],
    )
    before = state(window.sandbox, PDB)
    assert before["triggers"] == [("trg", "t_old")]
    code, _, err = pitr(capsys, gtid)
    assert code == 2, err
    assert state(window.sandbox, PDB) == before


@pytest.mark.parametrize(
    ("kept_key", "refused"),
    [("fk_skip", False), ("child_ibfk_1", True)],
)
def test_9_a_key_name_in_a_versioned_comment_the_server_skipped(
    window: PitrWindow, capsys: pytest.CaptureFixture[str], kept_key: str, refused: bool
) -> None:
    """Tester3's observation: ``/*!110000 CONSTRAINT fk_skip */ FOREIGN KEY`` is skipped
    by MariaDB 10.11, whose key is then ``child_ibfk_1``. The server writes the statement
    to the binlog as ``/* 110000 ...`` (a plain comment), so the window's scan reads it as
    the server ran it: a kept ``fk_skip`` does not refuse (exit 0, ``child`` and its key as
    at T), a kept explicit ``child_ibfk_1`` does (exit 2, nothing changed)."""
    gtid, at_t = scenario(
        window,
        PBASE,
        [
            "CREATE TABLE child (aid INT, /*!110000 CONSTRAINT fk_skip */ "
            "FOREIGN KEY (aid) REFERENCES a (id))",
            "INSERT INTO child VALUES (1)",
        ],
        [
            "DROP TABLE child",
            f"CREATE TABLE later (aid INT, CONSTRAINT `{kept_key}` "
            "FOREIGN KEY (aid) REFERENCES a (id))",
            "INSERT INTO later VALUES (2)",
        ],
    )
    assert ("child_ibfk_1", "child") in at_t["foreign keys"], at_t
    before = state(window.sandbox, PDB)
    code, _, err = pitr(capsys, gtid)
    if refused:
        assert code == 2, err
        assert "foreign keys named like ones the restore creates" in err
        assert state(window.sandbox, PDB) == before
        return
    assert code == 0, err
    got = state(window.sandbox, PDB)
    assert got.pop("BASE TABLE later") == [(2,)]
    got["foreign keys"] = [k for k in got["foreign keys"] if k[1] != "later"]
    assert got == at_t
