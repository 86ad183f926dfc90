"""The object-store contract every storage backend implements, and the types it speaks.

Keys are ``/``-separated, relative to the store's root (the URL's prefix), never start with
``/`` and contain no empty, ``.`` or ``..`` segments. Writes are all-or-nothing: a reader
either sees the complete new object or none (or the previous version); a writer that dies
leaves at most an *incomplete upload* (see :meth:`ObjectStore.list_incomplete_uploads`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from datatier.errors import OperationFailed, UsageError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes newly stored, in the caller's thread."""


class StorageClass(StrEnum):
    """S3 storage classes datatier writes; other providers map or record them."""

    STANDARD = "STANDARD"
    STANDARD_IA = "STANDARD_IA"
    ONEZONE_IA = "ONEZONE_IA"
    INTELLIGENT_TIERING = "INTELLIGENT_TIERING"
    GLACIER_IR = "GLACIER_IR"
    GLACIER = "GLACIER"
    DEEP_ARCHIVE = "DEEP_ARCHIVE"

    @property
    def is_archive(self) -> bool:
        """True when objects of this class must be restored before they can be read."""
        return self in (StorageClass.GLACIER, StorageClass.DEEP_ARCHIVE)

    @classmethod
    def parse(cls, value: str) -> StorageClass:
        """``value`` as a StorageClass; UsageError naming the valid ones otherwise."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(c.value for c in cls)
            raise UsageError(f"unknown storage class {value!r} (use one of {names})") from None


class RestoreTier(StrEnum):
    """How fast (and how expensively) an archived object is restored."""

    EXPEDITED = "Expedited"  # GLACIER only: minutes
    STANDARD = "Standard"  # hours
    BULK = "Bulk"  # cheapest, up to two days on DEEP_ARCHIVE


class RestoreState(StrEnum):
    """Where an archived object's temporary readable copy stands."""

    NONE = "none"  # never requested (or expired)
    ONGOING = "ongoing"  # requested, not readable yet
    RESTORED = "restored"  # readable until ``ObjectInfo.restore_expires``


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one stored object.

    ``storage_class`` is the provider's own name (``STANDARD`` when it reports none).
    ``tags`` is None when they were not fetched (listings never fetch them). Listings carry
    the restore state only where the provider reports it (AWS does, moto does not):
    :meth:`ObjectStore.head` is authoritative.
    """

    key: str
    size: int
    storage_class: str = StorageClass.STANDARD.value
    etag: str | None = None
    last_modified: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] | None = None
    restore: RestoreState = RestoreState.NONE
    restore_expires: datetime | None = None

    @property
    def is_archived(self) -> bool:
        """True when the object sits in an archive class (GLACIER, DEEP_ARCHIVE)."""
        return self.storage_class in (StorageClass.GLACIER, StorageClass.DEEP_ARCHIVE)

    @property
    def readable(self) -> bool:
        """True when a GET would return data now (not archived, or restored)."""
        return not self.is_archived or self.restore is RestoreState.RESTORED


@dataclass(frozen=True)
class IncompleteUpload:
    """A write that started and neither completed nor was aborted (costs storage on S3)."""

    key: str
    upload_id: str
    initiated: datetime | None = None


class ObjectNotFound(OperationFailed):
    """The key does not exist in the store (exit 1)."""


class ObjectStore(abc.ABC):
    """Abstract base of storage backends (S3, local directory).

    Contract:

    * Writes are atomic per object; ``put_*`` return the stored object's :class:`ObjectInfo`
      and consume their input in bounded memory (at most about ``(concurrency + 1)`` parts).
    * ``metadata`` and ``tags`` are small ``str -> str`` maps kept with the object;
      ``set_storage_class`` keeps both.
    * Reading an archived, unrestored object raises :class:`~datatier.errors.NotReadyYet`;
      a missing key raises :class:`ObjectNotFound`; unreachable servers, wrong buckets and
      rejected credentials raise :class:`~datatier.errors.ServiceUnavailable`.
    * Listing yields objects sorted by key, lazily; ``delete`` ignores missing keys.
    * Nothing raised or logged contains credentials.

    Provider limits are class constants; backends override what differs.
    """

    MIN_PART_SIZE: int = 1
    MAX_PART_SIZE: int = 5 * GiB
    MAX_PARTS: int = 10_000
    MAX_OBJECT_SIZE: int = 5 * TiB
    MAX_KEY_LENGTH: int = 1024
    MAX_METADATA_SIZE: int = 2 * KiB
    MAX_TAGS: int = 10
    DEFAULT_CHUNK_SIZE: int = 1 * MiB

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The store's URL (``s3://bucket/prefix``, ``file:///path``), free of secrets."""

    @abc.abstractmethod
    def check(self) -> None:
        """Verify the store is reachable and usable; raise ServiceUnavailable if not."""

    def encryption_warning(self) -> str | None:
        """A warning when objects could be stored unencrypted at rest by default (S3: the
        bucket has no default encryption); None when there is nothing to say."""
        return None

    @abc.abstractmethod
    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        storage_class: StorageClass = StorageClass.STANDARD,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        size_hint: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Store the concatenation of ``chunks`` under ``key``, streaming.

        ``size_hint`` (expected total bytes) lets a backend pick larger parts for huge
        objects. If ``chunks`` raises, nothing is stored and the exception propagates.
        """

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        storage_class: StorageClass = StorageClass.STANDARD,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store a small object (a manifest, a marker) in one request; STANDARD by default."""
        return self.put_stream(
            key,
            [data],
            storage_class=storage_class,
            metadata=metadata,
            tags=tags,
            size_hint=len(data),
        )

    @abc.abstractmethod
    def iter_read(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the object's bytes in chunks of at most ``chunk_size``.

        Errors (missing key, archived object) are raised on the first ``next()``.
        """

    def get_bytes(self, key: str) -> bytes:
        """The whole object in memory; for small objects such as manifests."""
        return b"".join(self.iter_read(key))

    @abc.abstractmethod
    def head(self, key: str, *, tags: bool = False) -> ObjectInfo:
        """Size, class, metadata and restore state of ``key``; ObjectNotFound if absent.

        ``tags=True`` fetches the tags too (a second request on S3); they stay None if the
        provider refuses them (moto does for unrestored archived objects).
        """

    def exists(self, key: str) -> bool:
        """True when ``key`` exists (in any storage class)."""
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    @abc.abstractmethod
    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix), sorted by key."""

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete every key in ``keys``; keys that do not exist are ignored."""

    @abc.abstractmethod
    def set_storage_class(self, key: str, storage_class: StorageClass) -> ObjectInfo:
        """Move ``key`` to ``storage_class`` in place, keeping metadata and tags.

        No-op when it is already there. An archived object must be restored first
        (NotReadyYet otherwise).
        """

    @abc.abstractmethod
    def request_restore(
        self, key: str, *, days: int, tier: RestoreTier = RestoreTier.STANDARD
    ) -> ObjectInfo:
        """Ask for a readable copy of an archived object for ``days`` days.

        Idempotent: a no-op for objects that are readable or already being restored.
        Returns the object's state after the request.
        """

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        """Writes under ``prefix`` that were started and never completed nor aborted."""
        return iter(())

    def abort_incomplete_uploads(
        self, prefix: str = "", *, initiated_before: datetime | None = None
    ) -> int:
        """Abort every incomplete upload under ``prefix`` (started before ``initiated_before``
        if given, so running writers are spared); returns how many."""
        return 0

    # -- helpers for backends -------------------------------------------------------------

    def validate_key(self, key: str) -> str:
        """Return ``key`` if it obeys the key rules (module docstring), else raise UsageError."""
        problem = None
        if not key:
            problem = "is empty"
        elif key.startswith("/"):
            problem = "starts with '/'"
        elif any(seg in ("", ".", "..") for seg in key.split("/")):
            problem = "has an empty, '.' or '..' segment"
        elif len(key.encode()) > self.MAX_KEY_LENGTH:
            problem = f"is longer than {self.MAX_KEY_LENGTH} bytes"
        elif any(ord(c) < 0x20 or c == "\x7f" for c in key):
            problem = "contains control characters"
        if problem:
            raise UsageError(f"object key {key!r} {problem}")
        return key

    def validate_prefix(self, prefix: str) -> str:
        """Return ``prefix`` if it is empty or a valid key start (may end with '/')."""
        if prefix:
            self.validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
        return prefix

    def validate_labels(
        self, metadata: Mapping[str, str] | None, tags: Mapping[str, str] | None
    ) -> None:
        """Raise UsageError if metadata or tags exceed the provider's limits."""
        meta_size = sum(len(k) + len(v) for k, v in (metadata or {}).items())
        if meta_size > self.MAX_METADATA_SIZE:
            raise UsageError(
                f"object metadata is {meta_size} bytes; the limit is {self.MAX_METADATA_SIZE}"
            )
        if tags and len(tags) > self.MAX_TAGS:
            raise UsageError(f"{len(tags)} object tags given; the limit is {self.MAX_TAGS}")

    def part_size_for(self, part_size: int, size_hint: int | None) -> int:
        """The part size to use: ``part_size``, grown so ``size_hint`` fits in MAX_PARTS."""
        if size_hint is not None and size_hint > self.MAX_OBJECT_SIZE:
            raise UsageError(
                f"object of {size_hint} bytes exceeds the provider limit of "
                f"{self.MAX_OBJECT_SIZE} bytes"
            )
        size = max(part_size, self.MIN_PART_SIZE)
        if size_hint is not None:
            size = max(size, -(-size_hint // self.MAX_PARTS))
        return min(size, self.MAX_PART_SIZE)
