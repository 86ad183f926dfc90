"""Database names information_schema compares as equal: MariaDB 10.11 matches a many-valued
``TABLE_SCHEMA IN (...)`` under utf8mb3_general_ci, where `cn_cafe` = `cn_café` and
`cn_shop` = `cn_Shop`, and answers ``IN ('cn_cafe', 'cn_café')`` for one of the two alone
(checked by hand: ``IN ('shop', 'x')`` also lists `Shop`'s tables; a single value is looked
up exactly). A backup of `cn_cafe` and `cn_café` held `cn_café` without its tables (exit 0):
splitting the lists by letter case alone did not keep accents apart. Each database is now
asked for on its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.conftest import back_up

PLAIN, ACCENT = "cn_cafe", "cn_café"
LOWER, UPPER, OTHER = "cn_shop", "cn_Shop", "cn_other"
ALL = (PLAIN, ACCENT, LOWER, UPPER, OTHER)


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def on_primary(sandbox: SandboxHandle, *statements: str) -> list[tuple[object, ...]]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        rows = list(cur.fetchall())
    sandbox.wait_replicated()
    return rows


@pytest.fixture(scope="module")
def names(sandbox: SandboxHandle) -> Iterator[None]:
    """One table `t` in each database, its rows naming the database."""
    drop = [f"DROP DATABASE IF EXISTS {q(db)}" for db in ALL]
    on_primary(sandbox, *drop)
    statements: list[str] = []
    for i, db in enumerate(ALL):
        statements += [
            f"CREATE DATABASE {q(db)} CHARACTER SET utf8mb4",
            f"CREATE TABLE {q(db)}.t (id INT PRIMARY KEY, v VARCHAR(20)) CHARACTER SET utf8mb4",
            f"INSERT INTO {q(db)}.t VALUES ({i * 10 + 1}, '{db}'), ({i * 10 + 2}, '{db}')",
        ]
    on_primary(sandbox, *statements)
    yield
    on_primary(sandbox, *drop)


def held(manifest: Manifest) -> list[tuple[str, str, int]]:
    return sorted((t.database, t.name, t.rows) for t in manifest.tables)


def test_a_backup_of_names_differing_by_an_accent_holds_both(
    sandbox: SandboxHandle, names: None
) -> None:
    manifest = back_up(sandbox, "cn_accents", [PLAIN, ACCENT])
    assert sorted(manifest.databases) == sorted([PLAIN, ACCENT])
    assert held(manifest) == sorted([(PLAIN, "t", 2), (ACCENT, "t", 2)])


def test_a_backup_holds_no_table_of_a_database_it_does_not_name(
    sandbox: SandboxHandle, names: None
) -> None:
    """`cn_Shop` compares equal to `cn_shop` under information_schema's collation."""
    manifest = back_up(sandbox, "cn_lower", [LOWER, OTHER])
    assert sorted(manifest.databases) == sorted([LOWER, OTHER])
    assert held(manifest) == sorted([(LOWER, "t", 2), (OTHER, "t", 2)])


def test_a_target_holding_one_of_two_accent_names_is_not_empty(
    use_sandbox_config: SandboxHandle, names: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Restoring the backup of both into the sandbox where only `cn_café` still exists,
    with a row of its own: refused as not empty (exit 2), that row kept, `cn_cafe` not
    created."""
    sandbox = use_sandbox_config
    manifest = back_up(sandbox, "cn_accents2", [PLAIN, ACCENT])
    on_primary(
        sandbox, f"DROP DATABASE {q(PLAIN)}", f"INSERT INTO {q(ACCENT)}.t VALUES (99, 'mine')"
    )
    try:
        capsys.readouterr()
        code = main(["restore", manifest.backup_id])
        err = capsys.readouterr().err
        kept = on_primary(sandbox, f"SELECT id FROM {q(ACCENT)}.t ORDER BY id")
        created = on_primary(sandbox, f"SHOW DATABASES LIKE '{PLAIN}'")
        assert (code, [int(str(r[0])) for r in kept], created) == (2, [11, 12, 99], []), err
    finally:
        on_primary(
            sandbox,
            f"CREATE DATABASE IF NOT EXISTS {q(PLAIN)}",
            f"CREATE TABLE IF NOT EXISTS {q(PLAIN)}.t (id INT PRIMARY KEY, v VARCHAR(20))",
            f"DELETE FROM {q(ACCENT)}.t WHERE id = 99",
        )
