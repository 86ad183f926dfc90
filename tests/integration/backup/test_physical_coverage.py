"""A physical backup holds every tablespace the server kept through the copy, whatever made
mariabackup skip one: a backup without a table the server has must fail, not succeed.

datatier knew one skip, the file mariabackup takes for dropped during the copy, by the
line its log writes ("... ignore the tablespace X", ``test_tester9_findings``). Any other
skip (another message, another version's naming, an option) went by unseen: exit 0, a
manifest, and a restore without the table. Here mariabackup runs through a wrapper first on
PATH that adds ``--tables-exclude`` for one table, a skip that writes no such line.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backup.test_tester7_findings import primary_full_backup, store_of
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.integrity import backup_keys

POLICY = "cov-phys"
DB = "cov_db"


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """A full physical backup of the sandbox primary with ``cov_db.t`` (3 rows) in it."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute(f"INSERT IGNORE INTO {DB}.t VALUES (1), (2), (3)")
    try:
        yield from primary_full_backup(sandbox, POLICY)
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")


def skipping(bin_dir: Path, pattern: str) -> str:
    """A ``mariadb-backup`` first on PATH that runs the real one with ``--tables-exclude=
    PATTERN`` added to a backup; the PATH."""
    real = shutil.which("mariadb-backup") or shutil.which("mariabackup")
    if real is None:
        pytest.fail("mariadb-backup is not installed (make deps installs it)")
    bin_dir.mkdir()
    wrapper = bin_dir / "mariadb-backup"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --backup "*) '
        f"exec {real} \"$@\" '--tables-exclude={pattern}' ;; esac\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


@pytest.mark.parametrize("kind", ["--full", "--incremental"])
def test_a_backup_that_lacks_a_tablespace_the_server_kept_fails(
    sandbox: SandboxHandle, full: str, tmp_path: Path, kind: str
) -> None:
    """Steps: ``backup run KIND`` (an incremental builds on the module's full backup) with
    mariabackup skipping ``cov_db.t``.
    Expected: exit 1 naming ``cov_db/t.ibd``, no new manifest or object; the full backup
    stays. Was: exit 0, a backup without ``t`` (its restore lacks the table)."""
    env = {"PATH": skipping(tmp_path / "bin", rf"^{DB}[.]t$")}
    store = store_of(sandbox)
    before = backup_keys(store, POLICY)
    result = cli(sandbox.config_path, env, "backup", "run", POLICY, kind, "--json")
    assert result.code == 1, (result.code, result.err[-1500:])
    assert f"{DB}/t.ibd" in result.err, result.err[-1500:]
    assert "would restore without" in result.err, result.err[-1500:]
    assert backup_keys(store, POLICY) == before, "no manifest or object left"


def test_the_same_backup_without_the_skip_succeeds(
    sandbox: SandboxHandle, full: str, tmp_path: Path
) -> None:
    """Guard against a check that refuses everything: the same incremental through a
    wrapper that excludes a table no server has succeeds."""
    env = {"PATH": skipping(tmp_path / "bin", r"^no_such_db[.]no_such_table$")}
    result = cli(sandbox.config_path, env, "backup", "run", POLICY, "--incremental", "--json")
    assert result.code == 0, result.err[-1500:]
    assert result.json()["parent"], "an incremental, built on a parent"
