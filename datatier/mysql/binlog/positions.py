"""MariaDB GTID positions: ``domain-server-seq`` triples, one per replication domain.

A *position* (``0-1-42,1-2-7``) is a server's GTID state: for each domain, the last
transaction applied. Within a domain, sequence numbers only grow (``gtid_strict_mode``), so
a transaction ``D-S-N`` is *included* in a position when the position's domain ``D`` has a
sequence number of at least ``N``. Pure values; no SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datatier.errors import UsageError

GTID_TEXT = re.compile(r"^(\d{1,10})-(\d{1,10})-(\d{1,20})$", re.ASCII)


@dataclass(frozen=True, order=True)
class Gtid:
    """One transaction's global ID."""

    domain: int
    server_id: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.seq}"

    @classmethod
    def parse(cls, text: str, what: str = "GTID") -> Gtid:
        """``D-S-N``; UsageError naming ``what`` otherwise."""
        match = GTID_TEXT.match(text.strip())
        if not match:
            raise UsageError(
                f"{what} {text!r} is not a MariaDB GTID", hint="GTIDs look like 0-1-12345"
            )
        domain, server, seq = (int(g) for g in match.groups())
        if domain >= 1 << 32 or server >= 1 << 32 or seq >= 1 << 64:
            raise UsageError(f"{what} {text!r} is out of range")
        return cls(domain, server, seq)


@dataclass(frozen=True)
class Position:
    """A GTID state: the last GTID per domain (immutable; ``with_gtid`` returns a new one)."""

    gtids: tuple[Gtid, ...] = ()

    @classmethod
    def parse(cls, text: str, what: str = "GTID position") -> Position:
        """A comma-separated list of GTIDs, at most one per domain ('' is the empty state)."""
        found: dict[int, Gtid] = {}
        for part in text.replace("\n", "").split(","):
            if not part.strip():
                continue
            gtid = Gtid.parse(part, what)
            if gtid.domain in found:
                raise UsageError(f"{what} {text!r} names domain {gtid.domain} twice")
            found[gtid.domain] = gtid
        return cls(tuple(sorted(found.values())))

    @classmethod
    def of(cls, gtids: dict[int, Gtid]) -> Position:
        return cls(tuple(sorted(gtids.values())))

    def __str__(self) -> str:
        return ",".join(str(g) for g in self.gtids)

    def __bool__(self) -> bool:
        return bool(self.gtids)

    def by_domain(self) -> dict[int, Gtid]:
        return {g.domain: g for g in self.gtids}

    def seq(self, domain: int) -> int:
        """The last sequence number of ``domain`` (0: nothing of that domain)."""
        for gtid in self.gtids:
            if gtid.domain == domain:
                return gtid.seq
        return 0

    def domains(self) -> set[int]:
        return {g.domain for g in self.gtids}

    def includes(self, gtid: Gtid) -> bool:
        """Whether ``gtid`` is at or before this position in its domain."""
        return self.seq(gtid.domain) >= gtid.seq

    def covers(self, other: Position) -> bool:
        """Whether every transaction of ``other`` is included in this position."""
        return all(self.includes(g) for g in other.gtids)

    def with_gtid(self, gtid: Gtid) -> Position:
        """This position after transaction ``gtid``."""
        found = self.by_domain()
        found[gtid.domain] = gtid
        return Position.of(found)

    def same_state(self, other: Position) -> bool:
        """Equal sequence numbers per domain (server IDs may differ after a failover only
        if the sequences agree: strict mode makes ``D-*-N`` one transaction)."""
        mine = {g.domain: g.seq for g in self.gtids if g.seq}
        theirs = {g.domain: g.seq for g in other.gtids if g.seq}
        return mine == theirs


def lowest(positions: list[Position]) -> Position:
    """Per domain, the lowest sequence over ``positions`` (a domain missing in one of them
    counts as 0: nothing of it is included everywhere)."""
    if not positions:
        return Position()
    domains = set().union(*(p.domains() for p in positions))
    found: dict[int, Gtid] = {}
    for domain in domains:
        gtids = [next((g for g in p.gtids if g.domain == domain), None) for p in positions]
        if any(g is None for g in gtids):
            continue
        found[domain] = min((g for g in gtids if g is not None), key=lambda g: g.seq)
    return Position.of(found)
