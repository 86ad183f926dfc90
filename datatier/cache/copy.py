"""``cache copy``: warm a new memcached node from a warm one, as a one-shot job.

Contract: keys are enumerated with ``lru_crawler metadump all`` (streamed, so memory stays
flat whatever the number of keys), values fetched in batches with their flags and written
with their remaining TTL (keys that expire within a second are skipped; a key with no
expiry stays without one). A key already on the target is left alone unless ``overwrite``.
Keys evicted or expired between the dump and the fetch are counted as ``vanished``; values
over the target's item size limit as ``too_large``. Writes go through
:class:`~datatier.cache.writer.CacheWriter` on a background thread, so a target restart is
ridden out (``on_error="continue"``, up to ``retry_for`` seconds) and reported: the keys
copied to the target before its restart are gone, counted in ``keys_lost`` (still counted in
``copied``), and :meth:`CopyReport.exit_code` is then 1, as for a warm.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from datatier.cache.pipe import WritePipe
from datatier.cache.protocol import (
    RELATIVE_TTL_LIMIT,
    MemcachedNode,
    MetaEntry,
    StoreBatch,
    StoreItem,
)
from datatier.cache.writer import CacheWriter, OnError, RestartLosses
from datatier.errors import ExitCode
from datatier.ratelimit import RateLimit


@dataclass
class CopyReport(RestartLosses):
    """Counts of one copy (with its :class:`RestartLosses`)."""

    source: str
    target: str
    match: str | None
    scanned: int = 0
    matched: int = 0
    copied: int = 0
    skipped_present: int = 0
    skipped_expiring: int = 0
    vanished: int = 0
    too_large: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def exit_code(self) -> ExitCode:
        """1 if a key failed or a target restart wiped keys this copy wrote, else 0."""
        return ExitCode.FAILED if self.failed or self.keys_lost else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["keys_per_second"] = round(self.copied / max(self.seconds, 1e-9), 1)
        return doc


def remaining_exptime(exp: int, source_now: int, target_now: int) -> int | None:
    """The exptime to write on the target for an item whose absolute expiry on the source is
    ``exp`` (-1/0: never); None when it expires within a second."""
    if exp <= 0:
        return 0
    left = exp - source_now
    if left < 1:
        return None
    return left if left <= RELATIVE_TTL_LIMIT else target_now + left


class CacheCopier:
    """Copies keys from ``source`` to ``target`` (HOST:PORT each)."""

    def __init__(
        self,
        source: str,
        target: str,
        *,
        match: str | None = None,
        overwrite: bool = False,
        rate: float | None = None,
        batch_size: int = 500,
        timeout: float = 5.0,
        on_error: OnError = "continue",
        retry_for: float = 10.0,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.source, self.target = source, target
        self.match = match.encode() if match else None
        self.overwrite = overwrite
        self.rate = RateLimit(rate)
        self.batch_size = batch_size
        self.timeout = timeout
        self.on_error = on_error
        self.retry_for = retry_for
        self.on_progress = on_progress

    def run(self) -> CopyReport:
        """Copy every (matching) key; NodeUnavailable if either node cannot be reached (or
        the target stays unreachable for longer than ``retry_for``)."""
        report = CopyReport(self.source, self.target, self.match.decode() if self.match else None)
        started = time.monotonic()
        dumper = MemcachedNode(self.source, timeout=self.timeout)
        reader = MemcachedNode(self.source, timeout=self.timeout)
        writer = CacheWriter(
            [self.target],
            timeout=self.timeout,
            on_error=self.on_error,
            retry_for=self.retry_for,
            rate=self.rate,
        )
        pipe: WritePipe | None = None
        try:
            writer.open()
            with MemcachedNode(self.target, timeout=self.timeout) as target:
                target_time = int(target.stats().get("time", time.time()))
            # exp values are in the source's clock; long TTLs are written as absolute
            # times in the target's clock
            offsets = (
                int(reader.stats().get("time", time.time())) - int(time.time()),
                target_time - int(time.time()),
            )
            pipe = WritePipe(writer, self.overwrite)
            batch: list[MetaEntry] = []
            for entry in dumper.metadump():
                report.scanned += 1
                if self.match is not None and not entry.key.startswith(self.match):
                    continue
                report.matched += 1
                batch.append(entry)
                if len(batch) >= self.batch_size:
                    pipe.put(StoreBatch.of(self._prepare(batch, reader, writer, report, offsets)))
                    batch = []
            if batch:
                pipe.put(StoreBatch.of(self._prepare(batch, reader, writer, report, offsets)))
        finally:
            error: BaseException | None = None
            if pipe is not None:
                outcomes, error = pipe.drain()
                pipe.close()
                for outcome in outcomes:
                    report.copied += outcome.stored
                    report.skipped_present += outcome.present
                    report.too_large += outcome.too_large
                    report.failed += outcome.failed
                    report.bytes += outcome.bytes
            report.record(writer)
            for node in (dumper, reader):
                node.close()
            writer.close()
            report.seconds = time.monotonic() - started
        if error is not None:
            raise error
        return report

    def _prepare(
        self,
        batch: list[MetaEntry],
        reader: MemcachedNode,
        writer: CacheWriter,
        report: CopyReport,
        offsets: tuple[int, int],
    ) -> list[StoreItem]:
        """The items of ``batch`` to write: fetched with their flags, TTLs recomputed."""
        values = reader.get_many([e.key for e in batch])
        local = int(time.time())
        now, target_now = local + offsets[0], local + offsets[1]
        items: list[StoreItem] = []
        for entry in batch:
            found = values.get(entry.key)
            if found is None:
                report.vanished += 1
                continue
            exptime = remaining_exptime(entry.exp, now, target_now)
            if exptime is None:
                report.skipped_expiring += 1
                continue
            flags, value = found
            if not writer.fits(entry.key, len(value)):
                report.too_large += 1
                continue
            items.append(StoreItem(entry.key, value, flags, exptime))
        if self.on_progress is not None:
            self.on_progress(len(batch))
        return items
