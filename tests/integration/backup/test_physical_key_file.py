"""Physical backups of a server with data-at-rest encryption (``file_key_management``) when
the key file that the backup's ``backup-my.cnf`` names is missing where the restore or the
restore test runs (another host, a moved key).

The restore test's scratch server reads that key file. Without it the server's encrypted
tables could not be read, and the nightly check called a good backup corrupt (exit 4,
"Table ... is corrupted. Please drop the table and recreate"). An operator must never be
told that of a good backup: it is refused instead (exit 2, naming the key file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.mysql.physical.scratch import free_port
from tests.integration.backup.test_tester7_findings import primary_full_backup, scratch_source
from tests.integration.backup.test_tester8_findings import cleanup, wait_encrypted
from tests.integration.backup.test_tester10_findings import DB, backup_updating, create, maker
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.physical_support import (
    OWNER,
    connect_port,
    scratch,
    scratch_ports,
    table_state,
)

POLICY = "keyfile-phys"
SOURCE_POLICY = "keyfile-src"


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """A full physical backup of the sandbox primary (the scratch source's datadir)."""
    yield from primary_full_backup(sandbox, POLICY)


@pytest.mark.parametrize("during", [False, True], ids=["before-the-copy", "during-the-copy"])
def test_a_restore_test_without_the_key_file_is_refused_not_called_corrupt(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int, during: bool
) -> None:
    """Steps (a scratch ``mariadbd`` with ``file_key_management`` and key file K): t of
    5,000 rows, ``ENCRYPTED=YES``; full F, t updated before it or while mariabackup copies
    (F's redo then holds changes to encrypted pages: its prepare needs K); K moved away;
    ``backups verify F --restore-test``; K put back; the same again.
    Expected: exit 2 naming K (no "corrupted", no exit 4 or 1); with K back, exit 0.
    Was: exit 4, "t10.t: Table `t10`.`t` is corrupted. Please drop the table and
    recreate." (the scratch server could not load the key); during the copy, exit 1 (the
    prepare failed)."""
    make = maker("encrypted", tmp_path)
    keys = tmp_path / "keys.txt"
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, SOURCE_POLICY, log_bin=False)
    update = f"UPDATE {DB}.t SET v = 'one', pad = REPEAT('x', 190) WHERE id % 3 = 0"
    args = ["backup", "run", SOURCE_POLICY, "--full", "--json"]
    try:
        with make(base, src.port) as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB}")
            create(cur, "encrypted", "t", 5000, "base")
            taken = backup_updating(src, s.port, tmp_path, args, update, during)
        port = str(free_port(scratch_ports(test_port_base)))
        verify = ("backups", "verify", taken, "--restore-test", "--scratch-port", port,
                  "--scratch-dir", str(tmp_path / "scratch"))  # fmt: skip
        (tmp_path / "scratch").mkdir()
        keys.rename(tmp_path / "keys.away")
        try:
            refused = cli(sandbox.config_path, src.env, *verify)
        finally:
            (tmp_path / "keys.away").rename(keys)
        assert refused.code == 2, (refused.code, refused.err[-1500:])
        assert f"read its encryption keys through {keys}" in refused.err, refused.err[-1500:]
        assert "corrupt" not in refused.err.lower(), refused.err[-1500:]
        assert not list((tmp_path / "scratch").iterdir()), "the copy was removed"
        again = cli(sandbox.config_path, src.env, *verify)
        assert again.code == 0, again.err[-1500:]
    finally:
        cleanup(src)


CHANGE_POLICY = "keyfile-change"


def test_a_chain_across_turning_encryption_on_restores_and_passes_its_restore_test(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Data-at-rest encryption turned on between a full backup and an incremental (the
    server restarted with ``file_key_management``; its tablespaces encrypted by the
    background threads; a new ``ENCRYPTED=YES`` table).
    Expected: ``backups verify N --restore-test`` exit 0, and ``restore N`` holds every row
    once started with the key. The incremental's ``backup-my.cnf`` names the key plugin;
    the full's does not."""
    make = maker("encrypted", tmp_path)
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, CHANGE_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB}")
            create(cur, "zip16", "plain", 3000, "before")
            src.run("backup", "run", CHANGE_POLICY, "--full", "--json")
        with make(base, src.port) as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            wait_encrypted(c)
            create(cur, "encrypted", "t", 3000, "after")
            cur.execute(f"UPDATE {DB}.plain SET v = 'changed' WHERE id % 2 = 0")
            taken = src.run("backup", "run", CHANGE_POLICY, "--incremental", "--json")
            expected = table_state(c, DB)
        port = str(free_port(scratch_ports(test_port_base)))
        verified = cli(sandbox.config_path, src.env, "backups", "verify", taken,
                       "--restore-test", "--scratch-port", port,
                       "--scratch-dir", str(tmp_path))  # fmt: skip
        assert verified.code == 0, verified.err[-1500:]
        check = tmp_path / "check"
        result = cli(sandbox.config_path, src.env, "restore", taken, "--datadir", str(check),
                     "--owner", OWNER)  # fmt: skip
        assert result.code == 0, result.err[-1500:]
        told = [json.loads(x) for x in result.err.splitlines() if "restore.needs_keys" in x]
        assert told and told[0]["files"] == [str(tmp_path / "keys.txt")], result.err[-1500:]
        with scratch(check, test_port_base, make) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, DB) == expected
    finally:
        cleanup(src)
