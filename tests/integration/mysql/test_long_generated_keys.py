"""A table renamed to a long name keeps the foreign keys the server named, renamed with it
(``<table>_ibfk_<n>``, over 64 characters), which SHOW CREATE TABLE writes and CREATE
TABLE refuses (tester3 finding 8): the restore failed after its ``DROP TABLE`` (exit 1, the
table and its rows gone). The backup now writes such a key under a name CREATE accepts
(:mod:`datatier.mysql.long_key_names`), and a restore of a backup taken before that
renames it as it loads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from datatier.cli import main
from datatier.mysql import catalogue
from datatier.mysql.long_key_names import short_key_name
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.conftest import back_up

DB, POLICY = "longkeys", "longkeys"
LONG = "t" * 60
KEYS = [f"{LONG}_ibfk_1", f"{LONG}_ibfk_2"]


def run(sandbox: SandboxHandle, *statements: str) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def rows(sandbox: SandboxHandle, sql: str) -> list[tuple[Any, ...]]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        return sorted(cur.fetchall())


def keys(sandbox: SandboxHandle) -> list[tuple[Any, ...]]:
    """(full key name, table, referenced table) of every foreign key of DB, as InnoDB
    holds them (information_schema cuts names to 64 characters)."""
    return rows(
        sandbox,
        "SELECT ID, FOR_NAME, REF_NAME FROM information_schema.INNODB_SYS_FOREIGN "
        f"WHERE ID LIKE '{DB}/%'",
    )


@pytest.fixture
def long_table(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    """DB with ``a`` and a 60-character table holding two keys the server named, renamed
    with it to ``<LONG>_ibfk_1`` and ``_2`` (67 characters), one row each."""
    sandbox = use_sandbox_config
    run(
        sandbox,
        f"DROP DATABASE IF EXISTS {DB}",
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.a (id INT PRIMARY KEY)",
        f"CREATE TABLE {DB}.c (aid INT, bid INT, FOREIGN KEY (aid) REFERENCES a (id), "
        "FOREIGN KEY (bid) REFERENCES a (id))",
        f"RENAME TABLE {DB}.c TO {DB}.{LONG}",
        f"INSERT INTO {DB}.a VALUES (1), (2)",
        f"INSERT INTO {DB}.{LONG} VALUES (1, 2)",
    )
    assert [k[0] for k in keys(sandbox)] == [f"{DB}/{k}" for k in KEYS]
    yield sandbox
    run(sandbox, f"DROP DATABASE IF EXISTS {DB}")


def forced(capsys: pytest.CaptureFixture[str], backup_id: str) -> tuple[int, str]:
    """``restore BACKUP_ID --force`` on one job: the schema objects of ``a`` and its child,
    loaded in parallel into a target holding both, fail now and then with "Lock wait timeout
    exceeded" (InnoDB's dictionary locks between the two DROP TABLEs), long names or not; a
    separate finding, not what these tests are about."""
    capsys.readouterr()
    code = main(["restore", backup_id, "--force", "--json", "--jobs", "1"])
    return code, capsys.readouterr().err


def assert_restored(sandbox: SandboxHandle) -> None:
    """DB as at the backup: the rows, and both keys under the names the backup writes,
    still enforced."""
    assert rows(sandbox, f"SELECT * FROM {DB}.{LONG}") == [(1, 2)]
    assert rows(sandbox, f"SELECT * FROM {DB}.a") == [(1,), (2,)]
    full = f"{DB}/{LONG}"
    assert keys(sandbox) == sorted((f"{DB}/{short_key_name(k)}", full, f"{DB}/a") for k in KEYS)
    with pytest.raises(pymysql.err.IntegrityError):
        run(sandbox, f"INSERT INTO {DB}.{LONG} VALUES (1, 3)")


@pytest.mark.parametrize("settings", ["", "bundle_tables = false\n"], ids=["bundle", "schema"])
def test_a_long_generated_key_is_restored_under_a_name_create_accepts(
    long_table: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    settings: str,
) -> None:
    manifest = back_up(long_table, POLICY, [DB], settings)
    assert "backup.foreign_keys_renamed" in caplog.text
    run(long_table, f"INSERT INTO {DB}.a VALUES (3)")
    code, err = forced(capsys, manifest.backup_id)
    assert code == 0, err
    assert_restored(long_table)
    assert manifest.options["renamed_foreign_keys"] == [
        {"table": f"{DB}.{LONG}", "name": k, "written": short_key_name(k)} for k in KEYS
    ]
    # and once more: the restored keys are not in the form the server renames
    code, err = forced(capsys, manifest.backup_id)
    assert code == 0, err
    assert_restored(long_table)


@pytest.mark.parametrize("settings", ["", "bundle_tables = false\n"], ids=["bundle", "schema"])
def test_a_backup_taken_before_the_fix_is_restored(
    long_table: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    settings: str,
) -> None:
    """A backup holding the names as SHOW CREATE TABLE wrote them (as every backup did
    before the fix): the restore renames the keys as it creates the table."""
    monkeypatch.setattr(catalogue, "restorable_create", lambda create: (create, []))
    manifest = back_up(long_table, POLICY, [DB], settings)
    assert "renamed_foreign_keys" not in manifest.options
    monkeypatch.undo()
    monkeypatch.setenv("DATATIER_CONFIG", str(long_table.config_path))
    code, err = forced(capsys, manifest.backup_id)
    assert code == 0, err
    assert "restore.foreign_keys_renamed" in err
    assert_restored(long_table)
