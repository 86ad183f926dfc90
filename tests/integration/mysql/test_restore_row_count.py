"""A restore whose tables end with other row counts than the backup recorded is an
integrity failure (exit 4), like a checksum mismatch: the copy is not the backup. Here the
store lies consistently (a data object short of a row, its checksum and size updated in
the manifest, so every checksum passes); only the count after loading can tell. On the
sandbox's real servers."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import pytest
import zstandard

from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.restore import find_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store, failure_line
from tests.integration.mysql.conftest import back_up

DB = "integ_rowcount"
POLICY = "integ-rowcount"
NODES = ("primary", "replica1", "replica2")


def drop(sandbox: SandboxHandle) -> None:
    for node in NODES:
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")


@pytest.fixture
def backup(use_sandbox_config: SandboxHandle) -> Iterator[Manifest]:
    """DB.t holding 1, 2 and 3 (no key), in a data object of its own."""
    sandbox = use_sandbox_config
    drop(sandbox)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.t (v INT)")
        cur.execute(f"INSERT INTO {DB}.t VALUES (1), (2), (3)")
    clear_prefix(default_store(sandbox), POLICY)
    yield back_up(sandbox, POLICY, [DB], "bundle_tables = false\n")
    drop(sandbox)
    clear_prefix(default_store(sandbox), POLICY)


def test_a_restore_short_of_the_backups_rows_exits_4(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: the restore loaded 2 of the 3 rows and exited 1 ("the operation
    failed"), the code of a failure worth retrying, where a cron job or the on-call engineer
    must learn that the data is wrong."""
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    _, store = find_backup(loaded, backup.backup_id)
    index, victim = next(
        (i, o) for i, o in enumerate(backup.objects) if o.kind == "data" and o.table == "t"
    )
    sql = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(b"".join(store.iter_read(victim.key)))
    )
    assert b"(1),\n(2),\n(3);" in sql, sql
    # the same length, so the statement's frame still holds: one row fewer
    forged = zstandard.ZstdCompressor().compress(sql.replace(b",\n(3);", b"     ;"))
    store.put_bytes(victim.key, forged)
    backup.objects[index] = dataclasses.replace(
        victim, size=len(forged), sha256=hashlib.sha256(forged).hexdigest()
    )
    store.put_bytes(manifest_key(backup.policy, backup.backup_id), backup.encode())
    drop(sandbox)
    capsys.readouterr()
    code = main(["restore", backup.backup_id])
    err = failure_line(capsys.readouterr().err)
    assert code == 4, err
    assert f"{DB}.t: 2 rows after restore, the backup has 3" in err
