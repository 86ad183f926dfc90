"""The catalog over a ``file://`` LocalStore with synthetic backups (no server).

``ColdStore`` below is a LocalStore that enforces archive classes like S3 does (archived
objects unreadable until restored): LocalStore records classes without enforcing them, and
no S3 server is available in unit tests. The integration tests cover the real S3 behaviour.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datatier.backup.archive import archive_execute, archive_plan
from datatier.backup.catalog import BackupState, Catalog, locate, store_urls
from datatier.backup.manifest import (
    Manifest,
    ObjectRecord,
    TableRecord,
    backup_prefix,
    manifest_key,
    new_backup_id,
)
from datatier.backup.policy import (
    ArchiveClass,
    ArchiveSettings,
    Policy,
    PolicyFile,
    RetentionSettings,
    StorageSettings,
)
from datatier.backup.prune import prune_execute, prune_plan
from datatier.errors import IntegrityFailure, NotReadyYet, UsageError
from datatier.storage.base import ObjectInfo, RestoreState, RestoreTier, StorageClass
from datatier.storage.local import LocalStore

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class ColdStore(LocalStore):
    """Archived objects report no restore and cannot be read (as on S3 before a restore)."""

    def _cold(self, info: ObjectInfo) -> ObjectInfo:
        if info.is_archived:
            return ObjectInfo(info.key, info.size, info.storage_class, restore=RestoreState.NONE)
        return info

    def head(self, key: str, *, tags: bool = False) -> ObjectInfo:
        return self._cold(super().head(key, tags=tags))

    def iter_read(self, key: str, chunk_size: int = 1024) -> Iterator[bytes]:
        if self.head(key).is_archived:
            raise NotReadyYet(f"{key} is archived")
        return super().iter_read(key, chunk_size)


class RecordingStore(LocalStore):
    """Records delete calls; can fail the N-th one (an interrupted prune)."""

    def __init__(self, root: Path, fail_at: int | None = None) -> None:
        super().__init__(root)
        self.deletes: list[list[str]] = []
        self.fail_at = fail_at

    def delete(self, keys: Iterable[str]) -> None:
        batch = list(keys)
        self.deletes.append(batch)
        if self.fail_at is not None and len(self.deletes) == self.fail_at:
            raise OSError("interrupted")
        super().delete(batch)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_backup(
    store: LocalStore,
    policy: str,
    when: datetime,
    *,
    objects: int = 2,
    storage_class: str = "STANDARD",
    with_manifest: bool = True,
    payloads: tuple[bytes, ...] = (),
    etags: bool = False,
) -> Manifest:
    """Store a synthetic backup (a schema object and ``objects - 1`` data parts, then the
    manifest) and return its manifest; ``payloads`` gives the objects' bytes (default:
    ``objects`` small ones); ``etags``: record each object's ETag (as a backup run does;
    without, the manifest is one written before ETags were recorded)."""
    backup_id = new_backup_id(when)
    prefix = backup_prefix(policy, backup_id)
    records = []
    count = len(payloads) or objects
    for part in range(count):
        data = payloads[part] if payloads else f"{backup_id} part {part}\n".encode() * 40
        leaf = f"data-{part:05d}.sql.zst" if part else "schema.sql.zst"
        key = f"{prefix}data/shop/orders/{leaf}"
        info = store.put_bytes(key, data, storage_class=StorageClass(storage_class))
        digest = hashlib.sha256(data).hexdigest()
        records.append(
            ObjectRecord(
                key,
                "data" if part else "schema",
                len(data),
                digest,
                len(data) * 3,
                storage_class,
                "shop",
                "orders",
                part,
                10 if part else 0,
                etag=info.etag if etags else None,
            )
        )
    manifest = Manifest(
        policy=policy,
        backup_id=backup_id,
        engine="mysql",
        tool_version="test",
        started_at=iso(when),
        finished_at=iso(when + timedelta(minutes=1)),
        source={"node": "replica1", "server_version": "11.4"},
        consistency={"gtid": "0-1-42"},
        objects=records,
        tables=[TableRecord("shop", "orders", 10 * (count - 1), "ab" * 32, 400 * count)],
        timings={"total_seconds": 60.0},
    )
    if with_manifest:
        store.put_bytes(manifest_key(policy, backup_id), manifest.encode())
    return manifest


def make_policy(
    name: str,
    store: LocalStore,
    *,
    keep_last: int = 1,
    min_age_days: float = 0,
    archive_after_days: int = 0,
    archive_class: ArchiveClass = "GLACIER",
    min_object_kb: int = 0,
) -> Policy:
    spec = PolicyFile(
        retention=RetentionSettings(keep_last=keep_last, min_age_days=min_age_days),
        storage=StorageSettings(archive_class=archive_class, archive_after_days=archive_after_days),
        archive=ArchiveSettings(min_object_kb=min_object_kb),
    )
    return Policy(name, Path(f"/nonexistent/{name}.toml"), spec, store.url)


def age_files(store: LocalStore, prefix: str, when: datetime) -> None:
    """Set the modification time of every file under ``prefix`` (incl. temp files)."""
    for path in (store.root / prefix).rglob("*"):
        os.utime(path, (when.timestamp(), when.timestamp()))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


# -- listing ------------------------------------------------------------------------------


def test_listing_shows_complete_backups_and_hides_the_rest(store: LocalStore) -> None:
    a = make_backup(store, "shop", NOW - timedelta(days=2))
    b = make_backup(store, "shop", NOW - timedelta(days=1), objects=3)
    partial = make_backup(store, "shop", NOW - timedelta(hours=1), with_manifest=False)
    broken = make_backup(store, "shop", NOW - timedelta(hours=2))
    store.put_bytes(manifest_key("shop", broken.backup_id), b"{not json")
    other = make_backup(store, "crm", NOW - timedelta(days=3))
    store.put_bytes("README.txt", b"not a backup")
    store.put_bytes("shop/not-an-id/data/x", b"ignored")

    catalog = Catalog(store)
    assert [e.backup_id for e in catalog.backups("shop")] == [a.backup_id, b.backup_id]
    every = {e.backup_id: e for e in catalog.backups("shop", include_all=True)}
    assert every[partial.backup_id].state is BackupState.INCOMPLETE
    assert every[broken.backup_id].state is BackupState.UNREADABLE
    assert "unreadable manifest" in (every[broken.backup_id].problem or "")
    assert [(e.policy, e.backup_id) for e in catalog.backups()] == [
        ("crm", other.backup_id),
        ("shop", a.backup_id),
        ("shop", b.backup_id),
    ]
    entry = every[b.backup_id]
    assert entry.manifest is not None and entry.manifest.backup_id == b.backup_id
    assert entry.bytes == b.total_bytes and len(entry.data_objects) == 3
    assert entry.storage_classes() == {"STANDARD": 3}
    assert entry.created_at == NOW - timedelta(days=1)


def test_live_storage_classes_come_from_the_listing(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW - timedelta(days=1), objects=3)
    store.set_storage_class(m.objects[0].key, StorageClass.GLACIER)
    (entry,) = Catalog(store).backups("shop")
    assert entry.storage_classes() == {"GLACIER": 1, "STANDARD": 2}
    assert m.storage_classes() == {"STANDARD": 3}  # as recorded at backup time


def test_a_manifest_naming_another_backup_is_unreadable(store: LocalStore) -> None:
    a = make_backup(store, "shop", NOW - timedelta(days=2))
    b = make_backup(store, "shop", NOW - timedelta(days=1))
    store.put_bytes(manifest_key("shop", b.backup_id), a.encode())
    every = {e.backup_id: e for e in Catalog(store).backups("shop", include_all=True)}
    assert every[b.backup_id].state is BackupState.UNREADABLE
    assert f"names shop/{a.backup_id}" in (every[b.backup_id].problem or "")


def test_an_empty_store_and_bad_policy_names(store: LocalStore) -> None:
    assert Catalog(store).backups() == []
    with pytest.raises(UsageError, match="not a policy name"):
        Catalog(store).backups("../etc")


# -- lookup -------------------------------------------------------------------------------


def test_locate_finds_by_id_with_or_without_policy(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW)
    for catalog in (Catalog(store, ["crm", "shop"]), Catalog(store)):  # configured or searched
        found, manifest = locate([catalog], m.backup_id)
        assert found is catalog and manifest.backup_id == m.backup_id
    _, manifest = locate([Catalog(store)], m.backup_id, "shop")
    assert manifest.objects == m.objects


class ListingSpy(LocalStore):
    """A real local store that records the prefixes it is asked to list."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listed: list[str] = []

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.listed.append(prefix)
        return super().list_objects(prefix)


