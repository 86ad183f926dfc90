"""ObjectWriter: what it stores for small and large objects, and how many upload at once.

The store is the real local (file) store; ``CountingStore`` only counts the uploads in
flight around it and makes each one last a round trip (no S3 server is involved here;
the S3 path is covered by the integration tests of backups)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard

from datatier.backup.objects import SMALL_RAW, ObjectWriter
from datatier.pipeline.lanes import SMALL_OBJECT, WIDTH
from datatier.storage.base import ObjectInfo
from datatier.storage.local import LocalStore

PREFIX = "pol/20260101T000000Z-abcd/"


class CountingStore(LocalStore):
    """A file store whose uploads each take ``delay`` s, counting how many overlap."""

    def __init__(self, root: Path, delay: float) -> None:
        super().__init__(root)
        self.delay = delay
        self.lock = threading.Lock()
        self.now: dict[bool, int] = {True: 0, False: 0}  # small? -> uploads in flight
        self.peak: dict[bool, int] = {True: 0, False: 0}  # small? -> most at once

    def put_stream(self, key: str, chunks: Any, **kwargs: Any) -> ObjectInfo:
        chunks = list(chunks)
        small = sum(map(len, chunks)) < SMALL_OBJECT
        with self.lock:
            self.now[small] += 1
            self.peak[small] = max(self.peak[small], self.now[small])
        try:
            time.sleep(self.delay)
            return super().put_stream(key, chunks, **kwargs)
        finally:
            with self.lock:
                self.now[small] -= 1


def stored(store: LocalStore, key: str) -> bytes:
    return b"".join(store.iter_read(key))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"INSERT INTO `t` VALUES (1,'x');\n",
        b"y" * (SMALL_RAW - 1),
        b"z" * SMALL_RAW,
        os.urandom(3 * SMALL_RAW),
    ],
    ids=["empty", "tiny", "just-small", "threshold", "streamed"],
)
def test_every_size_round_trips_and_its_record_describes_the_stored_bytes(
    tmp_path: Path, raw: bytes
) -> None:
    store = LocalStore(tmp_path / "store")
    writer = ObjectWriter(store, PREFIX)
    obj = writer.open("db/tables/t/data-00001.sql.zst", "data", "db", "t", 1)
    for i in range(0, len(raw), 70_000):  # several writes across the threshold
        obj.write(raw[i : i + 70_000], rows=1)
    writer.close(obj)
    [record] = writer.finish()
    data = stored(store, record.key)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == raw
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert (record.size, record.raw_size) == (len(data), len(raw))
    assert record.rows == len(range(0, len(raw), 70_000))
    assert record.etag is not None and record.etag == store.head(record.key).etag


def test_an_object_cannot_be_written_or_closed_after_close(tmp_path: Path) -> None:
    writer = ObjectWriter(LocalStore(tmp_path / "store"), PREFIX)
    obj = writer.open("db/_database.sql.zst", "database", "db", None)
    obj.write(b"CREATE DATABASE x;\n")
    writer.close(obj)
    with pytest.raises(AssertionError, match="written after close"):
        obj.write(b"more")
    with pytest.raises(AssertionError, match="closed twice"):
        writer.close(obj)
    writer.finish()


def test_small_objects_upload_in_a_wider_lane_than_large_ones(tmp_path: Path) -> None:
    """Small objects: up to WIDTH x concurrency at once (a round trip each);
    large ones: at most ``concurrency`` (bandwidth), even when both are queued together."""
    store = CountingStore(tmp_path / "store", delay=0.05)
    writer = ObjectWriter(store, PREFIX, concurrency=2, max_pending=2)
    big = os.urandom(SMALL_OBJECT + 1)  # incompressible: stays over SMALL_OBJECT
    for n in range(40):
        obj = writer.open(f"db/tables/t{n}/data-00001.sql.zst", "data", "db", f"t{n}", 1)
        obj.write(big if n % 8 == 0 else b"INSERT INTO t VALUES (%d);\n" % n, rows=1)
        writer.close(obj)
    records = writer.finish()
    assert [r.table for r in records] == [f"t{n}" for n in range(40)]  # write order
    assert store.peak[False] <= 2
    assert 2 < store.peak[True] <= WIDTH * 2
    for r in records:
        assert hashlib.sha256(stored(store, r.key)).hexdigest() == r.sha256
