"""A row no server could ever load fails the backup, on the sandbox's real MariaDB and S3.

Large binary values are written as hex, two bytes each: a 600 MB BLOB (legal with the
1 GiB ``max_allowed_packet`` MariaDB allows at most) renders to an INSERT over 1 GiB,
which no server accepts. Such a backup would succeed and could never be restored. The
limit is lowered here (``dumprows.MAX_PACKET``) so a small row crosses it; the rows, the
server, the dump and the store are real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from datatier.cli import main
from datatier.mysql import dumprows
from tests.integration.conftest import SandboxHandle

DB = "stmt_limit_db"
POLICY = "stmt-limit"


@pytest.fixture
def source(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    sandbox = use_sandbox_config
    run(
        sandbox,
        f"DROP DATABASE IF EXISTS {DB}",
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.small (id INT PRIMARY KEY, v VARCHAR(10))",
        f"INSERT INTO {DB}.small VALUES (1, 'a')",
        f"CREATE TABLE {DB}.big (id INT PRIMARY KEY, b LONGBLOB)",
        f"INSERT INTO {DB}.big VALUES (1, REPEAT(UNHEX('00FF275C'), 1000)), "
        f"(2, REPEAT(UNHEX('00FF275C'), 250000))",  # 4 kB, then 1 MB: 2 MB as hex
    )
    sandbox.wait_replicated(60)
    sandbox.write_policy(
        POLICY, f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )
    yield sandbox
    run(sandbox, f"DROP DATABASE IF EXISTS {DB}")


def run(sandbox: SandboxHandle, *statements: str) -> list[tuple[object, ...]]:
    """The last statement's rows, each statement run on the primary."""
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        return list(cur.fetchall())


def completed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    assert main(["backups", "list", POLICY, "--json"]) == 0
    return [b["id"] for b in json.loads(capsys.readouterr().out)["backups"]]


def test_a_row_no_server_could_load_fails_the_backup_without_a_manifest(
    source: SandboxHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dumprows, "MAX_PACKET", 3 << 19)  # 1.5 MiB: under the 1 MB row as hex
    before = completed(capsys)
    assert main(["backup", "run", POLICY]) == 1
    err = capsys.readouterr().err
    assert f"`{DB}`.`big`" in err and "no server could load it" in err, err
    assert "mariabackup" in err, err  # the way out
    assert completed(capsys) == before


def test_under_the_limit_the_same_rows_back_up_and_restore(
    source: SandboxHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dumprows, "MAX_PACKET", 4 << 20)
    assert main(["backup", "run", POLICY]) == 0, capsys.readouterr().err
    (backup_id,) = completed(capsys)[-1:]
    run(source, "DROP DATABASE IF EXISTS stmt_limit_copy")
    try:
        code = main(["restore", backup_id, "--rename", f"{DB}=stmt_limit_copy"])
        assert code == 0, capsys.readouterr().err
        rows = run(source, "SELECT id, LENGTH(b), MD5(b) FROM stmt_limit_copy.big ORDER BY id")
        assert len(rows) == 2
        assert rows == run(source, f"SELECT id, LENGTH(b), MD5(b) FROM {DB}.big ORDER BY id")
    finally:
        run(source, "DROP DATABASE IF EXISTS stmt_limit_copy")