def test_locate_looks_up_configured_policies_of_every_store_before_searching_one(
    store: LocalStore, tmp_path: Path
) -> None:
    """A backup of a configured policy in the second store is found without listing the
    first store whole (which lists every object of every backup in it)."""
    first = ListingSpy(tmp_path / "first")
    make_backup(first, "other", NOW)
    m = make_backup(store, "shop", NOW)
    found, manifest = locate([Catalog(first, ["shop"]), Catalog(store, ["shop"])], m.backup_id)
    assert found.store is store and manifest.backup_id == m.backup_id
    assert first.listed == [f"shop/{m.backup_id}/"]
    other = make_backup(first, "other", NOW - timedelta(hours=1))  # no policy names it
    found, _ = locate([Catalog(first, ["shop"]), Catalog(store, ["shop"])], other.backup_id)
    assert found.store is first and "" in first.listed


def test_unknown_and_malformed_ids_are_usage_errors(store: LocalStore) -> None:
    make_backup(store, "shop", NOW)
    unknown = new_backup_id(NOW - timedelta(days=9))
    with pytest.raises(UsageError) as err:
        locate([Catalog(store, ["shop"])], unknown)
    assert err.value.exit_code == 2
    assert f"no backup {unknown} in {store.url}" in str(err.value)
    with pytest.raises(UsageError, match="not a backup ID"):
        locate([Catalog(store)], "latest")
    with pytest.raises(UsageError, match="of policy crm"):
        locate([Catalog(store)], unknown, "crm")


