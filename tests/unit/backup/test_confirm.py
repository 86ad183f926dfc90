""":func:`datatier.backup.confirm.confirm_listed` over a ``file://`` LocalStore: the check a
backup makes by listing before and after it writes its manifest."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from datatier.backup.confirm import confirm_listed
from datatier.backup.manifest import ObjectRecord
from datatier.backup.parents import PRUNE_CLAIM
from datatier.errors import IntegrityFailure
from datatier.storage.base import StorageClass
from datatier.storage.local import LocalStore

PREFIX = "shop/20261201T010000Z-abcd/"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def upload(store: LocalStore, count: int = 2) -> list[ObjectRecord]:
    """``count`` objects as a backup's writer records them (the upload's ETag)."""
    records = []
    for part in range(count):
        key = f"{PREFIX}data/shop/t/data-{part:05d}.sql.zst"
        data = f"part {part}\n".encode() * 50
        info = store.put_bytes(key, data)
        digest = hashlib.sha256(data).hexdigest()
        records.append(
            ObjectRecord(key, "data", len(data), digest, 300, "STANDARD", etag=info.etag)
        )
    return records


def rewrite(store: LocalStore, record: ObjectRecord) -> None:
    """Another client writes other bytes of the same size under the record's key."""
    time.sleep(0.02)  # file times advance with the kernel's clock
    store.put_bytes(record.key, os.urandom(record.size))


def test_objects_as_uploaded_are_confirmed(store: LocalStore) -> None:
    confirm_listed(store, PREFIX, upload(store))


def test_a_same_size_rewrite_since_the_upload_is_refused(store: LocalStore) -> None:
    records = upload(store)
    rewrite(store, records[1])
    with pytest.raises(IntegrityFailure, match=f"{records[1].key} was rewritten") as caught:
        confirm_listed(store, PREFIX, records)
    assert caught.value.exit_code == 4
    assert caught.value.hint == "no manifest was written"


def test_the_etag_is_compared_as_servers_spell_it(store: LocalStore) -> None:
    """Quotes and case are not a rewrite (listing.py's rules)."""
    records = upload(store)
    assert records[0].etag is not None
    spelled = [replace(records[0], etag=records[0].etag.strip('"').upper()), records[1]]
    confirm_listed(store, PREFIX, spelled)


def test_records_without_an_etag_are_confirmed_by_size(store: LocalStore) -> None:
    records = [replace(r, etag=None) for r in upload(store)]
    rewrite(store, records[0])
    confirm_listed(store, PREFIX, records)


def test_an_object_moved_to_a_colder_class_is_not_judged_by_etag(store: LocalStore) -> None:
    records = upload(store)
    time.sleep(0.02)
    store.set_storage_class(records[0].key, StorageClass.GLACIER)
    confirm_listed(store, PREFIX, records)


def test_a_missing_object_and_a_prune_claim_are_still_refused(store: LocalStore) -> None:
    records = upload(store)
    store.delete([records[0].key])
    with pytest.raises(IntegrityFailure, match="missing"):
        confirm_listed(store, PREFIX, records)
    records = upload(store)
    store.put_bytes(PREFIX + PRUNE_CLAIM, b"{}")
    with pytest.raises(IntegrityFailure, match="prune"):
        confirm_listed(store, PREFIX, records)
