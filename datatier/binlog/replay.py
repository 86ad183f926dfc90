"""Replay archived segments up to a target: which transactions, and applying them.

Targets (both stop in binlog order, the primary's commit order):

* ``until_gtid`` G: every transaction up to and including G (as ``START SLAVE UNTIL
  master_gtid_pos=G`` and ``mariadb-binlog --stop-position=G``). G must be in the archive
  exactly (domain, server and sequence).
* ``until_ts`` T (whole seconds): every transaction whose commit event's timestamp is
  before T (as ``mariadb-binlog --stop-datetime=T``); the first transaction stamped at or
  after T, and everything after it, is not replayed. The timestamp is when the
  committing statement started (COMMIT, or an autocommit statement): a long autocommit
  statement started before T is replayed even if it committed after T.

Transactions the base backup already holds (at or before its GTID position, per domain)
are skipped. :func:`scan` reads the staged segments once without changing anything (it
refuses what cannot be replayed, checks the target is reached and measures the replay);
:func:`apply` replays them through an :class:`~datatier.mysql.binlog.applier.Applier`.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from datatier.binlog.records import IndexRecord, iso
from datatier.errors import IntegrityFailure
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.applier import Applier, ApplyStats
from datatier.mysql.binlog.groups import Group, ends_transaction
from datatier.mysql.binlog.positions import Gtid, Position
from datatier.mysql.binlog.query import parse_query, query_words
from datatier.mysql.binlog.selection import ReplayRefused, Selection
from datatier.mysql.binlog.translate import Translator

Loader = Callable[[IndexRecord], bytes]
"""The decompressed bytes of a staged, verified segment."""
GTID_BODY = struct.Struct("<QIB")
MERGE_TRANSACTIONS = 500


@dataclass(frozen=True)
class Target:
    """Where a replay stops (see module docstring); both None: the end of the segments."""

    until_gtid: Gtid | None = None
    until_ts: int | None = None


@dataclass
class ScanReport:
    transactions: int = 0
    skipped: int = 0  # in the base backup already, or of nothing restored
    statement_bytes: int = 0
    largest_statement: int = 0
    reached: bool = False
    last: Gtid | None = None
    last_ts: int = 0
    stop: str = ""
    accounts_skipped: int = 0  # account statements left out (never replayed)
    accounts_listed: list[tuple[str, str]] = field(default_factory=list)  # (GTID, start)
    tables: set[tuple[str, str]] = field(default_factory=set)  # written (Translator.tables)
    mapped: set[tuple[str, str]] = field(default_factory=set)  # rows' (Translator.mapped)
    created: set[tuple[str, str, str]] = field(default_factory=set)  # (Translator.created)
    dropped_databases: set[str] = field(default_factory=set)  # (Translator's)

    @property
    def reached_text(self) -> str:
        """Where the replay stops, for a plan's summary."""
        if not self.last:
            return "(the base backup is at the target)"
        return f"up to {self.last}" + (f" ({iso(self.last_ts)})" if self.last_ts else "")


def groups(
    segments: list[IndexRecord], load: Loader, start: Position, target: Target, report: ScanReport
) -> Iterator[tuple[ev.FormatDescription, Group]]:
    """The transactions to replay, in order, each with its format description. (One tight
    loop over the events: it runs for every event of the replay, twice.)"""
    wanted = target.until_gtid
    until_ts = target.until_ts
    unpack = ev.HEADER.unpack_from
    gtid_body = GTID_BODY.unpack_from
    for record in segments:
        data = load(record)
        where = record.key or f"segment #{record.seq}"
        if not data.startswith(ev.MAGIC):
            raise IntegrityFailure(f"{where} is not a binlog file (no magic)")
        fde: ev.FormatDescription | None = None
        group: Group | None = None
        at, end = 4, len(data)
        while at < end:
            if end - at < ev.HEADER_LEN:
                raise IntegrityFailure(f"{where}: truncated binlog event at offset {at}")
            ts, kind, server_id, size, _pos, _flags = unpack(data, at)
            if size < ev.HEADER_LEN or at + size > end:
                raise IntegrityFailure(f"{where}: truncated or corrupt binlog event at offset {at}")
            event = data[at : at + size]
            at += size
            if kind == ev.GTID:
                if group is not None:
                    raise IntegrityFailure(f"{where}: a transaction without its end ({group.gtid})")
                seq, domain, flags = gtid_body(event, ev.HEADER_LEN)
                group = Group(Gtid(domain, server_id, seq), flags, ts, events=[event])
                continue
            if group is None:
                if kind == ev.FORMAT_DESCRIPTION:
                    fde = ev.format_description(event)
                continue
            group.events.append(event)
            if kind == ev.XID or kind == ev.XA_PREPARE:
                pass
            elif kind in ev.QUERY_EVENTS and fde is not None:
                if not group.standalone and not _ends(event, kind, fde):
                    continue
            else:
                continue
            done, group = group, None
            done.commit_ts = ts
            if fde is None:
                raise IntegrityFailure(f"{where}: transactions before a format description event")
            if start.includes(done.gtid):
                report.skipped += 1
                continue
            if until_ts is not None and done.commit_ts >= until_ts:
                report.reached = True
                report.stop = f"first transaction at or after the target: {done.gtid}"
                return
            if _passes(done.gtid, wanted):
                raise ReplayRefused(
                    f"GTID {wanted} is not in the archive (it holds {done.gtid} there)",
                    hint="--until-gtid takes a GTID the archive holds exactly (D-S-N: domain, "
                    "server id, sequence)",
                )
            report.last, report.last_ts = done.gtid, done.commit_ts
            yield fde, done
            if wanted is not None and done.gtid == wanted:
                report.reached = True
                report.stop = f"the target transaction {wanted}"
                return
        if group is not None:
            raise IntegrityFailure(f"{where} ends inside transaction {group.gtid}")


