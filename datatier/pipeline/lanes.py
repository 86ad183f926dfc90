"""Thread pools for transfers of stored objects, in two lanes by size.

A large object's transfer is bandwidth; a small one's is a round trip (10-30 ms to S3, the
same for 100 bytes or 100 KiB), so thousands of small objects through ``workers`` threads
spend their time waiting. :class:`Lanes` sends objects under :data:`SMALL_OBJECT` bytes
through a lane :data:`WIDTH` times as wide as the one large objects share. With ``pending``,
:meth:`Lanes.submit` blocks while that many of the large lane's transfers are queued or
running (the small lane allows twice its width), which bounds what the caller holds in
memory; without it, submissions queue unbounded (the caller holds nothing per transfer).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from datatier.storage.base import MiB

SMALL_OBJECT = 1 * MiB
"""Objects of fewer bytes go through the small lane."""
WIDTH = 4
"""The small lane has this many times the large lane's threads."""

T = TypeVar("T")


class _Lane:
    def __init__(self, name: str, workers: int, pending: int | None) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self.slots = threading.BoundedSemaphore(pending) if pending else None

    def release(self, _future: Future[Any]) -> None:
        assert self.slots is not None
        self.slots.release()


class Lanes:
    """``workers`` threads for large objects, ``WIDTH x workers`` for small ones."""

    def __init__(self, name: str, workers: int, *, pending: int | None = None) -> None:
        workers = max(1, workers)
        wide = WIDTH * workers
        self._lanes = (
            _Lane(name, workers, pending),
            _Lane(f"{name}-small", wide, 2 * wide if pending else None),
        )

    def submit(self, size: int, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` in the lane for an object of ``size`` bytes (blocks while that
        lane's pending transfers are at their bound)."""
        lane = self._lanes[size < SMALL_OBJECT]
        if lane.slots is None:
            return lane.pool.submit(fn, *args)
        lane.slots.acquire()
        try:
            future = lane.pool.submit(fn, *args)
        except BaseException:
            lane.slots.release()
            raise
        future.add_done_callback(lane.release)
        return future

    def shutdown(self, *, cancel_futures: bool = False) -> None:
        """Wait for the running transfers (and, unless ``cancel_futures``, the queued ones)."""
        for lane in self._lanes:
            lane.pool.shutdown(wait=True, cancel_futures=cancel_futures)

    def __enter__(self) -> Lanes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
