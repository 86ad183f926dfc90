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

The crawler's dump is a live walk that can miss keys (see :mod:`datatier.cache.census`): the
source's item count is taken before and after; when the dump listed fewer keys, a second pass
(another dump) copies the keys the target still lacks, with ``add``, checking presence on the
target first (``mg``, no value), so memory stays flat (no set of keys is kept). Keys still
unaccounted for are reported (``unlisted``, ``recovered``); when the source was unchanged
throughout (and no ``match``), they were certainly missed (``missed``) and the exit code is 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from datatier.cache.census import shortfall, take_census
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
    source_items_before: int | None = None  # curr_items, expired items freed first
    source_items_after: int | None = None
    unlisted: int = 0  # keys the crawler did not list in the first pass (at least)
    second_pass: bool = False
    second_pass_listed: int = 0
    recovered: int = 0  # keys the second pass copied (also counted in copied)
    missed: int = 0  # keys certainly never copied (source quiet, no --match)

    def exit_code(self) -> ExitCode:
        """1 if a key failed, a target restart wiped keys this copy wrote, or keys were
        certainly missed, else 0."""
        return ExitCode.FAILED if self.failed or self.keys_lost or self.missed else ExitCode.OK

    def shortfall_note(self) -> str | None:
        """The warning when the crawler listed fewer keys than the source held (None if not,
        or when the second pass made up for every one)."""
        if not self.unlisted or (self.recovered >= self.unlisted and not self.missed):
            return None
        if self.missed:
            return (
                f"{self.missed} keys of {self.source} were never listed by its LRU crawler "
                f"(source unchanged meanwhile) and were not copied: run the copy again"
            )
        return (
            f"the LRU crawler listed {self.unlisted} fewer keys than {self.source} held; the "
            f"second pass copied {self.recovered}: up to {self.unlisted - self.recovered} "
            f"keys may be missing on {self.target} (the source changed during the copy)"
        )

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
        the target stays unreachable for longer than ``retry_for``). When the source holds
        more keys than the crawler listed, a second pass copies the keys the target still
        lacks (``add``; a present key is not even fetched) and the report says how many."""
        report = CopyReport(self.source, self.target, self.match.decode() if self.match else None)
        started = time.monotonic()
        dumper = MemcachedNode(self.source, timeout=self.timeout)
        reader = MemcachedNode(self.source, timeout=self.timeout)
        checker = MemcachedNode(self.target, timeout=self.timeout)
        writer = CacheWriter(
            [self.target],
            timeout=self.timeout,
            on_error=self.on_error,
            retry_for=self.retry_for,
            rate=self.rate,
        )
        try:
            writer.open()
            target_time = int(checker.stats().get("time", time.time()))
            before = take_census(reader)
            # exp values are in the source's clock; long TTLs are written as absolute
            # times in the target's clock
            offsets = (
                int(reader.stats().get("time", time.time())) - int(time.time()),
                target_time - int(time.time()),
            )
            passes = CopyPass(self, dumper, reader, writer, offsets)
            passes.run(report, None)
            after = take_census(reader)
            report.source_items_before, report.source_items_after = before.items, after.items
            report.unlisted, certain = shortfall(before, after, report.scanned)
            if report.unlisted:
                extra = CopyReport(self.source, self.target, report.match)
                passes.run(extra, checker)
                report.second_pass, report.second_pass_listed = True, extra.scanned
                report.recovered = extra.copied
                report.copied += extra.copied
                report.bytes += extra.bytes
                report.failed += extra.failed
                quiet = take_census(reader).counters == before.counters
                if certain and quiet and self.match is None:
                    report.missed = max(0, report.unlisted - report.recovered)
        finally:
            report.record(writer)
            for node in (dumper, reader, checker):
                node.close()
            writer.close()
            report.seconds = time.monotonic() - started
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
        return items


class CopyPass:
    """One metadump pass of a copy: list, fetch, write (through a :class:`WritePipe`)."""

    def __init__(
        self,
        copier: CacheCopier,
        dumper: MemcachedNode,
        reader: MemcachedNode,
        writer: CacheWriter,
        offsets: tuple[int, int],
    ) -> None:
        self.copier, self.dumper, self.reader, self.writer = copier, dumper, reader, writer
        self.offsets = offsets

    def run(self, report: CopyReport, missing_on: MemcachedNode | None) -> None:
        """Copy what the dump lists into ``report``'s counts. With ``missing_on`` (the
        target), only keys that node lacks are fetched, and written with ``add``."""
        copier = self.copier
        pipe = WritePipe(self.writer, copier.overwrite and missing_on is None)
        progress = copier.on_progress if missing_on is None else None
        error: BaseException | None = None
        try:
            batch: list[MetaEntry] = []
            for entry in self.dumper.metadump():
                report.scanned += 1
                if copier.match is not None and not entry.key.startswith(copier.match):
                    continue
                report.matched += 1
                batch.append(entry)
                if len(batch) >= copier.batch_size:
                    self._put(pipe, batch, report, missing_on)
                    if progress is not None:
                        progress(len(batch))
                    batch = []
            if batch:
                self._put(pipe, batch, report, missing_on)
                if progress is not None:
                    progress(len(batch))
        finally:
            outcomes, error = pipe.drain()
            pipe.close()
            for outcome in outcomes:
                report.copied += outcome.stored
                report.skipped_present += outcome.present
                report.too_large += outcome.too_large
                report.failed += outcome.failed
                report.bytes += outcome.bytes
            if error is not None:
                raise error

    def _put(
        self,
        pipe: WritePipe,
        batch: list[MetaEntry],
        report: CopyReport,
        missing_on: MemcachedNode | None,
    ) -> None:
        if missing_on is not None:
            there = missing_on.present([e.key for e in batch])
            report.skipped_present += sum(there)
            batch = [e for e, found in zip(batch, there, strict=True) if not found]
        items = self.copier._prepare(batch, self.reader, self.writer, report, self.offsets)
        pipe.put(StoreBatch.of(items))
