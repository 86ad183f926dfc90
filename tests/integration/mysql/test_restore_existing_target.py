"""A restore into a database that already exists on the target, on the sandbox's servers.

* A database holding no tables but a routine (or an event) is not empty: without
  ``--force`` the restore is refused (exit 2) and the live routine is kept. It counted as
  empty, and the backup's ``DROP PROCEDURE IF EXISTS``/``CREATE PROCEDURE`` replaced the
  live procedure (exit 0, no ``--force``).
* A database that exists and is empty (allowed without ``--force``) takes the backup's
  default character set and collation: it kept its own (latin1), so the restored
  procedure's ``VARCHAR`` parameters became latin1 and ``CALL p('日本')`` failed on the
  copy (exit 0, no word). The plan (``--dry-run``) says so: the ``ALTER DATABASE`` is a
  change to a live database, binlogged unless ``--no-binlog``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.cli import main
from tests.integration.binlog_support import query
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.conftest import back_up

DB, POLICY = "ret_existing", "ret-existing"


@pytest.fixture
def clean(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    config = use_sandbox_config.config
    query(config, "primary", f"DROP DATABASE IF EXISTS {DB}")
    yield use_sandbox_config
    query(config, "primary", f"DROP DATABASE IF EXISTS {DB}")


def run(sandbox: SandboxHandle, *statements: str) -> None:
    for sql in statements:
        query(sandbox.config, "primary", sql)


@pytest.mark.parametrize(
    "live",
    [
        "CREATE PROCEDURE {db}.p() SELECT 'live'",
        "CREATE EVENT {db}.e ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01' DISABLE DO SELECT 1",
    ],
    ids=["routine", "event"],
)
def test_a_database_holding_only_a_routine_or_event_is_not_empty(
    live: str, clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """The backup holds table t and procedure p; the target's database holds only ``live``:
    without ``--force`` the restore is refused (exit 2, "not empty") and changes nothing."""
    run(
        clean,
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)",
        f"CREATE PROCEDURE {DB}.p() SELECT 'from the backup'",
    )
    manifest = back_up(clean, POLICY, [DB])
    run(clean, f"DROP DATABASE {DB}", f"CREATE DATABASE {DB}", live.format(db=DB))

    def state() -> tuple[Any, ...]:
        config = clean.config
        routines = query(
            config, "primary",
            "SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s", (DB,),
        )  # fmt: skip
        events = query(
            config, "primary",
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (DB,),
        )  # fmt: skip
        return routines, events, query(config, "primary", f"SHOW TABLES FROM {DB}")

    before = state()
    capsys.readouterr()
    code = main(["restore", manifest.backup_id])
    err = capsys.readouterr().err
    assert (code, state()) == (2, before), err
    assert "not empty" in err and "--force" in err


def test_an_existing_empty_database_takes_the_backups_character_set(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    def charsets() -> tuple[Any, ...]:
        db = query(
            clean.config, "primary",
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (DB,),
        )  # fmt: skip
        params = query(
            clean.config, "primary",
            "SELECT CHARACTER_SET_NAME FROM information_schema.PARAMETERS "
            "WHERE SPECIFIC_SCHEMA = %s AND SPECIFIC_NAME = 'p'", (DB,),
        )  # fmt: skip
        return db[0], params[0][0]

    run(
        clean,
        f"CREATE DATABASE {DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v VARCHAR(20))",
        f"CREATE PROCEDURE {DB}.p(IN x VARCHAR(20)) INSERT INTO {DB}.t VALUES (1, x)",
    )
    source = charsets()
    assert source == (("utf8mb4", "utf8mb4_unicode_ci"), "utf8mb4")
    manifest = back_up(clean, POLICY, [DB])
    run(clean, f"DROP DATABASE {DB}", f"CREATE DATABASE {DB} CHARACTER SET latin1")  # empty
    capsys.readouterr()
    assert main(["restore", manifest.backup_id, "--dry-run"]) == 0
    told = capsys.readouterr().out
    assert "`ret_existing` latin1/latin1_swedish_ci -> utf8mb4/utf8mb4_unicode_ci" in told
    schema = "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE "
    assert query(clean.config, "primary", f"{schema} SCHEMA_NAME = '{DB}'") == [("latin1",)]
    assert main(["restore", manifest.backup_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    told_json = {"database": DB, "now": "latin1/latin1_swedish_ci",
                 "restored": "utf8mb4/utf8mb4_unicode_ci"}  # fmt: skip
    assert report["database_defaults"] == [told_json]
    assert charsets() == source
    run(clean, f"CALL {DB}.p('日本')")
    assert query(clean.config, "primary", f"SELECT v FROM {DB}.t") == [("日本",)]


def test_a_look_alike_databases_routine_does_not_make_the_target_busy(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """`RET_EXISTING` (another database on this case-sensitive server) holds a procedure:
    the empty `ret_existing` is not busy. Checked on MariaDB 10.11: a one-value
    ``ROUTINE_SCHEMA IN (...)`` is exact, unlike a many-valued one (see lettercase)."""
    upper = DB.upper()
    run(clean, f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
    manifest = back_up(clean, POLICY, [DB])
    run(clean, f"DROP DATABASE {DB}", f"CREATE DATABASE {DB}", f"CREATE DATABASE {upper}")
    try:
        run(clean, f"CREATE PROCEDURE {upper}.p() SELECT 1")
        capsys.readouterr()
        code = main(["restore", manifest.backup_id])
        assert code == 0, capsys.readouterr().err
        assert query(clean.config, "primary", f"SHOW TABLES FROM {DB}") == [("t",)]
    finally:
        run(clean, f"DROP DATABASE IF EXISTS {upper}")


def test_a_forced_restore_names_the_tables_it_leaves_as_they_are(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--force`` into the source database: a table created after the backup is neither
    replaced nor dropped (only what the backup holds is), and the plan says so, the dry
    run too, so an operator restoring in place knows it remains."""
    run(clean, f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
    run(clean, f"INSERT INTO {DB}.t VALUES (1)")
    manifest = back_up(clean, POLICY, [DB])
    run(clean, f"INSERT INTO {DB}.t VALUES (2)", f"CREATE TABLE {DB}.later (id INT)")
    run(clean, f"INSERT INTO {DB}.later VALUES (7)")
    capsys.readouterr()
    assert main(["restore", manifest.backup_id, "--force", "--dry-run"]) == 0
    assert "--force leaves as they are (the backup does not hold them): table" in (
        capsys.readouterr().out
    )
    assert main(["restore", manifest.backup_id, "--force", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["left_as_they_are"] == [{"kind": "table", "database": DB, "name": "later"}]
    assert query(clean.config, "primary", f"SELECT id FROM {DB}.t") == [(1,)]
    assert query(clean.config, "primary", f"SELECT id FROM {DB}.later") == [(7,)]


def table_rows(sandbox: SandboxHandle) -> dict[str, list[tuple[Any, ...]]]:
    """Each table of DB with its rows, and its foreign keys' names."""
    tables = [t for (t,) in query(sandbox.config, "primary", f"SHOW TABLES FROM {DB}")]
    found: dict[str, list[tuple[Any, ...]]] = {
        t: sorted(query(sandbox.config, "primary", f"SELECT * FROM {DB}.`{t}`")) for t in tables
    }
    found["keys"] = sorted(
        query(
            sandbox.config,
            "primary",
            "SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s",
            (DB,),
        )
    )
    return found


@pytest.mark.parametrize(
    ("declared", "renamed_key", "refused"),
    [
        ("CONSTRAINT fk_child FOREIGN KEY (aid)", None, True),
        ("FOREIGN KEY fk_child (aid)", None, True),  # the index name names the key
        ("CONSTRAINT fk_child FOREIGN KEY (aid)", "FK_CHILD", True),  # ASCII case-blind
        ("FOREIGN KEY (aid)", None, False),  # child_ibfk_1 follows the rename
        ("CONSTRAINT fk_child FOREIGN KEY (aid)", "fk_other", False),
    ],
)
def test_a_kept_table_holding_a_restored_tables_foreign_key_name_is_refused_up_front(
    clean: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    declared: str,
    renamed_key: str | None,
    refused: bool,
) -> None:
    """After the backup, ``child`` was renamed ``later_child`` (its foreign keys go with it:
    InnoDB names them once per database) and made again. ``--force`` into the source
    database keeps ``later_child``, and the backup's CREATE TABLE child failed on the
    duplicate key name (errno 121) after the bundle began loading (exit 1): now refused
    before anything changes (exit 2). A key the server named (``child_ibfk_1``, renamed
    ``later_child_ibfk_1`` with its table) or another name clashes with nothing."""
    run(
        clean,
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.a (id INT PRIMARY KEY)",
        f"CREATE TABLE {DB}.child (aid INT, {declared} REFERENCES a (id))",
        f"INSERT INTO {DB}.a VALUES (1), (2)",
        f"INSERT INTO {DB}.child VALUES (1)",
    )
    manifest = back_up(clean, POLICY, [DB])
    at_backup = table_rows(clean)
    run(clean, f"RENAME TABLE {DB}.child TO {DB}.later_child")
    if renamed_key:  # fk_child given another name on the kept table
        run(
            clean,
            f"ALTER TABLE {DB}.later_child DROP FOREIGN KEY fk_child",
            f"ALTER TABLE {DB}.later_child "
            f"ADD CONSTRAINT {renamed_key} FOREIGN KEY (aid) REFERENCES {DB}.a (id)",
        )
    run(clean, f"CREATE TABLE {DB}.child (aid INT)", f"INSERT INTO {DB}.a VALUES (3)")
    before = table_rows(clean)
    capsys.readouterr()
    code = main(["restore", manifest.backup_id, "--force", "--json"])
    err = capsys.readouterr().err
    after = table_rows(clean)
    if refused:
        assert code == 2, err
        assert "foreign keys named like ones the restore creates" in err
        assert "later_child" in err and "nothing was changed" in err
        assert after == before
    else:
        assert code == 0, err
        assert {k: v for k, v in after.items() if k not in ("later_child", "keys")} == {
            k: v for k, v in at_backup.items() if k != "keys"
        }
        assert after["later_child"] == [(1,)]


def test_a_forced_restore_names_the_routines_and_events_it_leaves_as_they_are(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """A procedure and an event created after the backup stay after ``--force`` (the
    event may go on writing into the restored tables): the report names them, not the
    backup's own routine (replaced); the dry run says it cannot tell yet."""
    run(clean, f"CREATE DATABASE {DB}", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
    run(clean, f"CREATE PROCEDURE {DB}.`p ``é`() SELECT 1")
    manifest = back_up(clean, POLICY, [DB])
    run(
        clean,
        f"CREATE PROCEDURE {DB}.later_p() DELETE FROM {DB}.t",
        f"CREATE EVENT {DB}.later_ev ON SCHEDULE EVERY 1 HOUR DISABLE DO DELETE FROM {DB}.t",
    )
    capsys.readouterr()
    assert main(["restore", manifest.backup_id, "--force", "--dry-run"]) == 0
    assert "routines and events the restore does not define" in capsys.readouterr().out
    assert main(["restore", manifest.backup_id, "--force", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["left_as_they_are"] == [
        {"kind": "event", "database": DB, "name": "later_ev"},
        {"kind": "procedure", "database": DB, "name": "later_p"},
    ]
    assert main(["restore", manifest.backup_id, "--force"]) == 0
    assert "routines and events as they are" in capsys.readouterr().out
