"""``backups prune --execute --grace-hours 0`` while the archiver publishes a segment. For
backups a grace of 0 is safe (the claim protocol: prune never deletes what a running backup
then names in its manifest). For the binlog archive it was not: prune took the segment's
object, uploaded but not yet indexed, for a killed archiver's leftover and deleted it; the
archiver then wrote the index record, and the archive named an object that no longer
exists (a gap: those transactions can no longer be replayed). The interleaving is made
deterministic by running the prune from the archiver's record write (tester's regression
test, sandbox's real MariaDB and S3 server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from datatier.binlog.archiver import Archiver
from datatier.binlog.chain import load_chain
from datatier.binlog.records import IndexRecord
from datatier.cli import main
from tests.integration.binlog_support import PitrWindow, pitr_window
from tests.integration.conftest import SandboxHandle

DB = "t5grace_db"
POLICY = "t5grace"


@pytest.fixture
def archived(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PitrWindow]:
    """A table, a backup, the archive caught up."""
    with pitr_window(use_sandbox_config, POLICY, DB, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
        window.backup()
        window.archive()
        yield window


def test_prune_with_no_grace_never_breaks_the_archive_being_written(
    archived: PitrWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    archived.sql(f"INSERT INTO {DB}.t VALUES (1)")
    archiver = Archiver(archived.loaded, archived.policy, node="primary", once=True)
    original = archiver._put_record
    codes: list[int] = []

    def prune_first(record: IndexRecord) -> None:
        codes.append(main(["backups", "prune", POLICY, "--execute", "--grace-hours", "0"]))
        original(record)

    monkeypatch.setattr(archiver, "_put_record", prune_first)
    archiver.run()
    assert codes == [0]
    chain = load_chain(archived.store, POLICY)
    assert not chain.gaps, [g.describe() for g in chain.gaps]


def test_unindexed_segments_go_after_the_grace_or_once_surely_not_in_flight(
    archived: PitrWindow, capsys: pytest.CaptureFixture[str]
) -> None:
    """A race's loser (its SEQ already indexed) goes with ``--grace-hours 0``; an object past
    the newest index record stays a day (an archiver may be about to index it), then goes."""
    store = archived.store
    chain = load_chain(store, POLICY)
    newest = chain.records[-1].seq
    data = f"{POLICY}/_binlogs/data/"
    loser = f"{data}{newest:012d}-1-binlog.000001-000000000004-loser.binlog.zst"
    ahead = f"{data}{newest + 1:012d}-1-binlog.000001-000000000004-ahead.binlog.zst"
    store.put_bytes(loser, b"x")
    store.put_bytes(ahead, b"x")
    prune = ["backups", "prune", POLICY, "--execute", "--grace-hours", "0"]
    assert main(prune) == 0
    left = {o.key for o in store.list_objects(data)}
    assert loser not in left and ahead in left, left
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    capsys.readouterr()
    rehearse = ["backups", "prune", POLICY, "--grace-hours", "0", "--now", later, "--json"]
    assert main(rehearse) == 0  # --now in the future: a rehearsal only
    assert json.loads(capsys.readouterr().out)["binlogs"]["orphans"] == [ahead]
    assert not load_chain(store, POLICY).gaps