def _ends(event: bytes, kind: int, fde: ev.FormatDescription) -> bool:
    if kind == ev.QUERY_COMPRESSED:
        return ends_transaction(parse_query(event, fde.checksum).words)
    return ends_transaction(query_words(event, fde.checksum))


def _passes(gtid: Gtid, wanted: Gtid | None) -> bool:
    """Whether ``gtid`` lies beyond ``wanted`` (or is another transaction at its place)."""
    if wanted is None or gtid.domain != wanted.domain:
        return False
    return gtid.seq > wanted.seq or (gtid.seq == wanted.seq and gtid != wanted)


def scan(
    segments: list[IndexRecord],
    load: Loader,
    start: Position,
    target: Target,
    selection: Selection,
    charset_name: Callable[[int], str],
    *,
    max_binlog: int = 8 << 20,
) -> ScanReport:
    """Read everything a replay would apply, change nothing; ReplayRefused (exit 2) for
    what cannot be replayed, including a GTID target that is not in the segments.
    ``charset_name``: as for :func:`apply`."""
    report = ScanReport()
    translator = Translator(selection, charset_name, max_binlog=max_binlog)
    for fde, group in groups(segments, load, start, target, report):
        rows = translator.rows_only(fde, group)
        if rows is not None:
            sizes = translator.binlog_sizes(rows)
        else:
            sizes = [len(s) for s in translator.statements(fde, group)]
        if not sizes:
            report.skipped += 1
            continue
        report.transactions += 1
        report.statement_bytes += sum(sizes)
        report.largest_statement = max(report.largest_statement, max(sizes))
    report.accounts_skipped = translator.accounts_skipped
    report.accounts_listed = translator.accounts_listed
    report.tables, report.mapped = translator.tables, translator.mapped
    report.created, report.dropped_databases = translator.created, translator.dropped_databases
    if target.until_gtid is not None and target.until_gtid in start.gtids:
        report.reached = True  # the base backup is exactly at the target: nothing to replay
    if target.until_gtid is not None and not report.reached:
        raise ReplayRefused(f"GTID {target.until_gtid} is not in the archived segments")
    if target.until_gtid is None and target.until_ts is None:
        report.reached = True
    return report


class _RowBatch:
    """Consecutive plain row transactions, applied together: one transaction, one BINLOG
    statement (up to ``MERGE_TRANSACTIONS`` of them or ``max_binlog`` bytes). The rows are
    applied in the same order, so the final state is the same as one commit each."""

    def __init__(self, translator: Translator, applier: Applier, max_binlog: int) -> None:
        self.translator = translator
        self.applier = applier
        self.max_binlog = max_binlog
        self.statements: list[list[bytes]] = []
        self.size = 0
        self.first: Gtid | None = None
        self.last: Gtid | None = None
        self.count = 0

    def add(self, gtid: Gtid, statements: list[list[bytes]]) -> None:
        size = sum(len(e) for statement in statements for e in statement)
        if self.count and (self.size + size > self.max_binlog or self.count >= MERGE_TRANSACTIONS):
            self.flush()
        self.first = self.first or gtid
        self.last = gtid
        self.statements.extend(statements)
        self.size += size
        self.count += 1

    def flush(self) -> None:
        if not self.count:
            return
        label = str(self.first) if self.count == 1 else f"{self.first}..{self.last}"
        sql = self.translator.transaction(self.statements)
        self.applier.add(label, sql, transactions=self.count)
        self.statements, self.size, self.first, self.last, self.count = [], 0, None, None, 0


@dataclass
class ApplyReport:
    transactions: int
    statements: int
    bytes: int
    round_trips: int
    last: str
    seconds: float


def apply(
    segments: list[IndexRecord],
    load: Loader,
    start: Position,
    target: Target,
    selection: Selection,
    applier: Applier,
    charset_name: Callable[[int], str],
    *,
    max_binlog: int = 8 << 20,
    on_transaction: Callable[[ApplyStats], None] | None = None,
) -> ApplyReport:
    """Replay the segments' transactions after ``start`` up to ``target`` on ``applier``."""
    started = time.monotonic()
    translator = Translator(selection, charset_name, max_binlog=max_binlog)
    report = ScanReport()
    batch = _RowBatch(translator, applier, max_binlog)
    try:
        for fde, group in groups(segments, load, start, target, report):
            rows = translator.rows_only(fde, group) if translator.session.fde == fde.event else None
            if rows is not None:
                if rows:
                    batch.add(group.gtid, rows)
                continue
            statements = translator.statements(fde, group)
            if statements:
                batch.flush()
                applier.add(str(group.gtid), statements)
            if on_transaction is not None:
                on_transaction(applier.stats)
        batch.flush()
    finally:
        applier.close()
    stats = applier.stats
    return ApplyReport(
        transactions=stats.transactions,
        statements=stats.statements,
        bytes=stats.bytes,
        round_trips=stats.round_trips,
        last=str(stats.last or ""),
        seconds=round(time.monotonic() - started, 3),
    )
