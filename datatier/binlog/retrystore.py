"""A store whose writes are retried until they succeed (or a deadline passes).

The archiver holds each segment in memory until it is stored; an S3 outage must delay the
archive, not lose or skip a segment. Writes, HEADs, listings and deletes are retried;
every other call is passed through unchanged
(:class:`~datatier.storage.forwarding.ForwardingStore`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

from datatier.errors import ServiceUnavailable
from datatier.log import get_logger
from datatier.storage.base import (
    ObjectInfo,
    ObjectStore,
    ProgressCallback,
    StorageClass,
)
from datatier.storage.forwarding import ForwardingStore

log = get_logger(__name__)
T = TypeVar("T")


class RetryingStore(ForwardingStore):
    """``inner`` with writes retried on ServiceUnavailable, backing off up to ``max_wait``
    seconds between tries, for ``give_up_after`` seconds in all (None: never give up)."""

    def __init__(
        self,
        inner: ObjectStore,
        *,
        give_up_after: float | None = None,
        max_wait: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.give_up_after = give_up_after
        self.max_wait = max_wait
        self._sleep = sleep

    def _retry(self, what: str, action: Callable[[], T]) -> T:
        started = time.monotonic()
        wait = 0.5
        while True:
            try:
                return action()
            except ServiceUnavailable as exc:
                spent = time.monotonic() - started
                if self.give_up_after is not None and spent >= self.give_up_after:
                    raise
                log.warning("binlog.store_retry", what=what, error=str(exc), retry_in=wait)
                self._sleep(wait)
                wait = min(self.max_wait, wait * 2)

    def target(self) -> ObjectStore:
        return self.inner

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
        held = list(chunks)  # a retry needs the bytes again
        return self._retry(
            key,
            lambda: self.inner.put_stream(
                key,
                held,
                storage_class=storage_class,
                metadata=metadata,
                tags=tags,
                size_hint=size_hint,
                on_progress=on_progress,
            ),
        )

    def head(self, key: str, *, tags: bool = False) -> ObjectInfo:
        return self._retry(f"head {key}", lambda: self.inner.head(key, tags=tags))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._retry(
            f"list {prefix}", lambda: list(self.inner.list_objects(prefix))
        ).__iter__()

    def delete(self, keys: Iterable[str]) -> None:
        held = list(keys)
        self._retry("delete", lambda: self.inner.delete(held))
