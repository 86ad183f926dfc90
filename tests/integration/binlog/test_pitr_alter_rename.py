"""``ALTER TABLE ... RENAME TO`` in the window of a point-in-time restore limited to some
tables (tester's findings 1 and 2, 2026-12-03).

``RENAME TABLE t TO t2`` was refused there (it acts on a restored and another table), but
the ALTER form was read as acting on ``t`` alone: under ``--tables db.t`` it was replayed
and the rows written to ``t2`` afterwards dropped as not restored (exit 0, the copy's
``t2`` without them); a table a policy's ``exclude_tables`` leaves out, renamed to a kept
name, failed the replay after the base was loaded (exit 1). Both are now refused before
anything changes (exit 2), the dry run's scan too.
"""

from __future__ import annotations

from typing import Any

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle


def rows(sandbox: SandboxHandle, database: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of ``database`` (exact names) with its rows, sorted."""
    found = {}
    for (table,) in query(sandbox.config, "primary", f"SHOW TABLES FROM `{database}`"):
        found[table] = sorted(
            query(sandbox.config, "primary", f"SELECT * FROM `{database}`.`{table}`")
        )
    return found


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
    text = (
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{EXC_DB}"]\n'
        f'exclude_tables = ["{EXC_DB}.secret"]\n'
    )
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