def test_incomplete_and_unreadable_backups_cannot_be_located(store: LocalStore) -> None:
    partial = make_backup(store, "shop", NOW, with_manifest=False)
    with pytest.raises(UsageError, match="incomplete"):
        locate([Catalog(store)], partial.backup_id)
    broken = make_backup(store, "shop", NOW - timedelta(hours=1))
    store.put_bytes(manifest_key("shop", broken.backup_id), b"[]")
    with pytest.raises(IntegrityFailure) as err:
        locate([Catalog(store)], broken.backup_id)
    assert err.value.exit_code == 4 and "manifest.json" in str(err.value)


def test_the_same_id_in_two_policies_needs_a_policy(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW)
    twin = Manifest(**{**m.__dict__, "policy": "crm"})
    store.put_bytes(manifest_key("crm", m.backup_id), twin.encode())
    with pytest.raises(UsageError, match="several policies"):
        locate([Catalog(store)], m.backup_id)
    assert locate([Catalog(store)], m.backup_id, "crm")[1].policy == "crm"


# -- verify -------------------------------------------------------------------------------


def test_verify_reads_every_object(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW, objects=4)
    seen: list[str] = []
    report = Catalog(store).verify(m, lambda key, size: seen.append(key))
    assert report.objects == 4 and report.bytes == m.total_bytes
    assert seen == [o.key for o in m.objects]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: bytes([d[0] ^ 1]) + d[1:], "SHA-256 mismatch"),
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d + b"x", "manifest says"),
    ],
    ids=["corrupt", "truncated", "extended"],
)
def test_verify_names_the_first_damaged_object(
    store: LocalStore, damage: Callable[[bytes], bytes], message: str
) -> None:
    m = make_backup(store, "shop", NOW, objects=3)
    bad = m.objects[1].key
    store.put_bytes(bad, damage(store.get_bytes(bad)))
    with pytest.raises(IntegrityFailure) as err:
        Catalog(store).verify(m)
    assert err.value.exit_code == 4
    assert bad in str(err.value) and message in str(err.value)


def test_verify_reports_a_missing_object(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW)
    store.delete([m.objects[0].key])
    with pytest.raises(IntegrityFailure, match=f"{m.objects[0].key} is missing"):
        Catalog(store).verify(m)


def test_verify_rejects_a_manifest_pointing_outside_its_backup(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW)
    other = make_backup(store, "shop", NOW - timedelta(days=1))
    m.objects[0] = other.objects[0]
    with pytest.raises(IntegrityFailure, match="outside"):
        Catalog(store).verify(m)


def test_verify_of_an_archived_backup_is_not_ready(tmp_path: Path) -> None:
    cold = ColdStore(tmp_path / "cold")
    m = make_backup(cold, "shop", NOW, objects=3)
    cold.set_storage_class(m.objects[2].key, StorageClass.DEEP_ARCHIVE)
    with pytest.raises(NotReadyYet) as err:
        Catalog(cold).verify(m)
    assert err.value.exit_code == 5
    text = str(err.value)
    assert "1 of 3 objects" in text and "DEEP_ARCHIVE" in text and m.objects[2].key in text
    assert "restore" in text


