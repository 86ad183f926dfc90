"""A writer thread between the warmer's read/encode loop and memcached.

Reading rows and encoding values (CPU) overlaps with memcached's round trips (the socket
calls release the GIL). Contract: at most ``depth`` batches wait in memory; outcomes are
handed back in order by :meth:`drain`; the first error raised by the writer (e.g.
:class:`~datatier.cache.protocol.NodeUnavailable`) stops the thread, later batches are
dropped, and the error is re-raised in the caller's thread by the next :meth:`put` and
returned by :meth:`drain`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

from datatier.cache.protocol import StoreItem
from datatier.cache.writer import CacheWriter, WriteOutcome

_STOP = None


class WritePipe:
    """Feeds batches to ``writer.write`` on one background thread."""

    def __init__(self, writer: CacheWriter, overwrite: bool, depth: int = 4) -> None:
        self.writer = writer
        self.overwrite = overwrite
        self.queue: queue.Queue[Sequence[StoreItem] | None] = queue.Queue(maxsize=depth)
        self.outcomes: list[WriteOutcome] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="cache-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            batches = [self.queue.get()]
            # Batches that queued up while the last write ran go out as one pipelined write:
            # fewer round trips when memcached, not encoding, is the bottleneck.
            while batches[-1] is not _STOP and not self.queue.empty():
                batches.append(self.queue.get_nowait())
            stop = batches[-1] is _STOP
            items = [item for batch in batches if batch is not _STOP for item in batch]
            try:
                if items and self.error is None:
                    self.outcomes.append(self.writer.write(items, self.overwrite))
            except BaseException as exc:
                self.error = exc
            finally:
                for _ in batches:
                    self.queue.task_done()
            if stop:
                return

    def _raise(self) -> None:
        if self.error is not None:  # stays set: later batches keep being dropped
            raise self.error

    def put(self, batch: Sequence[StoreItem]) -> None:
        """Queue a batch (blocks while ``depth`` batches wait); raises a writer error."""
        self._raise()
        self.queue.put(batch)

    def drain(self) -> tuple[list[WriteOutcome], BaseException | None]:
        """Wait until every queued batch is handled: the outcomes of those written, and the
        writer's error if it stopped (the caller decides when to raise it)."""
        self.queue.join()
        done, self.outcomes = self.outcomes, []
        return done, self.error

    def close(self) -> None:
        """Stop the thread (after the queued batches)."""
        self.queue.put(_STOP)
        self.thread.join()
