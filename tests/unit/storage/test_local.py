"""LocalStore (file://) and store URL parsing; no servers needed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datatier.errors import OperationFailed, UsageError
from datatier.storage import (
    ObjectNotFound,
    RestoreState,
    S3Settings,
    StorageClass,
    open_store,
)
from datatier.storage.local import LocalStore
from datatier.storage.s3 import S3Store


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_round_trip_and_progress(store: LocalStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    seen: list[int] = []
    chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))
    info = store.put_stream("pol/id/data/db.zst", chunks, on_progress=seen.append)
    assert info.size == len(data) == sum(seen) and info.key == "pol/id/data/db.zst"
    assert info.storage_class == "STANDARD" and info.etag and info.last_modified
    back = list(store.iter_read("pol/id/data/db.zst", chunk_size=1000))
    assert max(len(c) for c in back) == 1000 and b"".join(back) == data
    assert (store.root / "pol/id/data/db.zst").read_bytes() == data  # a plain file
    assert (store.root / "pol/id/data/db.zst").stat().st_mode & 0o777 == 0o600
    assert (store.root / "pol/id").stat().st_mode & 0o777 == 0o700
    assert store.put_bytes("empty", b"").size == 0 and store.get_bytes("empty") == b""


def test_failed_write_leaves_nothing_and_keeps_the_old_object(store: LocalStore) -> None:
    store.put_bytes("k", b"old", metadata={"v": "1"})

    def broken() -> Iterator[bytes]:
        yield b"new data"
        raise RuntimeError("dump failed")

    with pytest.raises(RuntimeError, match="dump failed"):
        store.put_stream("k", broken(), metadata={"v": "2"})
    assert store.get_bytes("k") == b"old" and store.head("k").metadata == {"v": "1"}
    assert files(store.root) == [".datatier-meta.k.json", "k"]
    with pytest.raises(RuntimeError):
        store.put_stream("fresh/obj", broken())
    assert not store.exists("fresh/obj") and list(store.list_incomplete_uploads()) == []


def test_killed_writer_leaves_only_an_incomplete_upload(store: LocalStore) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from datatier.storage.local import LocalStore

        def chunks():
            yield b"x" * 1000
            os.kill(os.getpid(), signal.SIGKILL)
            yield b"never"

        LocalStore(Path({str(store.root)!r})).put_stream("pol/id/data/db.zst", chunks())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert not store.exists("pol/id/data/db.zst") and list(store.list_objects()) == []
    (leftover,) = store.list_incomplete_uploads()
    assert leftover.key == "pol/id/data/db.zst" and leftover.initiated
    assert list(store.list_incomplete_uploads("other/")) == []
    past = datetime.now(UTC) - timedelta(hours=1)
    assert store.abort_incomplete_uploads(initiated_before=past) == 0
    assert store.abort_incomplete_uploads("pol/") == 1
    assert files(store.root) == []


def test_labels_and_storage_classes(store: LocalStore) -> None:
    store.put_bytes("a", b"1", metadata={"sha256": "ff"}, tags={"t": "x"})
    info = store.set_storage_class("a", StorageClass.GLACIER)
    assert info.storage_class == "GLACIER" and info.is_archived
    assert info.readable and info.restore is RestoreState.RESTORED  # recorded, not enforced
    head = store.head("a", tags=True)
    assert head.metadata == {"sha256": "ff"} and head.tags == {"t": "x"}
    assert store.head("a").tags is None
    assert store.request_restore("a", days=1).readable
    assert store.get_bytes("a") == b"1"
    store.put_bytes("a", b"2")  # a plain overwrite drops the labels
    assert store.head("a", tags=True).storage_class == "STANDARD"
    assert files(store.root) == ["a"]
    with pytest.raises(UsageError, match="days"):
        store.request_restore("a", days=0)
    with pytest.raises(UsageError, match="unknown storage class 'COLD'"):
        store.set_storage_class("a", "COLD")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown storage class"):
        store.put_bytes("b", b"", storage_class="COLD")  # type: ignore[arg-type]


def test_stale_sidecar_is_ignored(store: LocalStore) -> None:
    store.put_bytes("a", b"1", storage_class=StorageClass.DEEP_ARCHIVE, metadata={"m": "1"})
    path = store.root / "a"
    replacement = path.with_name("replacement")
    replacement.write_bytes(b"other")
    replacement.replace(path)  # new inode, as after a crash between the two renames
    info = store.head("a")
    assert info.storage_class == "STANDARD" and info.metadata == {}


def test_listing_order_and_hidden_files(store: LocalStore) -> None:
    for key in ["a/b", "a.b", "a-c", "ab", "a/c/d", "b"]:
        store.put_bytes(key, key.encode(), metadata={"k": key})
    (store.root / "a" / ".datatier-tmp.0000.x").write_bytes(b"partial")
    keys = [o.key for o in store.list_objects()]
    assert keys == sorted(keys, key=str.encode) == ["a-c", "a.b", "a/b", "a/c/d", "ab", "b"]
    assert [o.key for o in store.list_objects("a/")] == ["a/b", "a/c/d"]
    assert [o.key for o in store.list_objects("a")] == ["a-c", "a.b", "a/b", "a/c/d", "ab"]
    assert [o.key for o in store.list_objects("a/c")] == ["a/c/d"]
    assert list(store.list_objects("zzz/")) == []
    assert [o.metadata for o in store.list_objects("b")] == [{"k": "b"}]
    assert [u.key for u in store.list_incomplete_uploads()] == ["a/x"]


def test_delete_ignores_missing_and_prunes_dirs(store: LocalStore) -> None:
    store.put_bytes("p/id/data/x", b"1", tags={"t": "1"})
    store.put_bytes("p/keep", b"2")
    store.delete(["p/id/data/x", "p/id/data/missing", "nothing"])
    assert files(store.root) == ["p/keep"]
    with pytest.raises(ObjectNotFound):
        store.head("p/id/data/x")
    with pytest.raises(ObjectNotFound):
        next(store.iter_read("p/id"))
    store.delete(["p/keep"])
    assert store.root.exists() and files(store.root) == []


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "../escape", "a/../../b", "a//b", "a/./b", "a/", "a\nb"],
)
def test_bad_keys_are_refused(store: LocalStore, key: str) -> None:
    with pytest.raises(UsageError, match="object key"):
        store.put_bytes(key, b"x")
    assert not store.root.exists()


NAMES = [".datatier-tmp.x", ".datatier-meta.y.json", ".datatier-h.z", "%E5%BA%93" * 50]


def test_every_valid_segment_is_stored_reversibly(store: LocalStore) -> None:
    """Names that look like the store's own files, and segments longer than a file name
    can be, are stored under hashed names and come back as they were."""
    keys = sorted(
        [f"p/{n}/{m}" for n in NAMES for m in ("schema", NAMES[0])] + ["p/.datatier-name.q"],
        key=str.encode,
    )
    for key in keys:
        store.put_bytes(key, key.encode(), storage_class=StorageClass.GLACIER)
    assert [o.key for o in store.list_objects("p/")] == keys
    for key in keys:
        assert store.get_bytes(key) == key.encode() and store.head(key).storage_class == "GLACIER"
    assert all(len(p.name.encode()) <= 255 for p in store.root.rglob("*"))
    long_dir = f"p/{NAMES[3]}/"
    assert [o.key for o in store.list_objects(long_dir)] == [
        k for k in keys if k.startswith(long_dir)
    ]
    store.delete(keys)
    assert files(store.root) == [], "name files go with their entries"


def test_an_interrupted_write_under_a_hashed_name_is_an_incomplete_upload(
    store: LocalStore,
) -> None:
    key = f"p/{NAMES[3]}/{NAMES[0]}"
    store.put_bytes(key, b"x")
    final = store._path(key)
    (final.parent / f".datatier-tmp.0000.{final.name}").write_bytes(b"partial")
    assert [u.key for u in store.list_incomplete_uploads("p/")] == [key]
    assert store.abort_incomplete_uploads("p/") == 1
    assert [o.key for o in store.list_objects()] == [key]


def test_key_conflicts_with_a_directory(store: LocalStore) -> None:
    store.put_bytes("a/b", b"1")
    with pytest.raises(OperationFailed, match="directory"):
        store.put_bytes("a", b"2")
    store.put_bytes("f", b"1")
    with pytest.raises(OperationFailed, match="parent"):
        store.put_bytes("f/g", b"2")


def test_check(tmp_path: Path) -> None:
    LocalStore(tmp_path / "not" / "yet").check()  # created on first write
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OperationFailed, match="not a writable directory"):
        LocalStore(tmp_path / "file").check()


def test_open_store_urls(tmp_path: Path) -> None:
    local = open_store(f"file://{tmp_path}/backups")
    assert isinstance(local, LocalStore) and local.url == f"file://{tmp_path}/backups"
    assert isinstance(open_store("file://localhost/var/b%20x"), LocalStore)
    s3 = open_store("s3://my-bucket/nightly/", S3Settings(endpoint_url="http://127.0.0.1:1"))
    assert isinstance(s3, S3Store) and s3.url == "s3://my-bucket/nightly"
    assert open_store("s3://my-bucket").url == "s3://my-bucket"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("backups", "use s3://bucket/prefix"),
        ("ftp://host/x", "use s3://bucket/prefix"),
        ("s3://", "missing bucket"),
        ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("s3://ab/x", "not a valid S3 bucket name"),
        ("s3://192.168.0.1/x", "not a valid S3 bucket name"),
        ("s3://bucket/a//b", "segment"),
        ("s3://bucket/a/../b", "segment"),
        ("s3://bucket/x?versionId=1", "query"),
        ("s3://AKIAKEY:s3cr3t@bucket/x", "credentials"),
        ("file://relative/path", "three slashes"),
        ("file:///", "root"),
        ("file:///a/../etc", "segment"),
    ],
)
def test_bad_urls(url: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as err:
        open_store(url)
    assert err.value.exit_code == 2
    assert "s3cr3t" not in str(err.value) and "AKIAKEY" not in str(err.value)


def test_s3_settings_validate_and_hide_secrets() -> None:
    with pytest.raises(UsageError, match="part_size"):
        S3Settings(part_size=1024)
    with pytest.raises(UsageError, match="max_concurrency"):
        S3Settings(max_concurrency=0)
    shown = repr(S3Settings(access_key_id="AKIAVISIBLE", secret_access_key="hidden-secret"))
    assert "hidden-secret" not in shown and "AKIAVISIBLE" not in shown


def test_the_etag_changes_with_a_rewrite_and_survives_a_copy_keeping_times(
    store: LocalStore, tmp_path: Path
) -> None:
    """What the catalog compares with a manifest's recorded ETag (datatier.backup.listing)."""
    first = store.put_bytes("pol/id/data/a.zst", b"x" * 100)
    [listed] = store.list_objects("pol/")
    assert listed.etag == first.etag == store.head("pol/id/data/a.zst").etag
    copy = LocalStore(tmp_path / "copy")
    shutil.copytree(store.root, copy.root)  # new inodes, times kept (cp -a, rsync -a)
    assert copy.head("pol/id/data/a.zst").etag == first.etag
    time.sleep(0.05)  # file times advance with the kernel's coarse clock
    again = store.put_bytes("pol/id/data/a.zst", b"y" * 100)
    assert again.size == first.size and again.etag != first.etag
