"""Every valid MariaDB name backs up and restores on a ``file://`` store (issue 12, item 9):
a table named like the store's own temp files, and a database of 50 CJK characters whose
percent-encoded key segment (450 bytes) is longer than a file name can be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from tests.integration.conftest import SandboxHandle, q
from tests.integration.integrity import loaded_config

CJK = "库" * 50  # MariaDB's own limit: its file names hold 50 such characters
TABLES = (".datatier-tmp.x", "表" * 40, "plain")
COPY = "integ_names_copy"


@pytest.fixture
def odd_names(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(CJK)}")
        cur.execute(f"CREATE DATABASE {q(CJK)}")
        for i, table in enumerate(TABLES):
            cur.execute(f"CREATE TABLE {q(CJK)}.{q(table)} (id INT PRIMARY KEY, v TEXT)")
            cur.executemany(
                f"INSERT INTO {q(CJK)}.{q(table)} VALUES (%s, %s)",
                [(n, f"{table} {n}" * (i + 1)) for n in range(500)],
            )
    sandbox.wait_replicated()
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(CJK)}")
        cur.execute(f"DROP DATABASE IF EXISTS {COPY}")


@pytest.mark.usefixtures("odd_names")
def test_odd_names_round_trip_through_a_file_store(
    use_sandbox_config: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: the whole backup failed on file:// (reserved name, segment over 200
    bytes) where S3 took it."""
    sandbox = use_sandbox_config
    store = tmp_path / "store"
    path = sandbox.write_policy(
        "integ-names",
        f'engine = "mysql"\nstore = "file://{store}"\n[source]\nnode = "replica1"\n'
        f'databases = ["{CJK}"]\n',
    )
    try:
        loaded = loaded_config(sandbox)
        manifest = run_backup(loaded, load_policy(loaded, "integ-names"))
        assert {t.name for t in manifest.tables} == set(TABLES)
        assert len(quote(CJK, safe="").encode()) > 255, "percent-encoded, the name is too long"
        assert all(len(p.name.encode()) <= 255 for p in store.rglob("*"))

        assert main(["backups", "verify", manifest.backup_id]) == 0
        assert main(["restore", manifest.backup_id, "--rename", f"{CJK}={COPY}"]) == 0
        with sandbox.connect() as conn, conn.cursor() as cur:
            for table in TABLES:
                cur.execute(f"CHECKSUM TABLE {q(CJK)}.{q(table)}, {COPY}.{q(table)}")
                original, restored = (row[1] for row in cur.fetchall())
                assert original == restored and original is not None, table
        capsys.readouterr()
        assert main(["backups", "prune", "integ-names", "--execute"]) == 0
    finally:
        path.unlink()
