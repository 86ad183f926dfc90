"""Point-in-time restores whose window holds statements the binlog scanner
(:mod:`datatier.mysql.binlog.sqlrefs`) once misread, on the sandbox's real MariaDB and S3
server (tester's findings of 2026-12-03; each test failed before its fix):

- ``CREATE OR REPLACE DATABASE`` (or ``SCHEMA``) was not seen as naming a database: under
  ``--rename`` it was replayed unrenamed and dropped and recreated the LIVE database.
- A no-break space (U+00A0) was whitespace to the scanner, an identifier character to
  MariaDB: ``TRUNCATE TABLE <U+00A0>db.t`` was read as acting on ``db.t``.
- ``/*M...*/`` without ``!`` (a plain comment) was read as code.
- Under ``NO_BACKSLASH_ESCAPES`` a backslash in a string was read as an escape.
- The decimal literal ``1.50`` was read as the qualified name `1`.`50`.
- ``ALTER DATABASE CHARACTER SET latin1`` (the default database) was refused as acting on
  a database called CHARACTER.
- A derived table's alias without AS named like the renamed database (``FROM (SELECT ...)
  db``) was not seen as shadowing it: ``db.id`` was renamed and the replay failed after
  the base loaded.
"""

from __future__ import annotations

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

# -- CREATE OR REPLACE DATABASE under --rename -------------------------------------------

COR_DB, COR_TARGET, COR_POLICY = "tf_orreplace", "tf_orreplace_r", "tf_orreplace"


