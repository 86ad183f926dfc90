"""Write a backup's data objects: compress as bytes arrive, hash and upload in the background.

:class:`ObjectWriter` is the one streaming sink every dump engine uses. The producer
(the engine's thread) writes raw bytes into an open object; they are zstd-compressed
incrementally, so only compressed bytes are held. On ``close`` the compressed object is
handed to a bounded pool that computes its SHA-256 and uploads it (multipart when large).
At most ``max_pending`` closed objects wait or upload at once, so memory stays near
``max_pending x compressed chunk size`` whatever the dataset size; small objects upload
through a wider lane of their own (:mod:`datatier.pipeline.lanes`: a small PUT costs a
round trip, not bandwidth). With ``recipients``
every object is then age-encrypted in the upload worker (compress, then encrypt: the key
gets ``.age`` appended to the engine's ``*.zst`` name), consuming the compressed chunks as
it goes, so an object is still held about once; its record carries the plaintext's size and
SHA-256 beside the stored bytes'. The first upload error
is re-raised to the producer at its next call (and kept in :attr:`ObjectWriter.failure`,
so the caller can report the storage failure rather than the dump it broke); ``abort``
stops everything. Every key is unique by construction: opening a key twice, or a key the
store rejects, raises before anything is written for it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import NoReturn

import zstandard

from datatier.backup.manifest import ObjectRecord, Section
from datatier.errors import IntegrityFailure, OperationFailed, UsageError
from datatier.log import get_logger
from datatier.pipeline.encrypt import SUFFIX, Recipients, seal
from datatier.pipeline.lanes import Lanes
from datatier.storage.base import MiB, ObjectStore, StorageClass

log = get_logger(__name__)
ProgressFn = Callable[[int], None]

SMALL_RAW = 256 * 1024
"""Objects of fewer raw bytes are compressed in one call, without a zstd worker thread."""


@dataclass
class OpenObject:
    """An object being written: raw bytes in, compressed bytes accumulated.

    The first :data:`SMALL_RAW` bytes are held raw: an object that stays that small is
    compressed in one call when it is finished, without the worker thread (and its tens of
    MB of buffers) a streaming context starts; a larger one streams through ``params``."""

    key: str
    kind: str
    database: str | None
    table: str | None
    part: int
    params: zstandard.ZstdCompressionParameters
    chunks: list[bytes] = field(default_factory=list)
    raw_size: int = 0
    rows: int = 0
    closed: bool = False
    sections: list[Section] = field(default_factory=list)
    _held: list[bytes] = field(default_factory=list)
    _compressor: zstandard.ZstdCompressionObj | None = None

    def write(self, data: bytes, rows: int = 0) -> None:
        assert not self.closed, f"{self.key} written after close"
        self.raw_size += len(data)
        self.rows += rows
        if self._compressor is None:
            self._held.append(data)
            if self.raw_size < SMALL_RAW:
                return
            self._compressor = zstandard.ZstdCompressor(
                compression_params=self.params
            ).compressobj()
            data = b"".join(self._held)
            self._held = []
        out = self._compressor.compress(data)
        if out:
            self.chunks.append(out)

    def finish(self) -> None:
        """End the zstd frame and free the compression context."""
        assert not self.closed, f"{self.key} closed twice"
        if self._compressor is None:
            one_shot = zstandard.ZstdCompressor(level=self.params.compression_level)
            self.chunks.append(one_shot.compress(b"".join(self._held)))
        else:
            self.chunks.append(self._compressor.flush())
        self._compressor, self._held, self.closed = None, [], True


class ObjectWriter:
    """Compressing, hashing, bounded-parallel uploader of one backup's data objects."""

    def __init__(
        self,
        store: ObjectStore,
        prefix: str,
        *,
        level: int = 3,
        storage_class: StorageClass = StorageClass.STANDARD,
        tags: dict[str, str] | None = None,
        concurrency: int = 4,
        max_pending: int = 6,
        on_progress: ProgressFn | None = None,
        recipients: Recipients | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.recipients = recipients
        self.storage_class = storage_class
        self.tags = tags or {}
        # threads=1: zstd compresses in its own worker thread, so splitting and reading the
        # dump overlap with compression instead of waiting for it. job_size 1 MiB: the
        # default (4 windows) holds ~25 MB of buffers per open object (~100 MB of a 4-job
        # MySQL dump's peak RSS); 1 MiB jobs keep the ratio (overlap) and are no slower.
        self._params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=1, job_size=1 << 20
        )
        # A large object's parts go in parallel inside put_stream; small objects get a wider
        # lane (datatier.pipeline.lanes). Held: max_pending large objects plus the small
        # lane's pending ones (under 1 MiB each).
        self._lanes = Lanes("upload", concurrency, pending=max_pending)
        self._futures: list[Future[ObjectRecord]] = []
        self._keys: set[str] = set()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._on_progress = on_progress
        self.records: list[ObjectRecord] = []
        self.upload_seconds = 0.0

    def open(
        self, relkey: str, kind: str, database: str | None, table: str | None, part: int = 0
    ) -> OpenObject:
        """Start object ``PREFIX/data/RELKEY``. Raises the first upload error, if any;
        IntegrityFailure for a key already opened in this backup; OperationFailed for a key
        the store cannot hold (named after the data: retrying will not help)."""
        self._raise_pending()
        key = f"{self.prefix}data/{relkey}{SUFFIX if self.recipients else ''}"
        what = f"{kind} of {database}.{table}" if table else f"{kind} of {database}"
        if key in self._keys:
            self._fail(
                IntegrityFailure(
                    f"{self.store.url}/{key} would be written twice in one backup ({what}): "
                    "refusing to overwrite it",
                    hint="no manifest was written; please report this as a bug",
                )
            )
        try:
            self.store.validate_key(key)
        except UsageError as exc:
            self._fail(OperationFailed(f"{self.store.url} cannot store the {what}: {exc}"))
        self._keys.add(key)
        return OpenObject(key, kind, database, table, part, self._params)

    def close(self, obj: OpenObject) -> None:
        """Finish ``obj`` and queue its upload; blocks while ``max_pending`` are queued."""
        # A zstd context with a worker thread holds tens of MB: freed now rather than while
        # the object waits for its upload.
        obj.finish()
        self._raise_pending()
        future = self._lanes.submit(sum(map(len, obj.chunks)), self._upload, obj)
        future.add_done_callback(self._done)
        self._futures.append(future)

    def _upload(self, obj: OpenObject) -> ObjectRecord:
        plain_size: int | None = None
        plain_sha256: str | None = None
        if self.recipients is not None:
            sealed = seal(obj.chunks, self.recipients)
            obj.chunks = sealed.chunks
            plain_size, plain_sha256 = sealed.plain_size, sealed.plain_sha256
        digest = hashlib.sha256()
        size = 0
        for chunk in obj.chunks:
            digest.update(chunk)
            size += len(chunk)
        started = time.monotonic()
        stored = self.store.put_stream(
            obj.key,
            obj.chunks,
            storage_class=self.storage_class,
            tags=self.tags,
            metadata={"sha256": digest.hexdigest()},
            size_hint=size,
        )
        with self._lock:
            self.upload_seconds += time.monotonic() - started
        obj.chunks = []
        if self._on_progress:
            self._on_progress(size)
        return ObjectRecord(
            key=obj.key,
            kind=obj.kind,
            size=size,
            sha256=digest.hexdigest(),
            raw_size=obj.raw_size,
            storage_class=self.storage_class.value,
            database=obj.database,
            table=obj.table,
            part=obj.part,
            rows=obj.rows,
            plain_size=plain_size,
            plain_sha256=plain_sha256,
            recipients=self.recipients.keys if self.recipients is not None else (),
            sections=tuple(obj.sections),
            etag=stored.etag,
        )

    def _done(self, future: Future[ObjectRecord]) -> None:
        if future.cancelled():  # abort() cancelled it: nothing to report
            return
        exc = future.exception()
        if exc is not None:
            with self._lock:
                if self._error is None:
                    self._error = exc

    def _fail(self, exc: BaseException) -> NoReturn:
        """Remember ``exc`` as the writer's failure (the first one wins) and raise it."""
        with self._lock:
            if self._error is None:
                self._error = exc
        raise exc

    @property
    def failure(self) -> BaseException | None:
        """The first upload error, if any upload failed."""
        return self._error

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def finish(self) -> list[ObjectRecord]:
        """Wait for every upload; raise the first error; return records in write order."""
        try:
            self.records = [f.result() for f in self._futures]
        finally:
            self._lanes.shutdown()
        log.debug("backup.objects_uploaded", objects=len(self.records))
        return self.records

    def abort(self) -> None:
        """Cancel queued uploads and wait for running ones (their objects stay orphaned
        until prune removes the manifest-less backup)."""
        for future in self._futures:
            future.cancel()
        self._lanes.shutdown(cancel_futures=True)


DEFAULT_CHUNK = 32 * MiB
