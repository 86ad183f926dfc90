"""Table DDL in the window of a point-in-time restore limited to some tables (``--tables``
or a policy's ``exclude_tables``; the tester's findings 1, 2, 4 and 5, 2026-12-03).

``ALTER TABLE ... RENAME TO``:
``RENAME TABLE t TO t2`` was refused there (it acts on a restored and another table), but
the ALTER form was read as acting on ``t`` alone: under ``--tables db.t`` it was replayed
and the rows written to ``t2`` afterwards dropped as not restored (exit 0, the copy's
``t2`` without them); a table a policy's ``exclude_tables`` leaves out, renamed to a kept
name, failed the replay after the base was loaded (exit 1). Both are now refused before
anything changes (exit 2), the dry run's scan too.

Triggers: ``CREATE TRIGGER ... ON t`` acts on ``t`` (replayed when ``t`` is restored, left
out when not: on a left-out table it failed the replay after the base loaded); ``DROP
TRIGGER`` names no table, so under ``--tables`` it is refused (it was left out without a
word: the restored table kept a trigger dropped before the target). ``CREATE OR REPLACE
UNIQUE INDEX`` was not seen as index DDL (OR REPLACE pushed INDEX out of the words looked
at) and left out: the restored table lacked the unique key.

Views: the DDL of a view ``--tables`` names (``CREATE OR REPLACE VIEW``, ``DROP VIEW``) was
left out without a word (the copy kept the old definition); it replays now, that of other
views stays out. A restored table or view made from a table the restore leaves out
(``CREATE TABLE copy LIKE secret``, a statement-format ``CREATE TABLE ... SELECT``, a view
reading it) failed the replay after the base loaded (exit 1): refused up front now.
"""

from __future__ import annotations

import pytest

from datatier.cli import main
from tests.integration.binlog_support import database_rows as rows
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle


def leaving_out_secret(database: str) -> str:
    """A policy backing up ``database`` from replica1 without its table ``secret``."""
    return (
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{database}"]\n'
        f'exclude_tables = ["{database}.secret"]\n'
    )


ALT_DB, ALT_TARGET, ALT_POLICY = "pitr_altren", "pitr_altren_r", "pitr_altren"