class BarrierStore(LocalStore):
    """Each read waits until ``parties`` reads are under way at once: only a parallel reader
    gets past it (a sequential one breaks the barrier after its timeout)."""

    def __init__(self, root: Path, parties: int) -> None:
        super().__init__(root)
        self.barrier = threading.Barrier(parties, timeout=5)

    def iter_read(self, key: str, chunk_size: int = 1024) -> Iterator[bytes]:
        self.barrier.wait()
        return super().iter_read(key, chunk_size)


def test_verify_reads_objects_in_parallel_and_reports_them_in_order(tmp_path: Path) -> None:
    store = BarrierStore(tmp_path / "store", parties=4)
    m = make_backup(store, "shop", NOW, objects=4)
    seen: list[str] = []
    report = Catalog(store).verify(m, lambda key, size: seen.append(key), jobs=4)
    assert report.objects == 4 and report.bytes == m.total_bytes
    assert seen == [o.key for o in m.objects]


class RequestingColdStore(ColdStore):
    """A ColdStore that records restore requests (an archived object stays unreadable)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.requests: list[str] = []

    def request_restore(
        self, key: str, *, days: int, tier: RestoreTier = RestoreTier.STANDARD
    ) -> ObjectInfo:
        self.requests.append(key)
        return self.head(key)


def test_request_restore_asks_for_each_archived_object_once(tmp_path: Path) -> None:
    cold = RequestingColdStore(tmp_path / "cold")
    m = make_backup(cold, "shop", NOW, objects=3)
    for obj in m.objects[1:]:
        cold.set_storage_class(obj.key, StorageClass.GLACIER)
    waiting = Catalog(cold).request_restore(m)
    assert cold.requests == [o.key for o in m.objects[1:]]
    assert [w.key for w in waiting] == [o.key for o in m.objects[1:]]


def test_request_restore_of_a_damaged_backup_asks_for_nothing(tmp_path: Path) -> None:
    cold = RequestingColdStore(tmp_path / "cold")
    m = make_backup(cold, "shop", NOW, objects=3)
    cold.set_storage_class(m.objects[2].key, StorageClass.GLACIER)
    cold.delete([m.objects[1].key])
    with pytest.raises(IntegrityFailure, match=f"{m.objects[1].key} is missing"):
        Catalog(cold).request_restore(m)
    assert cold.requests == []


# -- prune --------------------------------------------------------------------------------


def test_prune_plan_follows_retention_and_changes_nothing(store: LocalStore) -> None:
    ms = [make_backup(store, "shop", NOW - timedelta(days=d)) for d in (5, 4, 3, 2, 1)]
    before = sorted(p for p in store.root.rglob("*"))
    plan = prune_plan(Catalog(store), make_policy("shop", store, keep_last=2), NOW)
    assert [k.backup_id for k in plan.keep] == [ms[4].backup_id, ms[3].backup_id]
    assert plan.keep[0].reasons[0] == "newest"
    assert [t.backup_id for t in plan.delete] == [m.backup_id for m in ms[2::-1]]
    assert plan.bytes_freed == sum(m.total_bytes for m in ms[:3])
    assert sorted(p for p in store.root.rglob("*")) == before


def test_prune_execute_deletes_manifest_first_then_data(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "store")
    old = make_backup(store, "shop", NOW - timedelta(days=3))
    new = make_backup(store, "shop", NOW - timedelta(days=1))
    catalog = Catalog(store)
    result = prune_execute(catalog, prune_plan(catalog, make_policy("shop", store), NOW))
    assert result.backups == 1 and result.objects == 3 and result.bytes == old.total_bytes
    assert store.deletes[0] == [manifest_key("shop", old.backup_id)]
    assert sorted(store.deletes[1]) == sorted(o.key for o in old.objects)
    assert [e.backup_id for e in catalog.backups(include_all=True)] == [new.backup_id]
    assert not (store.root / "shop" / old.backup_id).exists()


def test_an_interrupted_prune_leaves_an_incomplete_backup_not_a_broken_one(
    tmp_path: Path,
) -> None:
    store = RecordingStore(tmp_path / "store", fail_at=2)  # dies after the manifest delete
    old = make_backup(store, "shop", NOW - timedelta(days=3))
    make_backup(store, "shop", NOW - timedelta(days=1))
    catalog = Catalog(store)
    with pytest.raises(OSError, match="interrupted"):
        prune_execute(catalog, prune_plan(catalog, make_policy("shop", store), NOW))
    states = {e.backup_id: e.state for e in catalog.backups(include_all=True)}
    assert states[old.backup_id] is BackupState.INCOMPLETE
    assert old.backup_id not in {e.backup_id for e in catalog.backups()}


def test_min_age_and_the_newest_are_always_kept(store: LocalStore) -> None:
    ms = [make_backup(store, "shop", NOW - timedelta(days=d)) for d in (30, 20, 0.5, 0.2)]
    plan = prune_plan(Catalog(store), make_policy("shop", store, min_age_days=1), NOW)
    assert {k.backup_id for k in plan.keep} == {ms[2].backup_id, ms[3].backup_id}
    # A single, ancient backup is never pruned.
    lone = LocalStore(store.root.parent / "lone")
    m = make_backup(lone, "shop", NOW - timedelta(days=900))
    plan = prune_plan(Catalog(lone), make_policy("shop", lone), NOW)
    assert [k.backup_id for k in plan.keep] == [m.backup_id] and plan.delete == []


def test_prune_refuses_when_a_manifest_is_unreadable(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "store")
    for d in (4, 3, 2, 1):
        make_backup(store, "shop", NOW - timedelta(days=d))
    broken = make_backup(store, "shop", NOW - timedelta(days=5))
    store.put_bytes(manifest_key("shop", broken.backup_id), b"\x00garbage")
    with pytest.raises(IntegrityFailure) as err:
        prune_plan(Catalog(store), make_policy("shop", store), NOW)
    assert "refusing to prune shop" in str(err.value) and broken.backup_id in str(err.value)
    assert store.deletes == []
    # Another policy in the same store is unaffected.
    make_backup(store, "crm", NOW - timedelta(days=1))
    prune_plan(Catalog(store), make_policy("crm", store), NOW)


def test_prune_removes_old_incomplete_leftovers_and_spares_recent_ones(store: LocalStore) -> None:
    keep = make_backup(store, "shop", NOW - timedelta(days=1))
    stale = make_backup(store, "shop", NOW - timedelta(days=2), with_manifest=False)
    age_files(store, f"shop/{stale.backup_id}", NOW - timedelta(days=2))
    running = make_backup(store, "shop", NOW - timedelta(days=3), with_manifest=False)
    age_files(store, f"shop/{running.backup_id}", NOW - timedelta(hours=1))  # still writing
    temps = {}
    for name, m in (
        ("stale", stale),
        ("running", running),
        ("crm", make_backup(store, "crm", NOW)),
    ):
        tmp = store.root / m.policy / m.backup_id / "data" / ".datatier-tmp.abcd1234.x.sql.zst"
        tmp.write_bytes(b"partial")
        os.utime(tmp, ((NOW - timedelta(days=1)).timestamp(),) * 2)
        temps[name] = tmp
    catalog = Catalog(store)
    plan = prune_plan(catalog, make_policy("shop", store), NOW)
    assert [k.backup_id for k in plan.keep] == [keep.backup_id]
    assert [(t.backup_id, t.state) for t in plan.delete] == [
        (stale.backup_id, BackupState.INCOMPLETE)
    ]
    assert "incomplete, last written 48.0 h ago" in plan.delete[0].reason
    assert [t.backup_id for t in plan.spared] == [running.backup_id]
    # The running backup's upload is spared although it started long ago.
    assert [u.key for u in plan.uploads] == [f"shop/{stale.backup_id}/data/x.sql.zst"]
    short = prune_plan(catalog, make_policy("shop", store), NOW, grace=timedelta(minutes=30))
    assert {t.backup_id for t in short.delete} == {stale.backup_id, running.backup_id}
    assert len(short.uploads) == 2
    result = prune_execute(catalog, plan)
    assert result.uploads_aborted == 1
    assert [t.exists() for t in temps.values()] == [False, True, True]
    left = {e.backup_id for e in catalog.backups("shop", include_all=True)}
    assert left == {keep.backup_id, running.backup_id}


# -- objects rewritten since their backup (ETags) -----------------------------------------


def touch(store: LocalStore, key: str) -> None:
    """Move ``key``'s modification time on by 1 ms, its bytes unchanged (what a copy of the
    store that does not keep times does)."""
    path = store.root / key
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_a_same_size_rewrite_makes_a_backup_damaged_and_prune_keeps_the_intact_one(
    store: LocalStore,
) -> None:
    """The file:// form of tester4's finding: keep_last = 1, the newest backup's data object
    overwritten with other bytes of its size. It is damaged (never counted), so prune keeps
    the older intact backup instead of deleting the only one that verifies."""
    good = make_backup(store, "shop", NOW - timedelta(days=2), etags=True)
    newest = make_backup(store, "shop", NOW - timedelta(days=1), etags=True)
    victim = newest.objects[1]
    time.sleep(0.05)  # file times advance with the kernel's coarse clock
    store.put_bytes(victim.key, os.urandom(victim.size))
    catalog = Catalog(store)
    entry = catalog.lookup(newest.backup_id, "shop")
    assert entry is not None and entry.state is BackupState.DAMAGED and entry.rewritten
    assert entry.problem is not None and f"{victim.key} was rewritten" in entry.problem
    assert [e.backup_id for e in catalog.backups()] == [good.backup_id]
    plan = prune_plan(catalog, make_policy("shop", store, keep_last=1), NOW)
    assert [k.backup_id for k in plan.keep] == [good.backup_id] and plan.delete == []
    assert [d.backup_id for d in plan.damaged] == [newest.backup_id]
    prune_execute(catalog, plan)
    assert catalog.verify(good).objects == len(good.objects)
    with pytest.raises(IntegrityFailure, match="SHA-256 mismatch"):
        catalog.verify(newest)


def test_a_rewritten_object_with_the_same_bytes_is_damaged_but_verifies(
    store: LocalStore,
) -> None:
    m = make_backup(store, "shop", NOW, etags=True)
    touch(store, m.objects[1].key)
    entry = Catalog(store).lookup(m.backup_id, "shop")
    assert entry is not None and entry.state is BackupState.DAMAGED and entry.rewritten
    assert Catalog(store).verify(m).objects == len(m.objects)  # the bytes decide


def test_a_store_copied_keeping_times_keeps_its_backups_complete(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW, etags=True)
    copy = LocalStore(store.root.parent / "copy")
    shutil.copytree(store.root, copy.root)  # copy2: times kept (cp -a, rsync -a)
    assert [e.backup_id for e in Catalog(copy).backups()] == [m.backup_id]


def test_a_manifest_without_etags_is_judged_by_size_only(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW)  # written before ETags were recorded
    time.sleep(0.05)
    store.put_bytes(m.objects[1].key, os.urandom(m.objects[1].size))
    assert [e.backup_id for e in Catalog(store).backups()] == [m.backup_id]


def test_prune_deletes_a_rewritten_backup_only_when_retention_would_were_it_intact(
    store: LocalStore,
) -> None:
    """Every object of the two older backups got a new time (a store copied without its
    times): prune keeps the one keep_last = 2 would keep were it intact, deletes the other;
    the rule for other damaged backups (older than every kept good one) would delete both."""
    old, mid = (make_backup(store, "shop", NOW - timedelta(days=d), etags=True) for d in (3, 2))
    for m in (old, mid):
        for obj in m.objects:
            touch(store, obj.key)
    new = make_backup(store, "shop", NOW - timedelta(days=1), etags=True)
    plan = prune_plan(Catalog(store), make_policy("shop", store, keep_last=2), NOW)
    assert [k.backup_id for k in plan.keep] == [new.backup_id]
    assert [t.backup_id for t in plan.delete] == [old.backup_id]
    assert "not kept by retention even if intact" in plan.delete[0].reason
    assert [d.backup_id for d in plan.damaged] == [mid.backup_id]


# -- archive ------------------------------------------------------------------------------


def test_archive_moves_old_data_objects_but_never_manifests(store: LocalStore) -> None:
    old = make_backup(store, "shop", NOW - timedelta(days=40))
    cold = make_backup(store, "shop", NOW - timedelta(days=35), storage_class="GLACIER")
    new = make_backup(store, "shop", NOW - timedelta(days=5))
    catalog = Catalog(store)
    policy = make_policy("shop", store, archive_after_days=30)
    plan = archive_plan(catalog, policy, NOW)
    assert sorted(m.key for m in plan.moves) == sorted(o.key for o in old.objects)
    assert plan.target == "GLACIER" and plan.bytes == old.total_bytes
    assert archive_execute(catalog, plan) == 2
    for m in (old, cold):
        assert store.head(manifest_key("shop", m.backup_id)).storage_class == "STANDARD"
        assert {store.head(o.key).storage_class for o in m.objects} == {"GLACIER"}
    assert {store.head(o.key).storage_class for o in new.objects} == {"STANDARD"}
    assert archive_plan(catalog, policy, NOW).moves == []  # idempotent
    later = archive_plan(catalog, policy, NOW + timedelta(days=30))
    assert later.moves == [] and later.newest_kept == new.backup_id  # the newest stays
    newer = make_backup(store, "shop", NOW - timedelta(days=1))
    later = archive_plan(catalog, policy, NOW + timedelta(days=32))
    assert sorted(m.key for m in later.moves) == sorted(o.key for o in new.objects)
    assert later.newest_kept == newer.backup_id


def test_archive_leaves_small_objects_and_the_newest_backup(store: LocalStore) -> None:
    """Objects under archive.min_object_kb (default 128 KiB, as S3 lifecycle) stay
    STANDARD: in Glacier each would cost more than it saves."""
    big = b"x" * (130 * 1024)
    old = make_backup(store, "shop", NOW - timedelta(days=40), payloads=(big, b"tiny"))
    newest = make_backup(store, "shop", NOW - timedelta(days=35), payloads=(big, b"tiny"))
    policy = make_policy("shop", store, archive_after_days=30, min_object_kb=128)
    plan = archive_plan(Catalog(store), policy, NOW)
    assert [m.key for m in plan.moves] == [old.objects[0].key]  # the big one of the old
    assert plan.small_kept == 1 and plan.newest_kept == newest.backup_id
    assert PolicyFile().archive.min_object_kb == 128


def test_archive_after_zero_days_means_never(store: LocalStore) -> None:
    make_backup(store, "shop", NOW - timedelta(days=400))
    plan = archive_plan(Catalog(store), make_policy("shop", store), NOW)
    assert plan.moves == [] and plan.after_days == 0


def test_an_incomplete_backup_dated_after_now_is_aged_by_its_objects(store: LocalStore) -> None:
    """Its ID came from a clock ahead: the objects' times decide; none known or all after
    now (a local store written by that clock): its age cannot be told and it is spared."""
    make_backup(store, "shop", NOW - timedelta(days=1))
    stale = make_backup(store, "shop", NOW + timedelta(days=365), with_manifest=False)
    age_files(store, f"shop/{stale.backup_id}", NOW - timedelta(days=2))
    fresh = make_backup(store, "shop", NOW + timedelta(days=300), with_manifest=False)
    age_files(store, f"shop/{fresh.backup_id}", NOW - timedelta(hours=1))
    ahead = make_backup(store, "shop", NOW + timedelta(days=200), with_manifest=False)
    age_files(store, f"shop/{ahead.backup_id}", NOW + timedelta(days=200))
    complete = make_backup(store, "shop", NOW + timedelta(days=100))
    age_files(store, f"shop/{complete.backup_id}", NOW - timedelta(days=30))
    plan = prune_plan(Catalog(store), make_policy("shop", store), NOW)
    assert [t.backup_id for t in plan.delete] == [stale.backup_id]
    assert "last written 48.0 h ago (its ID is dated after now" in plan.delete[0].reason
    assert {t.backup_id for t in plan.spared} == {fresh.backup_id, ahead.backup_id}
    assert complete.backup_id in {k.backup_id for k in plan.keep}


def test_archive_skips_incomplete_and_unreadable_backups(store: LocalStore) -> None:
    make_backup(store, "shop", NOW - timedelta(days=40), with_manifest=False)
    broken = make_backup(store, "shop", NOW - timedelta(days=41))
    store.put_bytes(manifest_key("shop", broken.backup_id), b"")
    policy = make_policy("shop", store, archive_after_days=1, archive_class="DEEP_ARCHIVE")
    plan = archive_plan(Catalog(store), policy, NOW)
    assert plan.moves == [] and len(plan.skipped) == 2


def test_store_urls_are_distinct_and_include_the_default(store: LocalStore) -> None:
    a = make_policy("a", store)
    b = Policy("b", Path("b.toml"), PolicyFile(), "s3://bucket/x")
    c = Policy("c", Path("c.toml"), PolicyFile(), store.url)
    assert store_urls([a, b, c], "s3://bucket/x") == ["s3://bucket/x", store.url]
    assert store_urls([], None) == []


def test_manifest_json_round_trip_is_what_the_catalog_reads(store: LocalStore) -> None:
    m = make_backup(store, "shop", NOW)
    doc = json.loads(store.get_bytes(manifest_key("shop", m.backup_id)))
    assert doc["backup_id"] == m.backup_id
    (entry,) = Catalog(store).backups()
    assert entry.manifest == m


# -- the CLI over a file:// store -----------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> tuple[Path, LocalStore]:
    """A config whose default store is a local directory, with policy ``shop``."""
    store = LocalStore(tmp_path / "store")
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "shop.toml").write_text(
        'engine = "mysql"\n[source]\nnode = "replica1"\n'
        "[retention]\nkeep_last = 1\nmin_age_days = 0\n"
        '[storage]\narchive_class = "GLACIER"\narchive_after_days = 30\n'
        "[archive]\nmin_object_kb = 0\n"
    )
    config = tmp_path / "datatier.toml"
    config.write_text(
        f'[backup]\npolicies_dir = "backups"\ndefault_store = "{store.url}"\n'
        "[mysql.nodes.replica1]\n"  # the policy's source must be a configured node
    )
    return config, store


def run_cli(config: Path, *args: str) -> int:
    from datatier.cli import main

    return main(["--config", str(config), "backups", *args])


def test_cli_list_show_verify_prune_archive(
    cli_env: tuple[Path, LocalStore], capsys: pytest.CaptureFixture[str]
) -> None:
    config, store = cli_env
    now = datetime.now(UTC)
    old = make_backup(store, "shop", now - timedelta(days=40))
    new = make_backup(store, "shop", now - timedelta(days=1))
    make_backup(store, "shop", now - timedelta(hours=1), with_manifest=False)

    assert run_cli(config, "list", "--json") == 0
    out = capsys.readouterr()
    listed = json.loads(out.out)
    rows = listed["backups"]
    assert [r["id"] for r in rows] == [old.backup_id, new.backup_id]
    assert {"id", "policy", "engine", "started_at", "finished_at", "bytes",
            "storage_classes", "state"} <= set(rows[0])  # fmt: skip
    assert listed["count"] == 2 and listed["not_shown"] == {"incomplete": 1}
    assert "1 incomplete" in out.err
    assert run_cli(config, "list", "shop", "--all") == 0
    assert "incomplete" in capsys.readouterr().out

    assert run_cli(config, "show", new.backup_id, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["consistency"] == {"gtid": "0-1-42"} and doc["tables"][0]["rows"] == 10
    assert doc["objects"]["by_kind"]["data"]["count"] == 1
    assert run_cli(config, "show", new.backup_id) == 0
    assert "gtid=0-1-42" in capsys.readouterr().out

    assert run_cli(config, "verify", new.backup_id) == 0
    assert capsys.readouterr().out.startswith(f"OK shop/{new.backup_id}")

    assert run_cli(config, "archive", "--json") == 0
    archived = json.loads(capsys.readouterr().out)
    (plan,) = archived["policies"]
    assert len(plan["objects"]) == 2 and plan["executed"] is False
    assert archived["objects"] == 2 and archived["moved"] == 0 and archived["executed"] is False
    assert archived["bytes"] == plan["bytes"] > 0
    assert run_cli(config, "archive", "shop", "--execute", "--now", "2999-01-01") == 0
    assert "re-classed 2 object(s)" in capsys.readouterr().out  # the newest stays
    assert store.head(manifest_key("shop", new.backup_id)).storage_class == "STANDARD"

    assert run_cli(config, "prune", "shop") == 0
    assert "dry run" in capsys.readouterr().out
    assert len(Catalog(store).backups()) == 2
    assert run_cli(config, "prune", "shop", "--execute", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in doc["delete"]] == [old.backup_id] and doc["executed"]
    assert [e.backup_id for e in Catalog(store).backups()] == [new.backup_id]


def test_cli_errors_have_their_exit_codes(
    cli_env: tuple[Path, LocalStore], capsys: pytest.CaptureFixture[str]
) -> None:
    config, store = cli_env
    m = make_backup(store, "shop", datetime.now(UTC))
    store.put_bytes(m.objects[0].key, b"x" * m.objects[0].size)
    assert run_cli(config, "verify", m.backup_id, "--json") == 4
    out = capsys.readouterr()
    assert json.loads(out.out)["ok"] is False and m.objects[0].key in out.err
    unknown = new_backup_id(datetime(2020, 1, 1, tzinfo=UTC))
    assert run_cli(config, "show", unknown) == 2
    assert f"no backup {unknown}" in capsys.readouterr().err
    assert run_cli(config, "verify", "nonsense") == 2
    assert run_cli(config, "archive", "--now", "yesterday") == 2
    assert run_cli(config, "prune", "nosuchpolicy") == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 3
