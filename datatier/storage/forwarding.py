"""A store that hands every call to another: the base of stores that wrap one.

A wrapper overrides :meth:`ForwardingStore.target` (the store calls go to) and the calls it
changes. ``put_bytes``, ``get_bytes`` and ``exists`` are not forwarded: the base class builds
them on ``put_stream``, ``iter_read`` and ``head``, so a wrapper that changes those (retries,
say) changes these too.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from datatier.storage.base import (
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
    ProgressCallback,
    RestoreTier,
    StorageClass,
)


class ForwardingStore(ObjectStore):
    """Every :class:`ObjectStore` call made on :meth:`target`."""

    @abc.abstractmethod
    def target(self) -> ObjectStore:
        """The store the calls go to."""

    @property
    def url(self) -> str:
        return self.target().url

    def check(self) -> None:
        self.target().check()

    def encryption_warning(self) -> str | None:
        return self.target().encryption_warning()

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
        return self.target().put_stream(
            key,
            chunks,
            storage_class=storage_class,
            metadata=metadata,
            tags=tags,
            size_hint=size_hint,
            on_progress=on_progress,
        )

    def iter_read(
        self, key: str, chunk_size: int = ObjectStore.DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        return self.target().iter_read(key, chunk_size)

    def head(self, key: str, *, tags: bool = False) -> ObjectInfo:
        return self.target().head(key, tags=tags)

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.target().list_objects(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self.target().delete(keys)

    def set_storage_class(self, key: str, storage_class: StorageClass) -> ObjectInfo:
        return self.target().set_storage_class(key, storage_class)

    def request_restore(
        self, key: str, *, days: int, tier: RestoreTier = RestoreTier.STANDARD
    ) -> ObjectInfo:
        return self.target().request_restore(key, days=days, tier=tier)

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        return self.target().list_incomplete_uploads(prefix)

    def abort_incomplete_uploads(
        self, prefix: str = "", *, initiated_before: datetime | None = None
    ) -> int:
        return self.target().abort_incomplete_uploads(prefix, initiated_before=initiated_before)

    def validate_key(self, key: str) -> str:
        return self.target().validate_key(key)

    def validate_prefix(self, prefix: str) -> str:
        return self.target().validate_prefix(prefix)

    def validate_labels(
        self, metadata: Mapping[str, str] | None, tags: Mapping[str, str] | None
    ) -> None:
        self.target().validate_labels(metadata, tags)

    def part_size_for(self, part_size: int, size_hint: int | None) -> int:
        return self.target().part_size_for(part_size, size_hint)
