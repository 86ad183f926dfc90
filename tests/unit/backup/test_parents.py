"""An incremental and a concurrent prune of its parents (datatier.backup.parents), on a real
local store: each side's look after its own write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datatier.backup.manifest import manifest_key
from datatier.backup.parents import (
    PRUNE_CLAIM,
    confirm_parents,
    needed_by_new,
    unless_deleted,
)
from datatier.errors import IntegrityFailure, OperationFailed
from datatier.storage.local import LocalStore

P = "pol"
FULL = "20261201T000000Z-0001"
INCR1 = "20261202T000000Z-0002"
INCR2 = "20261203T000000Z-0003"
OTHER = "20261204T000000Z-0004"


def put_manifest(store: LocalStore, backup_id: str, parent: str | None) -> None:
    store.put_bytes(manifest_key(P, backup_id), json.dumps({"parent": parent}).encode())
    store.put_bytes(f"{P}/{backup_id}/data/x.zst", b"data")


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path)
    put_manifest(s, FULL, None)
    put_manifest(s, INCR1, FULL)
    return s


def test_a_chain_that_is_all_there_confirms(store: LocalStore) -> None:
    put_manifest(store, INCR2, INCR1)
    confirm_parents(store, P, INCR2, INCR1)
    confirm_parents(store, P, FULL, None)  # a full backup has nothing to confirm


def test_a_parent_deleted_back_in_the_chain_fails_naming_it(store: LocalStore) -> None:
    put_manifest(store, INCR2, INCR1)
    store.delete([manifest_key(P, FULL)])
    with pytest.raises(IntegrityFailure, match=f"its parent {FULL} \\(of {INCR1}\\) was deleted"):
        confirm_parents(store, P, INCR2, INCR1)


def test_a_claimed_parent_fails(store: LocalStore) -> None:
    store.put_bytes(f"{P}/{FULL}/{PRUNE_CLAIM}", b"{}")
    with pytest.raises(IntegrityFailure, match="is being deleted by a concurrent"):
        confirm_parents(store, P, INCR1, FULL)


def test_a_loop_of_parents_fails(store: LocalStore) -> None:
    put_manifest(store, FULL, INCR1)  # FULL -> INCR1 -> FULL
    with pytest.raises(IntegrityFailure, match="loops"):
        confirm_parents(store, P, INCR1, FULL)


def test_prune_finds_the_parents_a_manifest_written_since_its_plan_needs(
    store: LocalStore,
) -> None:
    put_manifest(store, OTHER, None)
    planned = {FULL, OTHER}  # INCR1 completed after the plan
    assert needed_by_new(store, P, planned, [FULL, OTHER]) == {FULL}
    assert needed_by_new(store, P, planned | {INCR1}, [FULL, OTHER]) == set()


def test_a_deleted_backup_read_is_reported_as_deleted_not_corrupt(store: LocalStore) -> None:
    store.delete([manifest_key(P, FULL)])
    deleted = pytest.raises(OperationFailed, match=f"backup {FULL} of {P} was deleted")
    with deleted as info, unless_deleted(store, P, INCR1):
        raise IntegrityFailure("an object is missing")
    assert not isinstance(info.value, IntegrityFailure)
    put_manifest(store, FULL, None)
    # all there: the integrity failure stands
    with pytest.raises(IntegrityFailure, match="missing"), unless_deleted(store, P, INCR1):
        raise IntegrityFailure("an object is missing")
