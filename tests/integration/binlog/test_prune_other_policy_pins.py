"""Binlog prune keeps what *another* MySQL policy's backups need (tester's finding 3, which
asked whether that is over-keeping; the sandbox's real MariaDB and S3 server).

It is not: a config has one MySQL topology (``[mysql.nodes]``, at most one primary; a
policy's ``source.node(s)`` must name one of its nodes) and one binlog archive (the
``binlog.policy``'s), and a point-in-time restore of *any* MySQL policy replays from that
archive. So the backups of every MySQL policy are bases of this archive. Here policy X's
backup is older than everything the archive owner O keeps (``keep_last = 1``); pruning O by
its own backups alone would delete the segments after X's backup, and ``restore --policy X
--until`` would be refused ("does not reach back"). It must keep working after the prune.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import run_backup
from datatier.binlog.archiver import Archiver
from datatier.binlog.chain import load_chain
from datatier.cli import main
from datatier.mysql.binlog.positions import Position
from datatier.storage.base import ObjectStore
from tests.integration.binlog_support import fresh_policy, query
from tests.integration.conftest import SandboxHandle

OWNER, OTHER = "pins_owner", "pins_other"
OWNER_DB, OTHER_DB, TARGET = "pins_owner_db", "pins_other_db", "pins_other_r"
ENV = {"DATATIER_BINLOG__POLICY": OWNER, "DATATIER_BINLOG__MAX_ARCHIVE_LAG": "2"}


@pytest.fixture
def two_policies(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Manifest, str, ObjectStore]]:
    """X backed up, a segment; a row; a segment; O backed up; a row; a segment. The
    policies directory holds O and X alone (other tests' policies would pin too)."""
    sandbox = use_sandbox_config
    loaded, owner, store = fresh_policy(sandbox, OWNER, OWNER_DB, ENV)
    loaded, other, _ = fresh_policy(sandbox, OTHER, OTHER_DB, ENV, TARGET)
    sandbox.write_policy(
        OWNER,
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{OWNER_DB}"]\n'
        "[retention]\nkeep_last = 1\nmin_age_days = 0\n",
    )
    alone = tmp_path / "policies"
    alone.mkdir()
    for name in (OWNER, OTHER):
        (alone / f"{name}.toml").write_text((sandbox.root / "backups" / f"{name}.toml").read_text())
    for key, value in {**ENV, "DATATIER_BACKUP__POLICIES_DIR": str(alone)}.items():
        monkeypatch.setenv(key, value)
    try:
        query(sandbox.config, "primary", f"CREATE TABLE {OWNER_DB}.t (id INT PRIMARY KEY)")
        query(sandbox.config, "primary", f"CREATE TABLE {OTHER_DB}.t (id INT PRIMARY KEY)")
        query(sandbox.config, "primary", f"INSERT INTO {OTHER_DB}.t VALUES (1)")
        sandbox.wait_replicated(60)
        older = run_backup(loaded, other)
        Archiver(loaded, owner, node="primary", once=True).run()
        query(sandbox.config, "primary", f"INSERT INTO {OTHER_DB}.t VALUES (2)")
        Archiver(loaded, owner, node="primary", once=True).run()
        sandbox.wait_replicated(60)
        run_backup(loaded, owner)
        query(sandbox.config, "primary", f"INSERT INTO {OTHER_DB}.t VALUES (3)")
        time.sleep(2.1)
        until = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        time.sleep(1.1)
        Archiver(loaded, owner, node="primary", once=True).run()
        yield older, until, store
    finally:
        for db in (OWNER_DB, OTHER_DB, TARGET):
            query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {db}")
        sandbox.wait_replicated(60)


def test_another_policys_backup_keeps_the_segments_its_restore_needs(
    two_policies: tuple[Manifest, str, ObjectStore],
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    older, until, store = two_policies
    position = Position.parse(older.consistency["gtid_pos"])
    assert len(load_chain(store, OWNER).records) >= 3
    capsys.readouterr()
    assert main(["backups", "prune", OWNER, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["binlogs"]
    assert all(position.covers(Position.parse(d["to"])) for d in plan["delete"])
    assert main(["backups", "prune", OWNER, "--execute"]) == 0
    chain = load_chain(store, OWNER)
    assert position.covers(chain.start), "the archive no longer reaches back to X's backup"
    restore = ["restore", "--policy", OTHER, "--until", until]
    assert main([*restore, "--rename", f"{OTHER_DB}={TARGET}"]) == 0, capsys.readouterr().err
    rows = query(use_sandbox_config.config, "primary", f"SELECT id FROM {TARGET}.t ORDER BY id")
    assert [int(r[0]) for r in rows] == [1, 2, 3]
