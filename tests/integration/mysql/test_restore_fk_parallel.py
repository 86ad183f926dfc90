"""A forced restore, with the default jobs, of a parent and a child table (the child holds a
FOREIGN KEY to the parent) stored as separate schema objects, into the database they came
from (both tables there): it failed about half the time, "Lock wait timeout exceeded" on
the parent's definition, exit 1 after loading began (the database half restored). Repeated
so that the old behaviour fails reliably; every run must restore both tables whole.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.conftest import back_up

DB, POLICY = "fk_parallel", "fk-parallel"
RUNS = 8
TABLES = (
    f"CREATE TABLE {DB}.parent (id INT PRIMARY KEY) ENGINE=InnoDB",
    f"CREATE TABLE {DB}.child (id INT PRIMARY KEY, p INT NOT NULL,"
    f" CONSTRAINT fk_child_parent FOREIGN KEY (p) REFERENCES {DB}.parent (id)) ENGINE=InnoDB",
    f"INSERT INTO {DB}.parent SELECT seq FROM {DB}.seq_1_to_200",
    f"INSERT INTO {DB}.child SELECT seq, seq FROM {DB}.seq_1_to_200",
)


@pytest.fixture
def clean(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    config = use_sandbox_config.config
    query(config, "primary", f"DROP DATABASE IF EXISTS {DB}")
    yield use_sandbox_config
    query(config, "primary", f"DROP DATABASE IF EXISTS {DB}")


def test_forced_restore_of_fk_linked_tables_succeeds_every_time(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    config = clean.config
    for sql in (f"CREATE DATABASE {DB}", *TABLES):
        query(config, "primary", sql)
    manifest = back_up(clean, POLICY, [DB], "bundle_tables = false\n")
    kinds = sorted(o.kind for o in manifest.objects if o.database == DB)
    assert kinds.count("schema") >= 2 and "bundle" not in kinds, kinds
    for run in range(RUNS):
        query(config, "primary", f"DELETE FROM {DB}.child WHERE id > 100")
        capsys.readouterr()
        code = main(["restore", manifest.backup_id, "--force"])
        err = capsys.readouterr().err
        assert code == 0, f"run {run + 1}: {err}"
        assert counts(clean) == [(200, 200)], f"run {run + 1}"


def counts(sandbox: SandboxHandle) -> list[tuple[int, ...]]:
    found = query(
        sandbox.config, "primary",
        f"SELECT (SELECT COUNT(*) FROM {DB}.parent), (SELECT COUNT(*) FROM {DB}.child)",
    )  # fmt: skip
    return [tuple(r) for r in found]


def test_forced_pitr_in_place_of_fk_linked_tables_succeeds_every_time(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``restore --policy P --until-gtid G --force`` into the source database, the base
    holding parent and child as separate schema objects: every run gives the target
    moment (rows added in the window kept, rows deleted after it back)."""
    text = (
        f'engine = "mysql"\nbundle_tables = false\n[source]\nnode = "replica1"\n'
        f'databases = ["{DB}"]\n'
    )
    with pitr_window(use_sandbox_config, POLICY, DB, monkeypatch=monkeypatch, text=text) as w:
        w.sql(*TABLES)
        w.backup()
        w.sql(f"INSERT INTO {DB}.parent VALUES (201)", f"INSERT INTO {DB}.child VALUES (201, 201)")
        gtid = w.gtid()
        w.sql(f"DELETE FROM {DB}.child WHERE id > 100")
        w.archive()
        for run in range(RUNS // 2):
            capsys.readouterr()
            code = main(["restore", "--policy", POLICY, "--until-gtid", gtid, "--force"])
            err = capsys.readouterr().err
            assert code == 0, f"run {run + 1}: {err}"
            assert counts(use_sandbox_config) == [(201, 201)], f"run {run + 1}"
            query(use_sandbox_config.config, "primary", f"DELETE FROM {DB}.child WHERE id > 100")


CHAIN = [f"c{i:02d}" for i in range(16)]


def test_forced_restore_of_fk_linked_tables_in_several_bundles(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sixteen small tables, each with a foreign key to the one before: bundled (two
    bundles at the default jobs, loaded in parallel, keys across them), forced over the
    source database again and again: every run restores every table whole."""
    config = clean.config
    query(config, "primary", f"CREATE DATABASE {DB}")
    for n, table in enumerate(CHAIN):
        key = f", CONSTRAINT fk_{table} FOREIGN KEY (p) REFERENCES {DB}.{CHAIN[n - 1]} (id)"
        query(
            config,
            "primary",
            f"CREATE TABLE {DB}.{table} (id INT PRIMARY KEY, p INT{key if n else ''}) "
            "ENGINE=InnoDB",
        )
        query(config, "primary", f"INSERT INTO {DB}.{table} SELECT seq, seq FROM {DB}.seq_1_to_50")
    manifest = back_up(clean, POLICY, [DB])
    assert sum(o.kind == "bundle" for o in manifest.objects) >= 2
    for run in range(RUNS):
        query(config, "primary", f"DELETE FROM {DB}.{CHAIN[-1]} WHERE id > 25")
        capsys.readouterr()
        code = main(["restore", manifest.backup_id, "--force"])
        err = capsys.readouterr().err
        assert code == 0, f"run {run + 1}: {err}"
        found = query(config, "primary", f"SELECT COUNT(*) FROM {DB}.{CHAIN[-1]}")
        assert [tuple(r) for r in found] == [(50,)], f"run {run + 1}"
