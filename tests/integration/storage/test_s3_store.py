"""S3Store against a real S3 API server (moto_server, see conftest.py).

Fault injection uses botocore ``before-send`` event hooks on the store's own client, which
answer selected requests with a 503 SlowDown instead of sending them. moto accepts any
credentials unless IAM checks are switched on (``/moto-api/reset-auth``, the ``iam_auth``
fixture), which makes it verify access key ids and signatures like AWS.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ResponseStreamingError

from datatier.errors import (
    IntegrityFailure,
    NotReadyYet,
    OperationFailed,
    ServiceUnavailable,
    UsageError,
)
from datatier.pipeline import Digester, compress, decompress, read_verified, verify_object
from datatier.storage import ObjectNotFound, RestoreState, StorageClass, open_store
from datatier.storage.base import MiB
from datatier.storage.s3 import S3Store

from .conftest import Moto

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class SlowDownHook:
    """``before-send`` hook: answer 503 SlowDown to the first ``fail`` calls (all if None)."""

    def __init__(self, fail: int | None) -> None:
        self.fail = fail
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        with self._lock:
            self.calls += 1
            failing = self.fail is None or self.calls <= self.fail
        if failing:
            return AWSResponse(
                request.url,
                503,
                {"Content-Type": "application/xml"},  # type: ignore[arg-type]  # any mapping
                _Raw(SLOWDOWN),
            )
        return None


class _BreakingBody:
    """A response body whose connection 'drops' after ``after`` bytes."""

    def __init__(self, body: Any, after: int) -> None:
        self.body, self.after = body, after

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        sent = 0
        for chunk in self.body.iter_chunks(chunk_size):
            yield chunk
            sent += len(chunk)
            if sent >= self.after:
                raise ResponseStreamingError(error="Connection reset by peer")

    def close(self) -> None:
        self.body.close()


class BreakStreamHook:
    """``after-call.s3.GetObject`` hook: break the first ``times`` response bodies."""

    def __init__(self, times: int, after: int, before_resume: Any = None) -> None:
        self.times, self.after, self.before_resume = times, after, before_resume
        self.ranges: list[str | None] = []

    def __call__(self, parsed: dict[str, Any], context: Any = None, **_: Any) -> None:
        self.ranges.append(parsed.get("ContentRange"))
        if len(self.ranges) <= self.times and "Body" in parsed:
            parsed["Body"] = _BreakingBody(parsed["Body"], self.after)
            if self.before_resume is not None:
                self.before_resume()


def chunks_of(data: bytes, size: int = MiB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_multipart_round_trip_keeps_sha256(store: S3Store, raw: Any, bucket: str) -> None:
    data = os.urandom(17 * MiB)
    digester = Digester(chunks_of(data))
    progress: list[int] = []
    info = store.put_stream("db/data/part-000.zst", digester, on_progress=progress.append)
    assert info.size == len(data) == digester.size == sum(progress)
    assert digester.sha256 == hashlib.sha256(data).hexdigest()
    assert info.etag is not None and info.etag.endswith('-4"')  # 5+5+5+2 MiB parts
    assert raw.head_object(Bucket=bucket, Key="backups/db/data/part-000.zst")["ContentLength"]
    back = b"".join(
        read_verified(store, "db/data/part-000.zst", size=len(data), sha256=digester.sha256)
    )
    assert hashlib.sha256(back).hexdigest() == digester.sha256


def test_small_object_metadata_tags_and_listing(store: S3Store) -> None:
    info = store.put_bytes("p/manifest.json", b"{}", metadata={"sha256": "ab"}, tags={"k": "v w"})
    assert info.etag is not None and "-" not in info.etag
    assert info.storage_class == StorageClass.STANDARD
    head = store.head("p/manifest.json", tags=True)
    assert head.metadata == {"sha256": "ab"} and head.tags == {"k": "v w"}
    store.put_bytes("p/a", b"1")
    store.put_bytes("q", b"2")
    assert [o.key for o in store.list_objects()] == ["p/a", "p/manifest.json", "q"]
    assert [o.key for o in store.list_objects("p/")] == ["p/a", "p/manifest.json"]
    assert store.get_bytes("p/manifest.json") == b"{}"
    store.delete(["p/a", "does/not/exist"])
    assert not store.exists("p/a") and store.exists("q")
    with pytest.raises(ObjectNotFound):
        store.head("p/a")
    with pytest.raises(ObjectNotFound):
        next(store.iter_read("p/a"))


def test_small_put_is_confirmed_by_its_etag_without_a_head(store: S3Store) -> None:
    heads: list[str] = []
    store.client.meta.events.register(
        "before-call.s3.HeadObject", lambda params, **_: heads.append(params["url_path"])
    )
    data = os.urandom(100_000)
    info = store.put_stream("small.bin", chunks_of(data, 30_000), metadata={"sha256": "ab"})
    assert heads == []  # the reply's ETag, the MD5 of what was sent, confirmed it
    assert info.etag == f'"{hashlib.md5(data).hexdigest()}"' and info.size == len(data)
    assert info.metadata == {"sha256": "ab"} and info.storage_class == "STANDARD"
    assert store.head("small.bin").size == len(data) and store.get_bytes("small.bin") == data


def test_put_whose_etag_is_no_md5_is_checked_by_head(store: S3Store) -> None:
    """An ETag that is not the MD5 of the bytes sent (SSE-KMS, or a body changed on the
    way) falls back to the HEAD, whose size must be the bytes sent."""
    heads: list[str] = []

    def other_etag(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ETag"] = '"' + "0" * 32 + '"'

    store.client.meta.events.register("after-call.s3.PutObject", other_etag)
    store.client.meta.events.register(
        "before-call.s3.HeadObject", lambda params, **_: heads.append(params["url_path"])
    )
    assert store.put_bytes("kms.bin", b"12345").size == 5
    assert [h.rsplit("/", 1)[-1] for h in heads] == ["kms.bin"]

    def truncated(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ContentLength"] = 4

    store.client.meta.events.register("after-call.s3.HeadObject", truncated)
    with pytest.raises(IntegrityFailure, match="stored 4 bytes, sent 5"):
        store.put_bytes("short.bin", b"12345")


def test_store_prefix_isolates_keys(moto: Moto, bucket: str) -> None:
    one = open_store(f"s3://{bucket}/pol", moto.settings())
    two = open_store(f"s3://{bucket}/pol2", moto.settings())
    one.put_bytes("x", b"1")
    two.put_bytes("x", b"2")
    assert [o.key for o in one.list_objects()] == ["x"]
    assert one.get_bytes("x") == b"1" and two.get_bytes("x") == b"2"


@pytest.mark.parametrize("size", [1024, 11 * MiB], ids=["single-put", "multipart"])
def test_storage_class_on_write(store: S3Store, size: int) -> None:
    info = store.put_stream(
        "cold.bin", chunks_of(b"z" * size), storage_class=StorageClass.STANDARD_IA
    )
    assert info.storage_class == "STANDARD_IA"
    assert [o.storage_class for o in store.list_objects()] == ["STANDARD_IA"]


def test_reclass_by_copy_keeps_metadata_and_tags(store: S3Store) -> None:
    store.put_bytes("obj", b"payload", metadata={"sha256": "00"}, tags={"policy": "nightly"})
    info = store.set_storage_class("obj", StorageClass.DEEP_ARCHIVE)
    assert info.storage_class == "DEEP_ARCHIVE" and info.is_archived and not info.readable
    assert info.metadata == {"sha256": "00"}
    assert store.set_storage_class("obj", StorageClass.DEEP_ARCHIVE).etag == info.etag  # no-op
    store.request_restore("obj", days=1)  # moto serves tags of archived objects only restored
    head = store.head("obj", tags=True)
    assert head.metadata == {"sha256": "00"} and head.tags == {"policy": "nightly"}


def test_reclass_of_large_object_uses_multipart_copy(store: S3Store) -> None:
    store.MAX_COPY_SIZE = 5 * MiB  # force the > 5 GiB path with a 12 MiB object
    data = os.urandom(12 * MiB)
    store.put_stream("big", chunks_of(data), metadata={"m": "1"}, tags={"t": "2"})
    info = store.set_storage_class("big", StorageClass.GLACIER_IR)
    assert info.storage_class == "GLACIER_IR" and info.size == len(data)
    assert info.etag is not None and info.etag.endswith('-3"')
    head = store.head("big", tags=True)
    assert head.metadata == {"m": "1"} and head.tags == {"t": "2"}
    assert hashlib.sha256(store.get_bytes("big")).digest() == hashlib.sha256(data).digest()


def test_glacier_read_needs_restore(store: S3Store) -> None:
    store.put_bytes("archived", b"old data", storage_class=StorageClass.GLACIER)
    info = store.head("archived")
    assert info.is_archived and info.restore is RestoreState.NONE and not info.readable
    with pytest.raises(NotReadyYet) as err:
        next(store.iter_read("archived"))
    assert err.value.exit_code == 5 and "GLACIER" in str(err.value)
    with pytest.raises(NotReadyYet):
        store.set_storage_class("archived", StorageClass.STANDARD)
    restored = store.request_restore("archived", days=1)  # instant in moto by default
    assert restored.restore is RestoreState.RESTORED and restored.readable
    assert restored.restore_expires is not None
    assert store.get_bytes("archived") == b"old data"
    assert store.request_restore("archived", days=1).restore is RestoreState.RESTORED
    back = store.set_storage_class("archived", StorageClass.STANDARD)  # thaw for good
    assert back.storage_class == "STANDARD" and back.readable


def test_restore_in_progress_is_not_ready(store: S3Store, slow_restore: int) -> None:
    store.put_bytes("deep", b"x", storage_class=StorageClass.DEEP_ARCHIVE)
    states = [store.request_restore("deep", days=2).restore]
    with pytest.raises(NotReadyYet):
        next(store.iter_read("deep"))
    for _ in range(slow_restore + 3):
        states.append(store.head("deep").restore)
        if states[-1] is RestoreState.RESTORED:
            break
    assert RestoreState.ONGOING in states and states[-1] is RestoreState.RESTORED
    assert store.get_bytes("deep") == b"x"


def test_slowdown_is_retried(store: S3Store) -> None:
    hook = SlowDownHook(fail=2)
    # a before-send hook may answer in the server's place (botocore); the stubs say None
    store.client.meta.events.register("before-send.s3.UploadPart", hook)  # type: ignore[arg-type]
    data = os.urandom(12 * MiB)
    info = store.put_stream("retried", chunks_of(data))
    assert info.size == len(data)
    assert hook.calls == 3 + 2  # three parts, two refused once each
    assert hashlib.sha256(store.get_bytes("retried")).digest() == hashlib.sha256(data).digest()


def test_persistent_slowdown_aborts_the_upload(store: S3Store, raw: Any, bucket: str) -> None:
    hook = SlowDownHook(fail=None)
    store.client.meta.events.register("before-send.s3.UploadPart", hook)  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailable) as err:
        store.put_stream("doomed", chunks_of(os.urandom(16 * MiB)))
    assert "SlowDown" in str(err.value) and err.value.exit_code == 3
    assert hook.calls >= 3  # max_attempts=3 tries of at least one part
    assert "Uploads" not in raw.list_multipart_uploads(Bucket=bucket)
    assert list(store.list_incomplete_uploads()) == []
    assert not store.exists("doomed")


def test_failing_source_aborts_the_upload(store: S3Store, raw: Any, bucket: str) -> None:
    def dump() -> Iterator[bytes]:
        yield from chunks_of(os.urandom(12 * MiB))
        raise RuntimeError("mysqldump died")

    with pytest.raises(RuntimeError, match="mysqldump died"):
        store.put_stream("partial", dump())
    assert "Uploads" not in raw.list_multipart_uploads(Bucket=bucket)
    assert not store.exists("partial")


def test_read_resumes_after_a_dropped_connection(store: S3Store) -> None:
    data = os.urandom(8 * MiB)
    store.put_stream("resumable", chunks_of(data))
    hook = BreakStreamHook(times=2, after=3 * MiB)
    store.client.meta.events.register("after-call.s3.GetObject", hook)
    assert hashlib.sha256(store.get_bytes("resumable")).digest() == hashlib.sha256(data).digest()
    total = 8 * MiB
    assert hook.ranges == [  # resumed twice, each time where the broken stream stopped
        None,
        f"bytes {3 * MiB}-{total - 1}/{total}",
        f"bytes {6 * MiB}-{total - 1}/{total}",
    ]


def test_read_gives_up_on_a_changed_or_flaky_object(store: S3Store, raw: Any, bucket: str) -> None:
    store.put_stream("flaky", chunks_of(os.urandom(6 * MiB)))
    always = BreakStreamHook(99, MiB)
    store.client.meta.events.register("after-call.s3.GetObject", always)
    with pytest.raises(ServiceUnavailable, match="ResponseStreamingError"):
        b"".join(store.iter_read("flaky"))  # max_attempts=3 breaks in a row
    assert len(always.ranges) == 3
    store.client.meta.events.unregister("after-call.s3.GetObject", always)

    def replace() -> None:
        raw.put_object(Bucket=bucket, Key="backups/moving", Body=b"new version")

    store.put_stream("moving", chunks_of(os.urandom(6 * MiB)))
    store.client.meta.events.register("after-call.s3.GetObject", BreakStreamHook(1, MiB, replace))
    with pytest.raises(OperationFailed, match="changed while"):
        b"".join(store.iter_read("moving"))


def test_bounded_memory_part_buffers(store: S3Store) -> None:
    """At most concurrency+1 parts' worth of input is held: counted, never timed."""
    part, concurrency, total = 5 * MiB, store.settings.max_concurrency, 64 * MiB
    stored = 0
    consumed = 0
    peak = 0

    def on_progress(n: int) -> None:
        nonlocal stored
        stored += n

    def source() -> Iterator[bytes]:
        nonlocal consumed, peak
        for i in range(total // MiB):
            consumed += MiB
            peak = max(peak, consumed - stored)  # bytes read but not yet stored
            yield bytes([i % 251]) * MiB

    info = store.put_stream("big.bin", source(), on_progress=on_progress)
    assert info.size == total == stored
    parts_alive = -(-peak // part)
    assert 2 <= parts_alive <= concurrency + 1, (peak, parts_alive)


def test_incomplete_uploads_listed_and_aborted(store: S3Store, raw: Any, bucket: str) -> None:
    up = raw.create_multipart_upload(Bucket=bucket, Key="backups/pol/id/data/x.zst")
    raw.create_multipart_upload(Bucket=bucket, Key="elsewhere/y")
    found = list(store.list_incomplete_uploads("pol/"))
    assert [(u.key, u.upload_id) for u in found] == [("pol/id/data/x.zst", up["UploadId"])]
    assert found[0].initiated is not None
    assert store.abort_incomplete_uploads(initiated_before=found[0].initiated) == 0
    assert store.abort_incomplete_uploads() == 1
    assert list(store.list_incomplete_uploads()) == []
    left = raw.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["Key"] for u in left] == ["elsewhere/y"]


def test_corrupt_and_truncated_objects(store: S3Store, raw: Any, bucket: str) -> None:
    text = b"".join(b"INSERT INTO t VALUES (%d, 'row %d');\n" % (i, i) for i in range(100_000))
    digester = Digester(compress(chunks_of(text, 64 * 1024), level=3))
    store.put_stream("dump.sql.zst", digester)
    size, sha = digester.size, digester.sha256
    assert b"".join(read_verified(store, "dump.sql.zst", size=size, sha256=sha, decompress=True))
    stored = store.get_bytes("dump.sql.zst")

    flipped = bytearray(stored)
    flipped[len(flipped) // 2] ^= 0x55
    raw.put_object(Bucket=bucket, Key="backups/dump.sql.zst", Body=bytes(flipped))
    with pytest.raises(IntegrityFailure, match=r"dump\.sql\.zst.*SHA-256") as err:
        verify_object(store, "dump.sql.zst", size=size, sha256=sha)
    assert err.value.exit_code == 4
    with pytest.raises(IntegrityFailure, match="corrupt zstd"):
        b"".join(decompress(store.iter_read("dump.sql.zst"), name="dump"))

    raw.put_object(Bucket=bucket, Key="backups/dump.sql.zst", Body=stored[: len(stored) // 2])
    with pytest.raises(IntegrityFailure, match="truncated"):
        verify_object(store, "dump.sql.zst", size=size, sha256=sha)
    with pytest.raises(IntegrityFailure, match="truncated"):
        b"".join(decompress(store.iter_read("dump.sql.zst"), name="dump"))


def test_missing_bucket_is_a_config_error(moto: Moto) -> None:
    """S3 answered: the store URL names a bucket that does not exist. That is the
    configuration's fault (exit 2, design.md), not an unreachable service (exit 3)."""
    store = open_store("s3://datatier-no-such-bucket/x", moto.settings())
    for attempt in (
        store.check,
        lambda: store.head("k"),
        lambda: store.put_bytes("k", b"1"),
        lambda: list(store.list_objects()),
        lambda: next(store.iter_read("k")),
    ):
        with pytest.raises(UsageError, match="'datatier-no-such-bucket' does not exist") as err:
            attempt()
        assert err.value.exit_code == 2
        assert err.value.hint is not None
        assert "datatier provision apply --only bucket --execute" in err.value.hint
        assert "s3://datatier-no-such-bucket/x" in err.value.hint


def test_unreachable_endpoint_is_unavailable(moto: Moto) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = moto.settings(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    store = open_store("s3://some-bucket", settings)
    with pytest.raises(ServiceUnavailable, match=f"cannot reach S3 at 127.0.0.1:{port}"):
        store.put_bytes("k", b"1")


def test_wrong_credentials_are_unavailable(
    moto: Moto, bucket: str, iam_auth: tuple[str, str]
) -> None:
    key_id, secret = iam_auth
    good = S3Store(bucket, "", moto.settings(access_key_id=key_id, secret_access_key=secret))
    good.put_bytes("k", b"1")
    good.check()

    bad_id = "AKIADATATIERWRONG000"
    cases = [
        (bad_id, "x" * 40, "InvalidAccessKeyId"),
        (key_id, "y" * 40, "SignatureDoesNotMatch"),
    ]
    for wrong_id, wrong_secret, code in cases:
        store = S3Store(
            bucket, "", moto.settings(access_key_id=wrong_id, secret_access_key=wrong_secret)
        )
        with pytest.raises(ServiceUnavailable, match=code) as err:
            store.put_bytes("k", b"2")
        message = str(err.value)
        assert err.value.exit_code == 3 and "\n" not in message
        assert wrong_id not in message and wrong_secret not in message and secret not in message
        with pytest.raises(ServiceUnavailable, match="HTTP 403"):
            store.head("k")  # HEAD carries no error code: a plain 403
        with pytest.raises(ServiceUnavailable):
            store.check()
        with pytest.raises(ServiceUnavailable, match=code):
            list(store.list_objects())
    assert good.get_bytes("k") == b"1"
