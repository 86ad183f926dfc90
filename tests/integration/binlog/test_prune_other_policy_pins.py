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
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.backup.manifest import Manifest
from datatier.binlog.chain import load_chain
from datatier.cli import main
from datatier.mysql.binlog.positions import Position
from datatier.storage.base import ObjectStore
from tests.integration.binlog_support import binlog_env, pitr_window, query
from tests.integration.conftest import SandboxHandle

OWNER, OTHER = "pins_owner", "pins_other"
OWNER_DB, OTHER_DB, TARGET = "pins_owner_db", "pins_other_db", "pins_other_r"


@pytest.fixture
def two_policies(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Manifest, str, ObjectStore]]:
    """X backed up, a segment; a row; a segment; O backed up; a row; a segment. The
    policies directory holds O and X alone (other tests' policies would pin too)."""
    sandbox = use_sandbox_config
    owner_text = (
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{OWNER_DB}"]\n'
        "[retention]\nkeep_last = 1\nmin_age_days = 0\n"
    )
    with (
        pitr_window(sandbox, OWNER, OWNER_DB, monkeypatch=monkeypatch, text=owner_text) as owner,
        pitr_window(sandbox, OTHER, OTHER_DB, TARGET, env=binlog_env(OWNER)) as other,
    ):
        alone = tmp_path / "policies"
        alone.mkdir()
        for name in (OWNER, OTHER):
            policy = (sandbox.root / "backups" / f"{name}.toml").read_text()
            (alone / f"{name}.toml").write_text(policy)
        monkeypatch.setenv("DATATIER_BACKUP__POLICIES_DIR", str(alone))
        owner.sql(f"CREATE TABLE {OWNER_DB}.t (id INT PRIMARY KEY)")
        other.sql(
            f"CREATE TABLE {OTHER_DB}.t (id INT PRIMARY KEY)",
            f"INSERT INTO {OTHER_DB}.t VALUES (1)",
        )
        older = other.backup()
        owner.archive()
        other.sql(f"INSERT INTO {OTHER_DB}.t VALUES (2)")
        owner.archive()
        owner.backup()
        other.sql(f"INSERT INTO {OTHER_DB}.t VALUES (3)")
        until = owner.until_now()
        owner.archive()
        yield older, until, owner.store


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
