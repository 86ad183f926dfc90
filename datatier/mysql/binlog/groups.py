"""Event groups: the events of one transaction (or one DDL), from its GTID event to its end.

In a MariaDB binlog every transaction starts with a GTID event. A standalone group (DDL,
flag ``FL_STANDALONE``) ends with its first query event; a transaction ends with an XID
event, a ``COMMIT``/``ROLLBACK`` query event (non-transactional engines) or an XA PREPARE
event. :class:`GroupTracker` follows those boundaries event by event, so a binlog can be
cut only between groups (archiving) or replayed one whole group at a time (restore).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datatier.errors import IntegrityFailure
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.positions import Gtid
from datatier.mysql.binlog.query import parse_query, query_words


def ends_transaction(words: list[bytes]) -> bool:
    """Whether a statement starting with ``words`` ends its transaction (``ROLLBACK TO
    SAVEPOINT`` does not)."""
    if not words:
        return False
    if words[0] == b"COMMIT":
        return True
    return words[0] == b"ROLLBACK" and (len(words) < 2 or words[1] != b"TO")


@dataclass
class Group:
    """One transaction: its GTID, the GTID event's flags and its events' timestamps.
    ``events`` is filled only when the tracker keeps events (replay)."""

    gtid: Gtid
    flags: int
    first_ts: int
    commit_ts: int = 0
    events: list[bytes] = field(default_factory=list)

    @property
    def standalone(self) -> bool:
        return bool(self.flags & ev.FL_STANDALONE)


class GroupTracker:
    """Feed every event of a binlog stream, in order, to :meth:`feed`.

    ``feed`` returns the group an event completes (else None); :attr:`open` is the group in
    progress. Format description events set whether events carry a CRC32. With
    ``keep_events`` each group holds its events (bytes) for a replay.
    """

    def __init__(self, *, keep_events: bool = False, checksum: bool = True) -> None:
        self.keep_events = keep_events
        self.checksum = checksum
        self.fde: ev.FormatDescription | None = None
        self.open: Group | None = None

    @property
    def between_groups(self) -> bool:
        return self.open is None

    def feed(self, event: bytes, head: ev.Header) -> Group | None:
        kind = head.type
        if kind == ev.FORMAT_DESCRIPTION:
            self.fde = ev.format_description(event)
            self.checksum = self.fde.checksum
            return None
        if kind == ev.GTID:
            if self.open is not None:
                raise IntegrityFailure(
                    f"binlog: GTID {ev.gtid_event(event)[0]} starts inside {self.open.gtid} "
                    "(a transaction without its end)"
                )
            gtid, flags = ev.gtid_event(event)
            self.open = Group(gtid, flags, head.timestamp)
            if self.keep_events:
                self.open.events.append(event)
            return None
        group = self.open
        if group is None:
            return None  # informational events between groups
        if self.keep_events:
            group.events.append(event)
        if self._ends(group, event, kind):
            group.commit_ts = head.timestamp
            self.open = None
            return group
        return None

    def _ends(self, group: Group, event: bytes, kind: int) -> bool:
        if kind in (ev.XID, ev.XA_PREPARE):
            return True
        if kind not in ev.QUERY_EVENTS:
            return False
        if group.standalone:
            return True
        if kind == ev.QUERY_COMPRESSED:
            return ends_transaction(parse_query(event, self.checksum).words)
        return ends_transaction(query_words(event, self.checksum))
