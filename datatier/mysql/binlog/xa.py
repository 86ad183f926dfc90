"""XA transactions in a point-in-time replay: never replayed.

An XA transaction is binlogged as two groups: its prepare (``XA START`` .. ``XA END``, the
rows, an ``XA_PREPARE`` event) and, later, its ``XA COMMIT``/``XA ROLLBACK``. A replay cannot
reproduce the prepared state, so :class:`XaLedger` refuses (:class:`ReplayRefused`, exit 2)
a prepare that acts on a restored table, whatever the session's default database, and a
commit whose prepare the replay did not see left out (prepared before the base's snapshot,
its rows would be lost); other XA transactions are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datatier.mysql.binlog.positions import Gtid
from datatier.mysql.binlog.selection import ReplayRefused


def shown_xid(xid: str) -> str:
    """An xid as ``XA COMMIT`` writes it (``X'..',X'..',N``, upper-cased) as an application
    wrote it: ``'gtrid'`` (with ``'bqual'`` and the format ID when they are not the
    defaults) when printable; else as given."""
    parts = xid.split(",")
    if len(parts) != 3 or not all(p.startswith("X'") and p.endswith("'") for p in parts[:2]):
        return xid
    try:
        gtrid, bqual = (bytes.fromhex(p[2:-1]).decode("ascii") for p in parts[:2])
    except ValueError:
        return xid
    if not (gtrid + bqual).isprintable():
        return xid
    shown = [f"'{gtrid}'"]
    if bqual or parts[2] != "1":
        shown.append(f"'{bqual}'")
    if parts[2] != "1":
        shown.append(parts[2])
    return ",".join(shown)


@dataclass
class XaLedger:
    """The xids of XA transactions a replay left out (prepared in its range)."""

    left: set[str] = field(default_factory=set)

    def settle(self, gtid: Gtid, steps: list[tuple[str, str]], acts: bool) -> None:
        """The XA group ``gtid`` (its ``(verb, xid)`` steps) is left out, or refused: when
        it acts on a restored table (``acts``), or commits an XA transaction whose prepare
        was not left out by this replay."""
        started = [xid for verb, xid in steps if verb == "START"]
        if acts:
            xid = shown_xid(started[0]) if started else "(unknown xid)"
            raise ReplayRefused(
                f"transaction {gtid} is XA transaction {xid}, prepared with changes to a "
                "restored database: an XA prepared transaction cannot be replayed",
                hint=f"restore up to the transaction before {gtid} (--until-gtid), then "
                "redo that XA transaction's changes by hand; nothing was changed",
            )
        self.left.update(started)
        unseen = [xid for verb, xid in steps if verb == "COMMIT" and xid not in self.left]
        if unseen:
            raise ReplayRefused(
                f"transaction {gtid} commits XA transaction {shown_xid(unseen[0])}, prepared "
                "before the replayed range (its changes are not in the base backup): not "
                "replayable",
                hint="restore from a backup taken after that commit, or to a point before it",
            )