@pytest.mark.parametrize("word", ["DATABASE", "SCHEMA"])
def test_a_renamed_restore_never_replaces_the_live_database(
    word: str, use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window recreates the database (``CREATE OR REPLACE DATABASE``) and fills it;
    after the target moment the live database gets another row. ``--rename`` leaves the
    live database as it is and restores the recreated one."""
    with pitr_window(
        use_sandbox_config, COR_POLICY, COR_DB, COR_TARGET, monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE TABLE {COR_DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {COR_DB}.t VALUES (1)"
        )
        window.backup()
        with window.session() as cur:
            cur.execute("INSERT INTO t VALUES (2)")
            cur.execute(f"CREATE OR REPLACE {word} {COR_DB}")
            cur.execute(f"CREATE TABLE {COR_DB}.t (id INT PRIMARY KEY)")
            cur.execute(f"INSERT INTO {COR_DB}.t VALUES (10)")
        gtid = window.gtid()
        window.sql(f"INSERT INTO {COR_DB}.t VALUES (11)")  # live, after the target
        window.archive()
        argv = ["restore", "--policy", COR_POLICY, "--until-gtid", gtid]
        code = main([*argv, "--rename", f"{COR_DB}={COR_TARGET}"])
        config = window.config
        live = query(config, "primary", f"SHOW TABLES FROM {COR_DB}")
        assert live == [("t",)], f"exit {code}: the live database now holds {live}"
        assert query(config, "primary", f"SELECT id FROM {COR_DB}.t ORDER BY id") == [(10,), (11,)]
        assert code == 0
        assert query(config, "primary", f"SELECT id FROM {COR_TARGET}.t") == [(10,)]


# -- a no-break space is part of an identifier ---------------------------------------------

NBSP_DB, NBSP_POLICY = "tf_nbsp", "tf_nbsp"
NBSP_OTHER = f"\u00a0{NBSP_DB}"  # another database: a no-break space, then tf_nbsp


def test_an_in_place_pitr_leaves_a_database_named_with_a_leading_no_break_space_alone(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``TRUNCATE TABLE <U+00A0>tf_nbsp.t`` (unquoted) in the window of an in-place restore
    of ``tf_nbsp`` acts on the other database: left out, its rows kept."""
    config = use_sandbox_config.config
    other = f"`{NBSP_OTHER}`"
    query(config, "primary", f"DROP DATABASE IF EXISTS {other}")
    try:
        with pitr_window(
            use_sandbox_config, NBSP_POLICY, NBSP_DB, monkeypatch=monkeypatch
        ) as window:
            window.sql(
                f"CREATE DATABASE {other}",
                f"CREATE TABLE {other}.t (id INT PRIMARY KEY)",
                f"INSERT INTO {other}.t VALUES (100)",
                f"CREATE TABLE {NBSP_DB}.t (id INT PRIMARY KEY)",
                f"INSERT INTO {NBSP_DB}.t VALUES (1)",
            )
            window.backup()
            with window.session() as cur:
                cur.execute("INSERT INTO t VALUES (2)")
                cur.execute(f"TRUNCATE TABLE {NBSP_OTHER}.t")  # unquoted, as MariaDB allows
                cur.execute("INSERT INTO t VALUES (3)")
            gtid = window.gtid()
            window.sql(f"INSERT INTO {other}.t VALUES (200)")  # after the target moment
            window.archive()
            code = main(["restore", "--policy", NBSP_POLICY, "--until-gtid", gtid, "--force"])
            left = query(config, "primary", f"SELECT id FROM {other}.t")
            restored = query(config, "primary", f"SELECT id FROM {NBSP_DB}.t ORDER BY id")
            assert left == [(200,)], f"exit {code}: the other database's table now holds {left}"
            assert (code, restored) == (0, [(1,), (2,), (3,)])
    finally:
        query(config, "primary", f"DROP DATABASE IF EXISTS {other}")


# -- NO_BACKSLASH_ESCAPES -------------------------------------------------------------------

BS_DB, BS_TARGET, BS_POLICY = "tf_bslash", "tf_bslash_r", "tf_bslash"


def test_a_renamed_replay_renames_names_after_a_backslash_string_under_no_backslash_escapes(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``'C:\\'`` is a whole string under ``NO_BACKSLASH_ESCAPES``: the ``tf_bslash.t``
    after it is renamed, the restored view reads the restored table."""
    with pitr_window(
        use_sandbox_config, BS_POLICY, BS_DB, BS_TARGET, monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE TABLE {BS_DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {BS_DB}.t VALUES (1)"
        )
        window.backup()
        with window.session() as cur:
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
            cur.execute(f"CREATE VIEW v AS SELECT 'C:\\' AS p, id FROM {BS_DB}.t WHERE 'a' = 'a'")
            cur.execute("INSERT INTO t VALUES (2)")
        gtid = window.gtid()
        window.sql(f"INSERT INTO {BS_DB}.t VALUES (3)")  # after the target: live only
        window.archive()
        argv = ["restore", "--policy", BS_POLICY, "--until-gtid", gtid]
        assert main([*argv, "--rename", f"{BS_DB}={BS_TARGET}"]) == 0
        got = query(window.config, "primary", f"SELECT p, id FROM {BS_TARGET}.v ORDER BY id")
        assert got == [("C:\\", 1), ("C:\\", 2)], "the restored view reads the restored table"


# -- a decimal literal is a number ------------------------------------------------------------

NUM_DB, NUM_POLICY = "1", "tf_number"


@pytest.mark.parametrize("restored", [NUM_DB, NUM_POLICY])
def test_a_decimal_literal_is_not_a_database_reference(
    restored: str, use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Database `1` exists; the window adds a column with ``DEFAULT 1.50`` to a table of
    the restored database (`1` itself, or another). ``--rename`` restores it: exit 0 and
    the column's default 1.50."""
    config = use_sandbox_config.config
    copy = f"{NUM_POLICY}_r"
    query(config, "primary", f"DROP DATABASE IF EXISTS `{NUM_DB}`")
    try:
        with pitr_window(
            use_sandbox_config, NUM_POLICY, f"`{restored}`", copy, monkeypatch=monkeypatch,
            text=f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{restored}"]\n',
        ) as window:  # fmt: skip
            if restored != NUM_DB:
                window.sql(f"CREATE DATABASE `{NUM_DB}`")
            window.sql(
                f"CREATE TABLE `{restored}`.t (id INT PRIMARY KEY)",
                f"INSERT INTO `{restored}`.t VALUES (1)",
            )
            window.backup()
            with window.session() as cur:
                cur.execute("ALTER TABLE t ADD COLUMN price DECIMAL(5,2) DEFAULT 1.50")
                cur.execute("INSERT INTO t (id) VALUES (2)")
            gtid = window.gtid()
            window.archive()
            argv = ["restore", "--policy", NUM_POLICY, "--until-gtid", gtid]
            assert main([*argv, "--rename", f"`{restored}`={copy}"]) == 0
            got = query(config, "primary", f"SELECT id, price FROM {copy}.t ORDER BY id")
            assert [(i, str(p)) for i, p in got] == [(1, "1.50"), (2, "1.50")]
    finally:
        query(config, "primary", f"DROP DATABASE IF EXISTS `{NUM_DB}`")


# -- /*M without ! is a comment ----------------------------------------------------------------

CM_DB, CM_TARGET, CM_POLICY = "tf_mcomment", "tf_mcomment_r", "tf_mcomment"


def test_a_comment_starting_with_capital_m_is_a_comment_to_the_renamed_replay(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apostrophe in ``/*Mike's change*/`` is comment text: ``tf_mcomment.t`` after it
    is renamed, the restored table gets the column and the window's values in it."""
    with pitr_window(
        use_sandbox_config, CM_POLICY, CM_DB, CM_TARGET, monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE TABLE {CM_DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {CM_DB}.t VALUES (1)"
        )
        window.backup()
        with window.session() as cur:
            cur.execute(
                f"/*Mike's change*/ ALTER TABLE {CM_DB}.t "
                "ADD COLUMN IF NOT EXISTS c VARCHAR(5) DEFAULT 'x'"
            )
            cur.execute("INSERT INTO t (id, c) VALUES (2, 'y')")
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", CM_POLICY, "--until-gtid", gtid]
        assert main([*argv, "--rename", f"{CM_DB}={CM_TARGET}"]) == 0
        got = query(window.config, "primary", f"SELECT * FROM {CM_TARGET}.t ORDER BY id")
        assert got == [(1, "x"), (2, "y")]


# -- ALTER DATABASE without a name ---------------------------------------------------------------

AD_DB, AD_TARGET, AD_POLICY = "tf_alterdb", "tf_alterdb_r", "tf_alterdb"


def test_alter_database_without_a_name_is_replayed_on_the_restored_database(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ALTER DATABASE CHARACTER SET latin1`` acts on the default database: replayed on
    the renamed copy, the live database keeps its character set."""
    with pitr_window(
        use_sandbox_config, AD_POLICY, AD_DB, AD_TARGET, monkeypatch=monkeypatch
    ) as window:
        window.sql(f"CREATE TABLE {AD_DB}.t (id INT PRIMARY KEY)")
        window.backup()
        with window.session() as cur:
            cur.execute("ALTER DATABASE CHARACTER SET latin1")
            cur.execute("INSERT INTO t VALUES (1)")
        gtid = window.gtid()
        query(window.config, "primary", f"ALTER DATABASE {AD_DB} CHARACTER SET utf8mb4")
        window.archive()
        argv = ["restore", "--policy", AD_POLICY, "--until-gtid", gtid]
        assert main([*argv, "--rename", f"{AD_DB}={AD_TARGET}"]) == 0
        got = query(
            window.config, "primary",
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
            f"WHERE SCHEMA_NAME IN ('{AD_DB}', '{AD_TARGET}') ORDER BY 1",
        )  # fmt: skip
        assert got == [(AD_DB, "utf8mb4"), (AD_TARGET, "latin1")]
        assert query(window.config, "primary", f"SELECT id FROM {AD_TARGET}.t") == [(1,)]


# -- a single-byte character set's no-break space is a space -----------------------------------

L1_DB, L1_TARGET, L1_POLICY = "tf_latin1", "tf_latin1_r", "tf_latin1"


def test_a_latin1_no_break_space_separates_words_for_the_renamed_replay(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent in latin1, byte 0xA0 is a space to MariaDB: ``TRUNCATE TABLE<0xA0>tf_latin1.t``
    empties ``tf_latin1.t``, which ``--rename`` points at the copy; the live table keeps
    its rows."""
    with pitr_window(
        use_sandbox_config, L1_POLICY, L1_DB, L1_TARGET, monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE TABLE {L1_DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {L1_DB}.t VALUES (1)"
        )
        window.backup()
        with window.session() as cur:
            cur.execute("SET NAMES latin1")
            cur.execute("INSERT INTO t VALUES (2)")
            cur.execute(b"TRUNCATE TABLE\xa0" + L1_DB.encode() + b".t")
            cur.execute("INSERT INTO t VALUES (3)")
        gtid = window.gtid()
        window.sql(f"INSERT INTO {L1_DB}.t VALUES (4)")  # live, after the target
        window.archive()
        argv = ["restore", "--policy", L1_POLICY, "--until-gtid", gtid]
        code = main([*argv, "--rename", f"{L1_DB}={L1_TARGET}"])
        config = window.config
        live = query(config, "primary", f"SELECT id FROM {L1_DB}.t ORDER BY id")
        assert live == [(3,), (4,)], f"exit {code}: the live table now holds {live}"
        assert code == 0
        assert query(config, "primary", f"SELECT id FROM {L1_TARGET}.t") == [(3,)]


# -- an alias without AS named like the renamed database ---------------------------------

DV_DB, DV_TARGET, DV_POLICY = "tf_dvalias", "tf_dvalias_r", "tf_dvalias"


@pytest.mark.parametrize(
    "source", [f"(SELECT id FROM p) {DV_DB}", f"(SELECT id FROM p) `{DV_DB}`", f"p {DV_DB}"]
)
def test_an_alias_without_as_named_like_the_renamed_database_is_refused_up_front(
    source: str,
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``CREATE VIEW v AS SELECT db.id FROM (SELECT id FROM p) db`` in database ``db``:
    ``db.id`` is the derived table's column. The alias without AS after the parenthesis was
    not seen as one, ``db.`` was renamed, the scan said exit 0 and the restore failed after
    the base loaded ("Unknown column", exit 1). Refused up front like ``AS db``."""
    with pitr_window(
        use_sandbox_config, DV_POLICY, DV_DB, DV_TARGET, monkeypatch=monkeypatch
    ) as window:
        window.sql(
            f"CREATE TABLE {DV_DB}.p (id INT PRIMARY KEY)", f"INSERT INTO {DV_DB}.p VALUES (1)"
        )
        window.backup()
        with window.session() as cur:
            cur.execute(f"CREATE VIEW v AS SELECT {DV_DB}.id FROM {source}")
            cur.execute("INSERT INTO p VALUES (2)")
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", DV_POLICY, "--until-gtid", gtid]
        argv += ["--rename", f"{DV_DB}={DV_TARGET}"]
        capsys.readouterr()

        scanned = main([*argv, "--dry-run", "--scan"])
        code = main(argv)

        err = capsys.readouterr().err
        assert (scanned, code) == (2, 2), err
        assert f"names {DV_DB} both as a table" in err
        assert query(window.config, "primary", f"SHOW DATABASES LIKE '{DV_TARGET}'") == []
