"""Unit tests of the refusal of an unusable point-in-time base (:mod:`datatier.binlog.base`):
which backup counts as the base, which could serve instead, and that none is used unasked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datatier.backup.catalog import BackupEntry, BackupState
from datatier.backup.manifest import Manifest
from datatier.binlog.base import UnusableBase, alternative_bases, refuse_unusable
from datatier.binlog.replay import Target
from datatier.mysql.binlog.positions import Gtid

OLD, MID, NEW = "20261201T090000Z-aaaa", "20261201T100000Z-bbbb", "20261201T110000Z-cccc"


def entry(backup_id: str, seq: int, state: BackupState = BackupState.COMPLETE) -> BackupEntry:
    at = f"{backup_id[:4]}-{backup_id[4:6]}-{backup_id[6:8]}T{backup_id[9:11]}:00:00Z"
    manifest = Manifest(
        policy="p", backup_id=backup_id, engine="mysql", tool_version="0",
        started_at=at, finished_at=at, source={},
        consistency={"gtid_pos": f"0-1-{seq}", "snapshot_at": at}, objects=[], tables=[],
    )  # fmt: skip
    readable = state is not BackupState.UNREADABLE
    return BackupEntry("p", backup_id, state, (), manifest if readable else None, "broken")


def at(hour: int, minute: int = 30) -> Target:
    return Target(until_ts=int(datetime(2026, 12, 1, hour, minute, tzinfo=UTC).timestamp()))


def always(_m: Manifest) -> bool:
    return True


def refusal(entries: list[BackupEntry], target: Target, backup_id: str | None = None) -> str:
    with pytest.raises(UnusableBase) as caught:
        refuse_unusable(entries, target, None, always, backup_id=backup_id, policy="p")
    assert caught.value.exit_code == 4
    return caught.value.backup_id


def test_a_damaged_or_unreadable_newest_base_is_refused_naming_the_older_ones() -> None:
    for state in (BackupState.DAMAGED, BackupState.UNREADABLE):
        entries = [entry(OLD, 100), entry(MID, 200), entry(NEW, 300, state)]
        assert refusal(entries, at(11)) == NEW
        with pytest.raises(UnusableBase) as caught:
            refuse_unusable(entries, at(11), None, always, backup_id=None, policy="p")
        assert caught.value.alternatives == [MID, OLD]
        assert f"{MID} could serve" in caught.value.message
        refuse_unusable(entries, at(10), None, always, backup_id=None, policy="p")  # MID: fine


def test_an_unreadable_manifest_counts_only_where_it_may_precede_the_target() -> None:
    entries = [entry(OLD, 100), entry(NEW, 300, BackupState.UNREADABLE)]
    refuse_unusable(entries, at(10), None, always, backup_id=None, policy="p")  # started later
    assert refusal(entries, at(11)) == NEW
    assert refusal(entries, Target(until_gtid=Gtid(0, 1, 250))) == NEW  # its place is unknown


def test_the_base_asked_for_is_refused_when_damaged_and_good_ones_are_not() -> None:
    entries = [entry(OLD, 100, BackupState.DAMAGED), entry(MID, 200)]
    assert refusal(entries, at(11), OLD) == OLD
    refuse_unusable(entries, at(11), None, always, backup_id=MID, policy="p")
    refuse_unusable(entries, at(11), None, always, backup_id=None, policy="p")  # MID is newest


def test_alternatives_precede_the_target_are_reached_and_never_the_failed_one() -> None:
    entries = [entry(OLD, 100), entry(MID, 200), entry(NEW, 300)]
    assert alternative_bases(entries, at(11), None, always, besides=NEW) == [MID, OLD]
    assert alternative_bases(entries, at(10), None, always, besides=MID) == [OLD]
    unreached = alternative_bases(entries, at(11), None, lambda m: m.backup_id != MID, besides=NEW)
    assert unreached == [OLD]
    with pytest.raises(UnusableBase, match="no other complete backup"):
        refuse_unusable(
            [entry(NEW, 300, BackupState.DAMAGED)], at(11), None, always, backup_id=None, policy="p"
        )