def test_alter_table_rename_under_tables_is_refused_before_anything_changes(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    with pitr_window(sandbox, ALT_POLICY, ALT_DB, ALT_TARGET, monkeypatch=monkeypatch) as window:
        window.sql(
            f"CREATE TABLE {ALT_DB}.cafe (id INT PRIMARY KEY, v VARCHAR(30))",
            f"INSERT INTO {ALT_DB}.cafe VALUES (1, 'base')",
            f"CREATE TABLE {ALT_DB}.other (id INT PRIMARY KEY)",
        )
        window.backup()
        with window.session() as cur:
            cur.execute("INSERT INTO cafe VALUES (2, 'before the rename')")
            cur.execute("ALTER TABLE cafe RENAME TO cafe2")
            cur.execute("INSERT INTO cafe2 VALUES (3, 'after the rename')")
            cur.execute("UPDATE cafe2 SET v = 'updated' WHERE id = 1")
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", ALT_POLICY, "--until-gtid", gtid]
        argv += ["--tables", f"{ALT_DB}.cafe", "--rename", f"{ALT_DB}={ALT_TARGET}"]
        capsys.readouterr()

        scanned = main([*argv, "--dry-run", "--scan"])
        code = main(argv)

        err = capsys.readouterr().err
        assert (scanned, code) == (2, 2), err
        assert "acts on restored and other tables" in err
        assert query(window.config, "primary", f"SHOW DATABASES LIKE '{ALT_TARGET}'") == []
        # the whole database is still restorable to that moment, the rename replayed
        assert main(["restore", "--policy", ALT_POLICY, "--until-gtid", gtid,
                     "--rename", f"{ALT_DB}={ALT_TARGET}"]) == 0  # fmt: skip
        assert rows(sandbox, ALT_TARGET) == rows(sandbox, ALT_DB)


EXC_DB, EXC_TARGET, EXC_POLICY = "pitr_excren", "pitr_excren_r", "pitr_excren"


def test_a_left_out_table_renamed_to_a_kept_name_is_refused_before_anything_changes(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = leaving_out_secret(EXC_DB)
    with pitr_window(
        use_sandbox_config, EXC_POLICY, EXC_DB, EXC_TARGET, monkeypatch=monkeypatch, text=text
    ) as window:
        window.sql(
            f"CREATE TABLE {EXC_DB}.kept (id INT PRIMARY KEY)",
            f"INSERT INTO {EXC_DB}.kept VALUES (1)",
            f"CREATE TABLE {EXC_DB}.secret (id INT PRIMARY KEY, s VARCHAR(10))",
            f"INSERT INTO {EXC_DB}.secret VALUES (1, 's')",
        )
        window.backup()
        with window.session() as cur:
            cur.execute("INSERT INTO kept VALUES (2)")
            cur.execute("ALTER TABLE secret RENAME TO public")
            cur.execute("INSERT INTO public VALUES (2, 'p')")
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", EXC_POLICY, "--until-gtid", gtid]
        argv += ["--rename", f"{EXC_DB}={EXC_TARGET}"]
        capsys.readouterr()

        scanned = main([*argv, "--dry-run", "--scan"])
        code = main(argv)

        err = capsys.readouterr().err
        assert (scanned, code) == (2, 2), err
        assert query(window.config, "primary", f"SHOW DATABASES LIKE '{EXC_TARGET}'") == []


def triggers(sandbox: SandboxHandle, database: str) -> list[tuple[str, str, str]]:
    """(name, table, statement) of every trigger of ``database``."""
    found = query(sandbox.config, "primary", f"SHOW TRIGGERS FROM `{database}`")
    return sorted((str(r[0]), str(r[2]), str(r[3])) for r in found)


TRG_DB, TRG_TARGET, TRG_POLICY = "pitr_trgsel", "pitr_trgsel_r", "pitr_trgsel"


def test_trigger_ddl_under_tables_replays_create_and_refuses_drop(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = use_sandbox_config
    with pitr_window(sandbox, TRG_POLICY, TRG_DB, TRG_TARGET, monkeypatch=monkeypatch) as window:
        with window.session() as cur:
            cur.execute("CREATE TABLE cafe (id INT PRIMARY KEY, n INT DEFAULT 0)")
            cur.execute("CREATE TABLE other (id INT PRIMARY KEY, n INT DEFAULT 0)")
            cur.execute("CREATE TRIGGER trg_old BEFORE INSERT ON cafe FOR EACH ROW SET NEW.n = 1")
            cur.execute("INSERT INTO cafe (id) VALUES (1)")
        window.backup()
        with window.session() as cur:
            cur.execute("CREATE TRIGGER trg_new BEFORE UPDATE ON cafe FOR EACH ROW SET NEW.n = 2")
            cur.execute("CREATE TRIGGER trg_oth BEFORE INSERT ON other FOR EACH ROW SET NEW.n = 3")
            cur.execute("INSERT INTO cafe (id) VALUES (2)")
        created = window.gtid()
        with window.session() as cur:
            cur.execute("DROP TRIGGER trg_old")
        dropped = window.gtid()
        window.archive()
        argv = ["--tables", f"{TRG_DB}.cafe", "--rename", f"{TRG_DB}={TRG_TARGET}"]

        refused = main(["restore", "--policy", TRG_POLICY, "--until-gtid", dropped, *argv])
        shown = query(window.config, "primary", f"SHOW DATABASES LIKE '{TRG_TARGET}'")
        code = main(["restore", "--policy", TRG_POLICY, "--until-gtid", created, *argv])

        assert (refused, shown, code) == (2, [], 0)
        got = triggers(sandbox, TRG_TARGET)  # trg_old was dropped only after `created`
        assert [(n, t) for n, t, _ in got] == [("trg_new", "cafe"), ("trg_old", "cafe")]
        source = {n: body for n, _, body in triggers(sandbox, TRG_DB)}
        assert {n: body for n, _, body in got}["trg_new"] == source["trg_new"]


TEX_DB, TEX_TARGET, TEX_POLICY = "pitr_trgexc", "pitr_trgexc_r", "pitr_trgexc"


def test_a_trigger_on_a_left_out_table_stays_out_of_the_replay(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = leaving_out_secret(TEX_DB)
    with pitr_window(
        use_sandbox_config, TEX_POLICY, TEX_DB, TEX_TARGET, monkeypatch=monkeypatch, text=text
    ) as window:
        with window.session() as cur:
            cur.execute("CREATE TABLE kept (id INT PRIMARY KEY)")
            cur.execute("CREATE TABLE secret (id INT PRIMARY KEY, n INT)")
            cur.execute("INSERT INTO kept VALUES (1)")
        window.backup()
        with window.session() as cur:
            cur.execute("CREATE TRIGGER trg_s BEFORE INSERT ON secret FOR EACH ROW SET NEW.n = 1")
            cur.execute("INSERT INTO kept VALUES (2)")
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", TEX_POLICY, "--until-gtid", gtid]
        capsys.readouterr()
        code = main([*argv, "--rename", f"{TEX_DB}={TEX_TARGET}"])
        err = capsys.readouterr().err
        assert code == 0, err
        assert rows(use_sandbox_config, TEX_TARGET) == {"kept": [(1,), (2,)]}


IDX_DB, IDX_TARGET, IDX_POLICY = "pitr_idxsel", "pitr_idxsel_r", "pitr_idxsel"


def test_create_or_replace_unique_index_under_tables_is_replayed(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pitr_window(
        use_sandbox_config, IDX_POLICY, IDX_DB, IDX_TARGET, monkeypatch=monkeypatch
    ) as window:
        with window.session() as cur:
            cur.execute("CREATE TABLE cafe (id INT PRIMARY KEY, v VARCHAR(30))")
            cur.execute("CREATE TABLE other (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO cafe VALUES (1, 'a')")
        window.backup()
        with window.session() as cur:
            cur.execute("CREATE OR REPLACE UNIQUE INDEX uv ON cafe (v)")
            cur.execute("INSERT INTO cafe VALUES (2, 'b')")
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", IDX_POLICY, "--until-gtid", gtid]
        code = main([*argv, "--tables", f"{IDX_DB}.cafe", "--rename", f"{IDX_DB}={IDX_TARGET}"])
        config = window.config
        keys = query(config, "primary", f"SHOW INDEX FROM {IDX_TARGET}.cafe WHERE Key_name = 'uv'")
        assert (code, [(k[1], k[4]) for k in keys]) == (0, [(0, "v")])
        assert rows(use_sandbox_config, IDX_TARGET) == {"cafe": [(1, "a"), (2, "b")]}


def tables_of(sandbox: SandboxHandle, database: str) -> list[str]:
    """The tables and views of ``database``, sorted."""
    return sorted(
        str(t) for (t,) in query(sandbox.config, "primary", f"SHOW TABLES FROM `{database}`")
    )


VIEW_DB, VIEW_TARGET, VIEW_POLICY = "pitr_viewsel", "pitr_viewsel_r", "pitr_viewsel"


def test_view_ddl_under_tables_replays_the_named_views_and_refuses_what_reads_others(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--tables db.cafe,db.vc``: the window's ``CREATE OR REPLACE VIEW vc`` (one more
    column) was left out without a word, the copy's vc kept its old definition (exit 0).
    DDL of the named view replays (its drop too); a view not named (created or dropped) stays
    out; a named view redefined to read a table the restore leaves out is refused up front."""
    sandbox = use_sandbox_config
    with pitr_window(sandbox, VIEW_POLICY, VIEW_DB, VIEW_TARGET, monkeypatch=monkeypatch) as window:
        with window.session() as cur:
            cur.execute("CREATE TABLE cafe (id INT PRIMARY KEY, v VARCHAR(30))")
            cur.execute("CREATE TABLE other (id INT PRIMARY KEY)")
            cur.execute("CREATE VIEW vc AS SELECT id FROM cafe")
            cur.execute("CREATE VIEW vold AS SELECT id FROM cafe")
            cur.execute("INSERT INTO cafe VALUES (1, 'a')")
        window.backup()
        with window.session() as cur:
            cur.execute("CREATE OR REPLACE VIEW vc AS SELECT c.id, c.v FROM cafe c")
            cur.execute("CREATE VIEW vx AS SELECT id FROM other")
            cur.execute("DROP VIEW vold")
            cur.execute("INSERT INTO cafe VALUES (2, 'b')")
        redefined = window.gtid()
        with window.session() as cur:
            cur.execute("DROP VIEW vc")
        dropped = window.gtid()
        with window.session() as cur:
            cur.execute("CREATE VIEW vc AS SELECT o.id FROM cafe JOIN other o USING (id)")
        reads_other = window.gtid()
        window.archive()
        argv = ["restore", "--policy", VIEW_POLICY, "--tables", f"{VIEW_DB}.cafe,{VIEW_DB}.vc"]
        argv += ["--rename", f"{VIEW_DB}={VIEW_TARGET}"]
        config = window.config

        assert main([*argv, "--until-gtid", redefined]) == 0
        got = query(config, "primary", f"SELECT * FROM {VIEW_TARGET}.vc ORDER BY id")
        assert (tables_of(sandbox, VIEW_TARGET), got) == (["cafe", "vc"], [(1, "a"), (2, "b")])
        query(config, "primary", f"DROP DATABASE {VIEW_TARGET}")

        assert main([*argv, "--until-gtid", dropped]) == 0
        assert tables_of(sandbox, VIEW_TARGET) == ["cafe"]
        query(config, "primary", f"DROP DATABASE {VIEW_TARGET}")

        capsys.readouterr()
        scanned = main([*argv, "--until-gtid", reads_other, "--dry-run", "--scan"])
        code = main([*argv, "--until-gtid", reads_other])
        err = capsys.readouterr().err
        assert (scanned, code) == (2, 2), err
        assert "other" in err
        assert query(config, "primary", f"SHOW DATABASES LIKE '{VIEW_TARGET}'") == []


LIKE_DB, LIKE_TARGET, LIKE_POLICY = "pitr_likeout", "pitr_likeout_r", "pitr_likeout"


@pytest.mark.parametrize(
    "created",
    [
        ["CREATE TABLE copy LIKE secret"],
        ["CREATE TABLE copy (LIKE secret)"],
        ["SET SESSION binlog_format = 'STATEMENT'", "CREATE TABLE copy SELECT * FROM secret"],
        ["CREATE VIEW copy AS SELECT k.id FROM kept k JOIN secret s ON s.id = k.id"],
    ],
)
def test_a_new_table_or_view_reading_a_left_out_table_is_refused_before_anything_changes(
    created: list[str],
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A policy leaving ``secret`` out: the window creates ``copy`` (which the policy keeps)
    from it (``LIKE``, a statement-format ``CREATE TABLE ... SELECT``, a view). The scan
    said it replays (exit 0) and the restore failed on the missing ``secret`` after the base
    loaded (exit 1); it cannot be replayed, so it is refused up front (exit 2, scan and
    restore, nothing created). (In row format ``CREATE TABLE ... SELECT`` is binlogged as
    the new table's definition and its rows: replayed.)"""
    text = leaving_out_secret(LIKE_DB)
    with pitr_window(
        use_sandbox_config, LIKE_POLICY, LIKE_DB, LIKE_TARGET, monkeypatch=monkeypatch, text=text
    ) as window:
        with window.session() as cur:
            cur.execute("CREATE TABLE kept (id INT PRIMARY KEY)")
            cur.execute("CREATE TABLE secret (id INT PRIMARY KEY, s VARCHAR(9))")
            cur.execute("INSERT INTO kept VALUES (1)")
        window.backup()
        with window.session() as cur:
            for sql in created:
                cur.execute(sql)
            if "TABLE" in created[-1]:
                cur.execute("INSERT INTO copy VALUES (1, 'x')")
            cur.execute("INSERT INTO kept VALUES (2)")
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", LIKE_POLICY, "--until-gtid", gtid]
        argv += ["--rename", f"{LIKE_DB}={LIKE_TARGET}"]
        capsys.readouterr()

        scanned = main([*argv, "--dry-run", "--scan"])
        code = main(argv)

        err = capsys.readouterr().err
        assert (scanned, code) == (2, 2), err
        assert "secret" in err
        assert query(window.config, "primary", f"SHOW DATABASES LIKE '{LIKE_TARGET}'") == []
