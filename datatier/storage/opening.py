"""A store opened and checked in a background thread while the caller gets on.

Opening an S3 store costs some 0.2 s of CPU before the first request (importing botocore,
loading the S3 model, building the client): a third of a small backup's fixed cost. A
backup has its own start-up to do meanwhile (choosing the source node, planning, taking the
snapshot, reading the catalogue), most of it waiting on the database. :class:`OpeningStore`
runs the opening and :meth:`~datatier.storage.base.ObjectStore.check` in a daemon thread;
``url`` answers at once and every other call waits for that thread, then either goes to the
opened store or raises what the opening or the check raised (the same exception, in every
thread that asks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from datetime import datetime

from datatier.storage.base import (
    IncompleteUpload,
    ObjectInfo,
    ObjectStore,
    ProgressCallback,
    RestoreTier,
    StorageClass,
)


class OpeningStore(ObjectStore):
    """The store ``open_store()`` returns, opened and checked in the background.

    ``url`` must be the URL the opened store will report (checked once it is open).
    :meth:`check_soon` returns at once (the check is already running); :meth:`check`
    waits for it. The thread is a daemon: a command that ends without using the store
    does not wait for it.
    """

    def __init__(self, url: str, open_store: Callable[[], ObjectStore]) -> None:
        self._url = url
        self._open = open_store
        self._opened: Future[ObjectStore] = Future()
        threading.Thread(target=self._run, name="store-open", daemon=True).start()

    def _run(self) -> None:
        try:
            store = self._open()
            if store.url != self._url:  # a programming error, raised where the store is used
                raise AssertionError(f"opened {store.url}, expected {self._url}")
            store.check()
        except BaseException as exc:  # handed to whoever uses the store
            self._opened.set_exception(exc)
        else:
            self._opened.set_result(store)

    def failure(self) -> BaseException | None:
        """What opening or checking the store raised; None while it runs or once it is open."""
        if not self._opened.done():
            return None
        return self._opened.exception()

    def opened(self) -> ObjectStore:
        """The opened, checked store; waits for it, or raises what opening it raised."""
        return self._opened.result()

    @property
    def url(self) -> str:
        return self._url

    def check(self) -> None:
        self.opened()

    def check_soon(self) -> None:
        """Nothing to start: the check runs from construction."""

    def encryption_warning(self) -> str | None:
        return self.opened().encryption_warning()

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
        return self.opened().put_stream(
            key,
            chunks,
            storage_class=storage_class,
            metadata=metadata,
            tags=tags,
            size_hint=size_hint,
            on_progress=on_progress,
        )

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        storage_class: StorageClass = StorageClass.STANDARD,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        return self.opened().put_bytes(
            key, data, storage_class=storage_class, metadata=metadata, tags=tags
        )

    def iter_read(
        self, key: str, chunk_size: int = ObjectStore.DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        return self.opened().iter_read(key, chunk_size)

    def get_bytes(self, key: str) -> bytes:
        return self.opened().get_bytes(key)

    def head(self, key: str, *, tags: bool = False) -> ObjectInfo:
        return self.opened().head(key, tags=tags)

    def exists(self, key: str) -> bool:
        return self.opened().exists(key)

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.opened().list_objects(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self.opened().delete(keys)

    def set_storage_class(self, key: str, storage_class: StorageClass) -> ObjectInfo:
        return self.opened().set_storage_class(key, storage_class)

    def request_restore(
        self, key: str, *, days: int, tier: RestoreTier = RestoreTier.STANDARD
    ) -> ObjectInfo:
        return self.opened().request_restore(key, days=days, tier=tier)

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        return self.opened().list_incomplete_uploads(prefix)

    def abort_incomplete_uploads(
        self, prefix: str = "", *, initiated_before: datetime | None = None
    ) -> int:
        return self.opened().abort_incomplete_uploads(prefix, initiated_before=initiated_before)

    def validate_key(self, key: str) -> str:
        return self.opened().validate_key(key)

    def validate_prefix(self, prefix: str) -> str:
        return self.opened().validate_prefix(prefix)

    def validate_labels(
        self, metadata: Mapping[str, str] | None, tags: Mapping[str, str] | None
    ) -> None:
        self.opened().validate_labels(metadata, tags)

    def part_size_for(self, part_size: int, size_hint: int | None) -> int:
        return self.opened().part_size_for(part_size, size_hint)


def failed_to_open(store: ObjectStore) -> bool:
    """True when ``store`` was opened in the background and that failed (never waits)."""
    return isinstance(store, OpeningStore) and store.failure() is not None
