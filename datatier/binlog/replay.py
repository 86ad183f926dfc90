"""Replay archived segments up to a target: which transactions, and applying them.

Targets (both stop in binlog order, the primary's commit order):

* ``until_gtid`` G: every transaction up to and including G (as ``START SLAVE UNTIL
  master_gtid_pos=G`` and ``mariadb-binlog --stop-position=G``). G must be in the archive
  exactly (domain, server and sequence).
* ``until_ts`` T (whole seconds): every transaction whose commit event's timestamp is
  before T (as ``mariadb-binlog --stop-datetime=T``); the first transaction committed at or
  after T, and everything after it, is not replayed.

Transactions the base backup already holds (at or before its GTID position, per domain)
are skipped. :func:`scan` reads the staged segments once without changing anything (it
refuses what cannot be replayed, checks the target is reached and measures the replay);
:func:`apply` replays them through an :class:`~datatier.mysql.binlog.applier.Applier`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from datatier.binlog.records import IndexRecord
from datatier.errors import IntegrityFailure
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.applier import Applier, ApplyStats
from datatier.mysql.binlog.groups import Group, GroupTracker
from datatier.mysql.binlog.positions import Gtid, Position
from datatier.mysql.binlog.translate import ReplayRefused, Selection, Translator

Loader = Callable[[IndexRecord], bytes]
"""The decompressed bytes of a staged, verified segment."""


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


def groups(
    segments: list[IndexRecord], load: Loader, start: Position, target: Target, report: ScanReport
) -> Iterator[tuple[ev.FormatDescription, Group]]:
    """The transactions to replay, in order, each with its format description."""
    wanted = target.until_gtid
    for record in segments:
        data = load(record)
        where = record.key or f"segment #{record.seq}"
        if not data.startswith(ev.MAGIC):
            raise IntegrityFailure(f"{where} is not a binlog file (no magic)")
        tracker = GroupTracker(keep_events=True)
        fde: ev.FormatDescription | None = None
        for view in ev.split_events(memoryview(data)[4:], where):
            event = bytes(view)
            head = ev.header(event)
            if head.type == ev.FORMAT_DESCRIPTION:
                fde = ev.format_description(event)
                tracker.feed(event, head)
                continue
            group = tracker.feed(event, head)
            if group is None:
                continue
            if fde is None:
                raise IntegrityFailure(f"{where}: transactions before a format description event")
            if start.includes(group.gtid):
                report.skipped += 1
                continue
            if target.until_ts is not None and group.commit_ts >= target.until_ts:
                report.reached = True
                report.stop = f"first transaction at or after the target: {group.gtid}"
                return
            if _passes(group.gtid, wanted):
                raise ReplayRefused(
                    f"GTID {wanted} is not in the archive (it holds {group.gtid} there)"
                )
            report.last, report.last_ts = group.gtid, group.commit_ts
            yield fde, group
            if wanted is not None and group.gtid == wanted:
                report.reached = True
                report.stop = f"the target transaction {wanted}"
                return
        if tracker.open is not None:
            raise IntegrityFailure(f"{where} ends inside transaction {tracker.open.gtid}")


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
    *,
    max_binlog: int = 8 << 20,
) -> ScanReport:
    """Read everything a replay would apply, change nothing; ReplayRefused (exit 2) for
    what cannot be replayed, including a GTID target that is not in the segments."""
    report = ScanReport()
    translator = Translator(selection, lambda _id: "utf8mb4", max_binlog=max_binlog)
    for fde, group in groups(segments, load, start, target, report):
        statements = translator.statements(fde, group)
        if not statements:
            report.skipped += 1
            continue
        report.transactions += 1
        size = sum(len(s) for s in statements)
        report.statement_bytes += size
        report.largest_statement = max(report.largest_statement, max(len(s) for s in statements))
    if target.until_gtid is not None and not report.reached:
        raise ReplayRefused(f"GTID {target.until_gtid} is not in the archived segments")
    if target.until_gtid is None and target.until_ts is None:
        report.reached = True
    return report


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
    try:
        for fde, group in groups(segments, load, start, target, report):
            statements = translator.statements(fde, group)
            if statements:
                applier.add(group.gtid, statements)
                if on_transaction is not None:
                    on_transaction(applier.stats)
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
