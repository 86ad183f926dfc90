"""``restore --rename A=B`` of a backup that also holds B: two source databases would land
in one target, so the restore is refused at plan time (exit 2), before anything is fetched
or loaded; the target server is left as it was. On the sandbox's real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store, failure_line, loaded_config

FIRST, SECOND = "integ_rename_a", "integ_rename_b"
NODES = ("primary", "replica1", "replica2")


def drop_both(sandbox: SandboxHandle) -> None:
    """Both databases gone from every node (unbinlogged: each node on its own)."""
    for node in NODES:
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            for db in (FIRST, SECOND):
                cur.execute(f"DROP DATABASE IF EXISTS {db}")


@pytest.fixture(scope="module")
def two_databases(sandbox: SandboxHandle) -> Iterator[Manifest]:
    """A backup of FIRST and SECOND (each with a table ``t``), then both dropped everywhere:
    the restore target holds neither."""
    drop_both(sandbox)
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (FIRST, SECOND):
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
            cur.executemany(f"INSERT INTO {db}.t VALUES (%s, %s)", [(i, db) for i in range(50)])
    sandbox.wait_replicated()
    name = "integ-rename-two"
    sandbox.write_policy(
        name,
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{FIRST}", "{SECOND}"]\n',
    )
    clear_prefix(default_store(sandbox), name)
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, name))
    drop_both(sandbox)
    yield manifest
    drop_both(sandbox)


def databases(sandbox: SandboxHandle) -> list[str]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (%s, %s)",
            (FIRST, SECOND),
        )
        return sorted(row[0] for row in cur.fetchall())


@pytest.mark.parametrize(
    "renames",
    [[f"{FIRST}={SECOND}"], [f"{FIRST}=integ_rename_c", f"{SECOND}=integ_rename_c"]],
)
def test_two_source_databases_into_one_target_are_refused_before_anything_is_loaded(
    use_sandbox_config: SandboxHandle,
    two_databases: Manifest,
    renames: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: ``--rename A=B`` loaded A into B, then failed part-way on B's own
    tables ("Table ... already exists ... may be partly loaded", exit 1)."""
    sandbox = use_sandbox_config
    args = ["restore", two_databases.backup_id, "--target", "primary"]
    for rename in renames:
        args += ["--rename", rename]
    capsys.readouterr()
    assert main(args) == 2
    line = failure_line(capsys.readouterr().err)
    target = renames[-1].split("=")[1]
    assert f"databases {FIRST} and {SECOND} would both be restored into {target}" in line
    assert databases(sandbox) == []  # nothing created, nothing loaded
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'integ_rename_c'")
        assert cur.fetchall() == ()


def test_renaming_one_of_the_two_elsewhere_restores_both(
    use_sandbox_config: SandboxHandle, two_databases: Manifest
) -> None:
    """The check refuses only a collision: A=C beside B restores both."""
    sandbox = use_sandbox_config
    copy = "integ_rename_c"
    try:
        args = ["restore", two_databases.backup_id, "--target", "primary", "--rename"]
        assert main([*args, f"{FIRST}={copy}"]) == 0
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*), MIN(v) FROM {copy}.t")
            assert cur.fetchone() == (50, FIRST)
            cur.execute(f"SELECT COUNT(*), MIN(v) FROM {SECOND}.t")
            assert cur.fetchone() == (50, SECOND)
    finally:
        for node in NODES:
            with sandbox.connect(node) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute(f"DROP DATABASE IF EXISTS {copy}")
