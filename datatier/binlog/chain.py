"""The archive as a chain: index records in ``seq`` order, each starting where the one
before ended, and the gaps where that fails.

A gap is named when a gap record says so (binlogs purged on the server before they were
archived), when a segment's object is missing, has another size than its record says or
was rewritten since it was archived (another ETag than its upload returned, by the rules
of :func:`datatier.backup.listing.is_rewritten`: records without an ETag, written before
it was recorded, are judged by size only), or when a record does not start at the
previous one's end. Coverage is the part of the
chain a replay may use: from a position to a target, every record present, no gap between.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from datatier.backup.listing import is_rewritten
from datatier.binlog.layout import data_prefix, index_prefix, seq_of_index_key
from datatier.binlog.records import IndexRecord, iso
from datatier.mysql.binlog.positions import Position
from datatier.storage.base import ObjectInfo, ObjectNotFound, ObjectStore


@dataclass(frozen=True)
class Gap:
    """Transactions after ``gtid_start`` up to ``gtid_end`` that the archive cannot replay."""

    seq: int  # the record at (or after) which the gap is
    gtid_start: Position
    gtid_end: Position
    reason: str

    def describe(self) -> str:
        start = self.gtid_start or "(start)"
        return f"gap at #{self.seq}: after {start} up to {self.gtid_end}: {self.reason}"


@dataclass
class Chain:
    """Records in ``seq`` order and the gaps found among them."""

    records: list[IndexRecord]
    gaps: list[Gap] = field(default_factory=list)
    objects: dict[str, ObjectInfo] = field(default_factory=dict)

    @property
    def segments(self) -> list[IndexRecord]:
        return [r for r in self.records if not r.is_gap]

    @property
    def start(self) -> Position:
        return self.records[0].gtid_start if self.records else Position()

    @property
    def end(self) -> Position:
        return self.records[-1].gtid_end if self.records else Position()

    @property
    def first_ts(self) -> int:
        return next((r.first_ts for r in self.segments if r.first_ts), 0)

    @property
    def last_ts(self) -> int:
        return next((r.last_ts for r in reversed(self.segments) if r.last_ts), 0)

    @property
    def next_seq(self) -> int:
        return self.records[-1].seq + 1 if self.records else 1

    def gaps_between(self, first_seq: int, last_seq: int) -> list[Gap]:
        return [g for g in self.gaps if first_seq <= g.seq <= last_seq]

    def window(self) -> dict[str, object]:
        """From/to GTID position and time, for reports."""
        return {
            "from_gtid": str(self.start),
            "to_gtid": str(self.end),
            "from_time": iso(self.first_ts) if self.first_ts else None,
            "to_time": iso(self.last_ts) if self.last_ts else None,
            "segments": len(self.segments),
            "bytes": sum(r.size for r in self.segments),
            "transactions": sum(r.transactions for r in self.segments),
        }


class RecordCache:
    """Records already read, by key and the ETag listed for them: a long-lived caller, such
    as a metrics collector, reads each one once, and again only once it is written anew
    (``binlogs accept-etags`` rewrites a record with its segment's new ETag)."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[str | None, IndexRecord]] = {}


def read_records(
    store: ObjectStore, policy: str, cache: RecordCache | None = None, jobs: int = 8
) -> list[IndexRecord]:
    """Every index record of ``policy``'s archive, in ``seq`` order (IntegrityFailure
    naming an unreadable one)."""
    listed = {
        info.key: info.etag
        for info in store.list_objects(index_prefix(policy))
        if seq_of_index_key(info.key) is not None
    }
    known = cache.records if cache is not None else {}

    def fetch(key: str) -> IndexRecord | None:
        hit = known.get(key)
        if hit is not None and hit[0] == listed[key]:  # no ETags listed: never rewritten
            return hit[1]
        try:
            raw = store.get_bytes(key)
        except ObjectNotFound:  # pruned since the listing
            return None
        return IndexRecord.decode(raw, f"{store.url}/{key}")

    keys = list(listed)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        found = list(pool.map(fetch, keys))
    records = [r for r in found if r is not None]
    if cache is not None:
        for key, record in zip(keys, found, strict=True):
            if record is not None:
                cache.records[key] = (listed[key], record)
    return sorted(records, key=lambda r: r.seq)


def analyse(records: list[IndexRecord], objects: dict[str, ObjectInfo] | None) -> Chain:
    """The chain of ``records``; with ``objects`` (the data listing), missing, resized and
    rewritten objects are gaps too."""
    chain = Chain(records, objects=objects or {})
    previous: IndexRecord | None = None
    for record in records:
        if record.is_gap:
            chain.gaps.append(Gap(record.seq, record.gtid_start, record.gtid_end, record.reason))
        elif objects is not None:
            info = objects.get(record.key or "")
            if info is None:
                chain.gaps.append(
                    Gap(
                        record.seq,
                        record.gtid_start,
                        record.gtid_end,
                        f"object {record.key} is missing",
                    )
                )
            elif info.size != record.size:
                chain.gaps.append(
                    Gap(
                        record.seq,
                        record.gtid_start,
                        record.gtid_end,
                        f"object {record.key} is {info.size} bytes, its record says {record.size}",
                    )
                )
            elif is_rewritten(record.object_record(), info):
                chain.gaps.append(
                    Gap(
                        record.seq,
                        record.gtid_start,
                        record.gtid_end,
                        f"object {record.key} was rewritten after it was archived (ETag "
                        f"{info.etag}, its upload returned {record.etag}): its bytes may not "
                        "be the binlog's",
                    )
                )
        if previous is not None and not record.gtid_start.same_state(previous.gtid_end):
            chain.gaps.append(
                Gap(
                    record.seq,
                    previous.gtid_end,
                    record.gtid_start,
                    f"record #{record.seq} does not start where #{previous.seq} ended",
                )
            )
        previous = record
    chain.gaps.sort(key=lambda g: g.seq)
    return chain


def load_chain(
    store: ObjectStore, policy: str, *, check_objects: bool = True, cache: RecordCache | None = None
) -> Chain:
    """Read and analyse ``policy``'s archive (one listing of the index, one of the data)."""
    records = read_records(store, policy, cache)
    objects = (
        {info.key: info for info in store.list_objects(data_prefix(policy))}
        if check_objects
        else None
    )
    return analyse(records, objects)


def records_after(chain: Chain, position: Position) -> Iterable[IndexRecord]:
    """Records holding at least one transaction beyond ``position``, in order."""
    return (r for r in chain.records if not position.covers(r.gtid_end))
