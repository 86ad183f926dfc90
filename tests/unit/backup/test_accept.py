""":mod:`datatier.backup.accept` over a ``file://`` LocalStore (``backups verify
--accept-etags``): listed ETags are recorded only when every object's bytes verify."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from datatier.backup import prunelock
from datatier.backup.accept import accept_chain, record_listed, verify_listed
from datatier.backup.catalog import BackupState, Catalog
from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.parents import PRUNE_CLAIM
from datatier.backup.prunelock import PruneLock
from datatier.errors import IntegrityFailure, NotReadyYet
from datatier.storage.local import LocalStore
from tests.unit.backup.test_catalog import make_backup, touch

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def state(store: LocalStore, m: Manifest) -> BackupState:
    entry = Catalog(store).lookup(m.backup_id, m.policy)
    assert entry is not None
    return entry.state


def test_a_byte_identical_rewrite_is_accepted_and_the_backup_is_complete_again(
    store: LocalStore,
) -> None:
    m = make_backup(store, "shop", NOW, objects=3, etags=True)
    touch(store, m.objects[1].key)  # a copy that did not keep times: other ETag, same bytes
    assert state(store, m) is BackupState.DAMAGED
    verified = verify_listed(Catalog(store), m)
    assert verified.changed == [m.objects[1].key]
    written = record_listed(Catalog(store), verified)
    assert written is not None
    assert written.objects[1].etag == store.head(m.objects[1].key).etag
    assert [o.etag for i, o in enumerate(written.objects) if i != 1] == [
        o.etag for i, o in enumerate(m.objects) if i != 1
    ]
    stored = Manifest.decode(store.get_bytes(manifest_key("shop", m.backup_id)), "x")
    assert stored == written
    assert state(store, m) is BackupState.COMPLETE
    assert [e.backup_id for e in Catalog(store).backups()] == [m.backup_id]


def test_other_bytes_are_refused_and_the_manifest_is_left_byte_identical(
    store: LocalStore,
) -> None:
    m = make_backup(store, "shop", NOW, objects=3, etags=True)
    touch(store, m.objects[1].key)
    time.sleep(0.02)
    store.put_bytes(m.objects[2].key, os.urandom(m.objects[2].size))
    key = manifest_key("shop", m.backup_id)
    before = store.get_bytes(key)
    with pytest.raises(IntegrityFailure, match="SHA-256 mismatch") as caught:
        verify_listed(Catalog(store), m)
    assert caught.value.exit_code == 4 and caught.value.hint is not None
    assert "no ETag was accepted" in caught.value.hint
    assert store.get_bytes(key) == before
    assert state(store, m) is BackupState.DAMAGED


def test_nothing_is_written_when_every_etag_matches(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW, etags=True)
    key = manifest_key("shop", m.backup_id)
    mtime = (store.root / key).stat().st_mtime_ns
    verified = verify_listed(Catalog(store), m)
    assert verified.changed == [] and record_listed(Catalog(store), verified) is None
    assert (store.root / key).stat().st_mtime_ns == mtime


def test_a_manifest_written_before_etags_were_recorded_gains_them(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW)
    written = record_listed(Catalog(store), verify_listed(Catalog(store), m))
    assert written is not None
    assert [o.etag for o in written.objects] == [store.head(o.key).etag for o in m.objects]


def test_an_object_rewritten_while_it_is_read_is_refused(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = make_backup(store, "shop", NOW, etags=True)
    catalog = Catalog(store)
    original = catalog.verify

    def verify_then_touch(*args: Any, **kw: Any) -> Any:
        report = original(*args, **kw)
        touch(store, m.objects[0].key)
        return report

    monkeypatch.setattr(catalog, "verify", verify_then_touch)
    with pytest.raises(IntegrityFailure, match="rewritten while it was verified"):
        verify_listed(catalog, m)


def test_a_manifest_changed_since_it_was_verified_is_not_overwritten(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW, etags=True)
    touch(store, m.objects[1].key)
    verified = verify_listed(Catalog(store), m)
    key = manifest_key("shop", m.backup_id)
    other = Manifest.decode(store.get_bytes(key), "x")
    other.options = {"note": "written by someone else"}
    store.put_bytes(key, other.encode())
    with pytest.raises(IntegrityFailure, match="changed while the backup was verified"):
        record_listed(Catalog(store), verified)
    assert Manifest.decode(store.get_bytes(key), "x") == other


def test_a_prune_claim_seen_after_the_write_puts_the_old_manifest_back(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = make_backup(store, "shop", NOW, etags=True)
    touch(store, m.objects[1].key)
    key = manifest_key("shop", m.backup_id)
    before = store.get_bytes(key)
    verified = verify_listed(Catalog(store), m)
    original = store.put_bytes

    def put_then_claim(k: str, data: bytes, **kw: Any) -> Any:
        info = original(k, data, **kw)
        if k == key and data != before:
            original(f"shop/{m.backup_id}/{PRUNE_CLAIM}", b"{}")
        return info

    monkeypatch.setattr(store, "put_bytes", put_then_claim)
    with pytest.raises(IntegrityFailure, match="prune") as caught:
        record_listed(Catalog(store), verified)
    assert caught.value.hint is not None and "unchanged" in caught.value.hint
    assert store.get_bytes(key) == before


def test_a_chain_is_verified_whole_before_any_manifest_is_written(store: LocalStore) -> None:
    """The full backup's copied object would be accepted, but the incremental's object holds
    other bytes: neither manifest changes."""
    full = make_backup(store, "shop", NOW, etags=True)
    incremental = make_backup(store, "shop", NOW + timedelta(hours=1), etags=True)
    touch(store, full.objects[1].key)
    time.sleep(0.02)
    store.put_bytes(incremental.objects[1].key, os.urandom(incremental.objects[1].size))
    keys = [manifest_key("shop", m.backup_id) for m in (full, incremental)]
    before = [store.get_bytes(k) for k in keys]
    with pytest.raises(IntegrityFailure, match="SHA-256 mismatch"):
        accept_chain(Catalog(store), [full, incremental])
    assert [store.get_bytes(k) for k in keys] == before

    store.put_bytes(incremental.objects[1].key, _payload(incremental, 1))  # its bytes again
    reports, accepted = accept_chain(Catalog(store), [full, incremental])
    assert [r.backup_id for r in reports] == [full.backup_id, incremental.backup_id]
    assert accepted == {
        full.backup_id: [full.objects[1].key],
        incremental.backup_id: [incremental.objects[1].key],
    }
    assert [e.backup_id for e in Catalog(store).backups()] == [
        full.backup_id,
        incremental.backup_id,
    ]


def _payload(m: Manifest, part: int) -> bytes:
    """The bytes ``make_backup`` wrote for part ``part`` of ``m``."""
    return f"{m.backup_id} part {part}\n".encode() * 40


def test_a_backup_holding_a_prune_claim_is_not_written_and_says_why(store: LocalStore) -> None:
    """A claim there before the write (a prune killed while deleting the backup, or one
    running): refused naming the claim, the manifest unchanged."""
    m = make_backup(store, "shop", NOW, etags=True)
    touch(store, m.objects[1].key)
    key = manifest_key("shop", m.backup_id)
    before = store.get_bytes(key)
    verified = verify_listed(Catalog(store), m)
    store.put_bytes(f"shop/{m.backup_id}/{PRUNE_CLAIM}", b"{}")
    with pytest.raises(IntegrityFailure, match="claimed this backup for deletion") as caught:
        record_listed(Catalog(store), verified)
    assert caught.value.hint is not None and "next `backups prune`" in caught.value.hint
    assert store.get_bytes(key) == before


def test_accepting_is_refused_while_a_prune_runs_and_leaves_no_lock(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifests are written under the policy's prune lock: while another prune holds
    it (after the lock's few tries), NotReadyYet and nothing written; afterwards the lock
    is released."""
    monkeypatch.setattr(prunelock, "BACKOFF", (0.0, 0.1))
    m = make_backup(store, "shop", NOW, etags=True)
    touch(store, m.objects[1].key)
    key = manifest_key("shop", m.backup_id)
    before = store.get_bytes(key)
    running = PruneLock(store, "shop")
    running.acquire()
    with pytest.raises(NotReadyYet, match="another `backups prune` of shop"):
        accept_chain(Catalog(store), [m])
    assert store.get_bytes(key) == before
    running.release()
    _, accepted = accept_chain(Catalog(store), [m])
    assert accepted == {m.backup_id: [m.objects[1].key]}
    assert list(store.list_objects("shop/_prune/")) == []
