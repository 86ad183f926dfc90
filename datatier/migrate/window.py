"""Batches in flight: inserts on several writer connections, and the durable prefix.

Contract: :class:`WriteWindow` sends batches, at most ``size`` at once, each on a writer
handle of its own (:meth:`~datatier.migrate.target.MigrationTarget.writer`, one connection
per thread; a target without writer handles gets one writer, itself). :meth:`collect`
gives back acknowledged batches strictly in the order they were sent, so counts and the
checkpoint move over an unbroken prefix, never past a batch still in flight. What a
write does is the caller's ``write(handle, batch)``, run on the writer thread.

:attr:`durable` is the end of the prefix known to be durable: with ``hard`` durability
every acknowledged batch; with ``soft`` only batches acknowledged before a ``sync()`` of
the table was sent and that sync has returned. A sync is sent once ``sync_every`` rows
were acknowledged since the last one, and by :meth:`finish`, which waits for everything.
The first error of any writer stops the window (:meth:`close` cancels what was not sent
and waits for what was) and is raised by :meth:`collect`.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from datatier.migrate.target import InsertResult, MigrationTarget

T = TypeVar("T")


@dataclass
class Batch:
    """One batch read from MySQL: its documents and where it ends."""

    last: list[Any]  # key of its last row
    rows: int
    docs: list[dict[str, Any]]
    resume: bool = False  # inside the key range an interrupted run may have written


@dataclass(frozen=True)
class Acked:
    batch: Batch
    result: InsertResult
    sent: int  # documents sent
    skipped: int  # documents left out because their identical copy was there


@dataclass(frozen=True)
class Mark:
    """A point of the sent sequence: the batch count, its last key and row count."""

    batches: int
    key: list[Any] | None
    rows: int


class WriteWindow:
    """Writers for one table (see module docstring)."""

    def __init__(
        self,
        target: MigrationTarget,
        table: str,
        write: Callable[[MigrationTarget, Batch], Acked],
        *,
        size: int,
        durability: str,
        sync_every: int,
        start: list[Any] | None,
    ) -> None:
        self.table, self.write = table, write
        self.soft = durability == "soft"
        self.sync_every = sync_every
        self._handles: queue.SimpleQueue[MigrationTarget] = queue.SimpleQueue()
        self._clones: list[MigrationTarget] = []
        try:
            for _ in range(size):
                handle = target.writer(durability)
                if handle is None:
                    break
                self._clones.append(handle)
        except BaseException:
            self._close_clones()
            raise
        if not self._clones:  # one writer: the target itself, with its own durability
            self.soft = False
        for handle in self._clones or [target]:
            self._handles.put(handle)
        self.size = max(1, len(self._clones))
        self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="migrate-writer")
        self._sent: deque[tuple[Batch, Future[Acked]]] = deque()
        self._sync: tuple[Mark, Future[None]] | None = None
        self.acked = Mark(0, start, 0)
        self.durable = self.acked
        self.sent = 0

    def _on_handle(self, fn: Callable[[MigrationTarget], T]) -> T:
        handle = self._handles.get()
        try:
            return fn(handle)
        finally:
            self._handles.put(handle)

    def free(self) -> int:
        """How many more batches may be sent now."""
        return max(0, self.size - len(self._sent))

    def idle(self) -> bool:
        """Nothing in flight: every batch sent is acknowledged and no sync is running."""
        return not self._sent and self._sync is None

    def send(self, batch: Batch) -> None:
        future = self._pool.submit(self._on_handle, lambda h: self.write(h, batch))
        self._sent.append((batch, future))
        self.sent += 1

    def collect(self) -> list[Acked]:
        """Wait until something finishes; the batches acknowledged since the last call, in
        the order they were sent (possibly none: a sync ended). Raises a writer's error."""
        waiting: list[Future[Any]] = [f for _, f in self._sent]
        if self._sync is not None:
            waiting.append(self._sync[1])
        if waiting:
            wait(waiting, return_when=FIRST_COMPLETED)
        for future in waiting:
            error = future.exception() if future.done() else None
            if error is not None:
                raise error
        acked: list[Acked] = []
        while self._sent and self._sent[0][1].done():
            ack = self._sent.popleft()[1].result()
            acked.append(ack)
            self.acked = Mark(
                self.acked.batches + 1, ack.batch.last, self.acked.rows + ack.batch.rows
            )
        self._advance()
        return acked

    def _advance(self) -> None:
        if not self.soft:
            self.durable = self.acked
            return
        if self._sync is not None and self._sync[1].done():
            self._sync[1].result()
            self.durable, self._sync = self._sync[0], None
        if self._sync is None and self.acked.rows - self.durable.rows >= self.sync_every:
            self._start_sync()

    def _start_sync(self) -> None:
        """Sync what is acknowledged now (a sync covers writes acknowledged before it)."""
        mark = self.acked
        self._sync = (mark, self._pool.submit(self._on_handle, lambda h: h.sync(self.table)))

    def finish(self) -> None:
        """Wait for every batch sent and make it durable (raises a writer's error)."""
        while self._sent:
            self.collect()
        while self.soft and self.durable != self.acked:
            if self._sync is None:
                self._start_sync()
            self.collect()

    def close(self) -> None:
        """Cancel what was not sent, wait for what was, close the writer connections."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._close_clones()

    def _close_clones(self) -> None:
        for handle in self._clones:
            handle.close()
