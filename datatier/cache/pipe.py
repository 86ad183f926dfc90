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

from datatier.cache.protocol import StoreBatch
from datatier.cache.writer import CacheWriter, WriteOutcome

_STOP = None


class WritePipe:
    """Feeds batches to ``writer.write`` on one background thread."""

    def __init__(self, writer: CacheWriter, overwrite: bool, depth: int = 4) -> None:
        self.writer = writer
        self.overwrite = overwrite
        self.queue: queue.Queue[StoreBatch | None] = queue.Queue(maxsize=depth)
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
            try:
                items = _merge([batch for batch in batches if batch is not None])
                if items is not None and self.error is None:
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

    def put(self, batch: StoreBatch) -> None:
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


def _merge(batches: Sequence[StoreBatch]) -> StoreBatch | None:
    """One batch of every item of ``batches`` (None when there is none)."""
    batches = [b for b in batches if len(b)]
    if len(batches) <= 1:
        return batches[0] if batches else None
    keys: list[bytes] = []
    values: list[bytes] = []
    columns: dict[str, list[int]] = {"flags": [], "exptime": []}
    for batch in batches:
        keys += batch.keys
        values += batch.values
        for name, column in columns.items():
            own = getattr(batch, name)
            column += [own] * len(batch) if isinstance(own, int) else own
    flags, exptime = columns["flags"], columns["exptime"]
    return StoreBatch(
        keys,
        values,
        flags[0] if flags.count(flags[0]) == len(flags) else flags,
        exptime[0] if exptime.count(exptime[0]) == len(exptime) else exptime,
    )
