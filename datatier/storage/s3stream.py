"""S3 streaming transfers: bounded-parallel multipart upload, part copy, resumable read.

The uploader follows the idea of Barman's cloud uploader: cut the input into part-size
pieces, keep at most ``concurrency`` parts in flight in a thread pool, and read the next
piece only when a slot is free, so at most ``concurrency + 1`` part buffers exist at once
whatever the object size. The first failure (a part, the input iterator, an interrupt)
aborts the multipart upload after the in-flight parts settle, then re-raises.

Reads stream the body in chunks; when the connection drops mid-object they resume with a
ranged GET pinned to the ETag (``If-Match``), so a replaced object is never spliced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import (
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from datatier.errors import OperationFailed
from datatier.storage.base import ProgressCallback
from datatier.storage.s3wire import ErrorMapper

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

log = logging.getLogger(__name__)

CHECKSUM: Final = "CRC32"  # per-part checksum, as s3transfer sends by default
_STREAM_ERRORS = (
    IncompleteReadError,
    ResponseStreamingError,
    ReadTimeoutError,
    ConnectionClosedError,
)


def cut_parts(chunks: Iterable[bytes], part_size: int) -> Iterator[bytes]:
    """Re-cut ``chunks`` into ``part_size`` pieces (the last may be shorter; b"" if empty)."""
    buf = bytearray()
    cut = False
    for chunk in chunks:
        buf += chunk
        while len(buf) >= part_size:
            with memoryview(buf) as view:
                part = bytes(view[:part_size])
            del buf[:part_size]
            cut = True
            yield part
            del part
    if buf or not cut:
        yield bytes(buf)


@dataclass(frozen=True)
class S3Object:
    """One object being transferred, and how to reach it."""

    client: S3Client
    errors: ErrorMapper
    bucket: str
    full_key: str  # the S3 key
    key: str  # the store-relative key, for messages

    def abort(self, upload_id: str) -> None:
        """Abort ``upload_id``; failures are logged, never raised (an error is in flight)."""
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.full_key, UploadId=upload_id
            )
        except Exception as exc:
            log.warning("could not abort upload of %s: %s", self.key, type(exc).__name__)

    def complete(self, upload_id: str, parts: list[CompletedPartTypeDef]) -> None:
        with self.errors("complete upload of", self.key):
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.full_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": sorted(parts, key=lambda p: p.get("PartNumber", 0))},
            )


def upload_parts(
    target: S3Object,
    parts: Iterator[bytes],
    write_args: dict[str, Any],
    *,
    concurrency: int,
    max_parts: int,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Upload ``parts`` (all but the last at least the provider's minimum) as one object.

    Returns the number of bytes uploaded. ``on_progress`` is called in this thread.
    """
    t = target
    with t.errors("start upload of", t.key):
        upload_id = t.client.create_multipart_upload(
            Bucket=t.bucket, Key=t.full_key, ChecksumAlgorithm=CHECKSUM, **write_args
        )["UploadId"]
    done: list[CompletedPartTypeDef] = []
    inflight: dict[Future[CompletedPartTypeDef], int] = {}
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="datatier-s3")
    total = number = 0
    try:
        for part in parts:
            if number == max_parts:
                raise OperationFailed(
                    f"{t.errors.url}/{t.key}: more than {max_parts} parts",
                    hint="raise s3.part_size or pass size_hint",
                )
            number += 1
            while len(inflight) >= concurrency:
                _harvest(inflight, done, on_progress, block=True)
            inflight[pool.submit(_upload_part, t, upload_id, number, part)] = len(part)
            total += len(part)
            del part  # the pool's work item holds the only reference now
            _harvest(inflight, done, on_progress, block=False)
        while inflight:
            _harvest(inflight, done, on_progress, block=True)
        t.complete(upload_id, done)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        t.abort(upload_id)
        raise
    finally:
        pool.shutdown(wait=True)
    return total


def _harvest(
    inflight: dict[Future[CompletedPartTypeDef], int],
    done: list[CompletedPartTypeDef],
    on_progress: ProgressCallback | None,
    *,
    block: bool,
) -> None:
    """Collect finished parts (waiting for one if ``block``); re-raise a part's error."""
    if block:
        finished = wait(inflight, return_when=FIRST_COMPLETED).done
    else:
        finished = {job for job in inflight if job.done()}
    for job in finished:
        size = inflight.pop(job)
        done.append(job.result())
        if on_progress:
            on_progress(size)


def _upload_part(t: S3Object, upload_id: str, number: int, data: bytes) -> CompletedPartTypeDef:
    with t.errors(f"upload part {number} of", t.key):
        reply = t.client.upload_part(
            Bucket=t.bucket,
            Key=t.full_key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm=CHECKSUM,
        )
    part: CompletedPartTypeDef = {"PartNumber": number, "ETag": reply["ETag"]}
    if "ChecksumCRC32" in reply:
        part["ChecksumCRC32"] = reply["ChecksumCRC32"]
    return part


def copy_parts(
    target: S3Object,
    size: int,
    etag: str,
    write_args: dict[str, Any],
    *,
    part_size: int,
) -> None:
    """Server-side copy of the object onto itself in ``part_size`` ranges (for objects over
    the single-copy limit); ``write_args`` must carry the class, metadata and tags to keep."""
    t = target
    source: CopySourceTypeDef = {"Bucket": t.bucket, "Key": t.full_key}
    with t.errors("start copy of", t.key):
        upload_id = t.client.create_multipart_upload(Bucket=t.bucket, Key=t.full_key, **write_args)[
            "UploadId"
        ]
    parts: list[CompletedPartTypeDef] = []
    try:
        for number, start in enumerate(range(0, size, part_size), start=1):
            end = min(start + part_size, size) - 1
            with t.errors(f"copy part {number} of", t.key):
                reply = t.client.upload_part_copy(
                    Bucket=t.bucket,
                    Key=t.full_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                    CopySourceIfMatch=etag,
                )
            parts.append({"PartNumber": number, "ETag": reply["CopyPartResult"].get("ETag", "")})
        t.complete(upload_id, parts)
    except BaseException:
        t.abort(upload_id)
        raise


def resumable_read(obj: S3Object, chunk_size: int, max_attempts: int) -> Iterator[bytes]:
    """Yield the object's bytes; a broken stream resumes where it stopped, up to
    ``max_attempts`` breaks in all (then the error is raised, translated)."""
    t = obj
    offset, etag, size, failures = 0, "", 0, 0
    while True:
        with t.errors("read", t.key):
            if etag:
                reply = t.client.get_object(
                    Bucket=t.bucket, Key=t.full_key, IfMatch=etag, Range=f"bytes={offset}-"
                )
            else:
                reply = t.client.get_object(Bucket=t.bucket, Key=t.full_key)
                etag, size = reply["ETag"], reply["ContentLength"]
        body = reply["Body"]
        try:
            with t.errors("read", t.key):
                try:
                    for chunk in body.iter_chunks(chunk_size):
                        offset += len(chunk)
                        yield chunk
                    return
                except _STREAM_ERRORS:
                    failures += 1
                    if failures >= max_attempts or offset >= size:
                        raise
                    log.warning("read of %s broke at byte %d; resuming", t.key, offset)
        finally:
            body.close()
