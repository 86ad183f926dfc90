"""Until when a binlog source has written everything it will ever stamp (SQL).

Contract. A transaction's binlog timestamp is the start of the statement that commits it
(``COMMIT``, or the autocommit statement itself), so a source may still write transactions
stamped in the past: those of statements running now. :func:`probe` reads, in this order,

1. the server's clock (``@@timestamp``: the clock binlog events are stamped with) and its
   running statements (``information_schema.PROCESSLIST``: every thread not asleep, not a
   binlog dump, not a daemon, not this connection);
2. the end of its binlog (``SHOW MASTER STATUS``).

:attr:`Probe.bound` is then a moment before which nothing will be written after that end:
a transaction written later either commits in a statement running at (1), stamped no
earlier than its start, or in one started after (1). A reader that has received the binlog
up to the probe's end (:meth:`Probe.reached`) holds every transaction stamped before
``bound`` that the source will ever write ahead of it. It is taken :data:`MARGIN` early
(the process list's elapsed time and ``@@timestamp`` come from different clocks).

``bound`` is None (nothing can be said) when the account lacks ``PROCESS`` (the process
list then shows only its own threads), or when the server runs replication threads: an
applier writes its source's transactions with their original timestamps, of any age.

Limits: a session that sets ``timestamp`` itself stamps its transactions as it likes (as
``mariadb-binlog`` output applied to the source does); replication configured on a writable
source but stopped at the probe is not seen.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pymysql

from datatier.errors import DatatierError
from datatier.log import get_logger
from datatier.mysql.connection import Connection, Endpoint, connect, query_dicts
from datatier.mysql.privileges import account_privileges

log = get_logger(__name__)

MARGIN = 1.0
"""Seconds a bound is taken early: PROCESSLIST's ``TIME_MS`` counts on the server's
interval timer, ``@@timestamp`` on its wall clock."""

RUNNING_SQL = (
    "SELECT @@timestamp AS now, "
    "MAX(IF(COMMAND IN ('Sleep', 'Binlog Dump', 'Daemon') OR COMMAND LIKE 'Slave!_%' "
    "ESCAPE '!', 0, TIME_MS)) AS running_ms, "
    "SUM(COMMAND LIKE 'Slave!_%' ESCAPE '!') AS replicating "
    "FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
)


@dataclass(frozen=True)
class Probe:
    """One reading of a source: its binlog's end (``file``, ``pos``) and the ``bound``
    before which it will write nothing more after that end (server epoch seconds; None:
    cannot be said, ``why``)."""

    file: str
    pos: int
    bound: float | None
    why: str = ""

    def reached(self, file: str, pos: int) -> bool:
        """Whether a stream at ``file``:``pos`` (the end of what it received) is at or
        past this probe's end. False for a file of another name (not comparable)."""
        if file == self.file:
            return pos >= self.pos
        mine, theirs = _numbered(self.file), _numbered(file)
        if mine is None or theirs is None or mine[0] != theirs[0]:
            return False
        return theirs[1] > mine[1]


def _numbered(file: str) -> tuple[str, int] | None:
    """``mariadb-bin.000012`` -> (``mariadb-bin``, 12); None for any other shape."""
    base, dot, number = file.rpartition(".")
    if not dot or not number.isdigit():
        return None
    return base, int(number)


def probe(conn: Connection, *, may_see_all: bool) -> Probe | None:
    """Probe the server of ``conn`` (see module docstring); ``may_see_all``: the account
    holds PROCESS. None when the binlog is off (no end to read)."""
    running = query_dicts(conn, RUNNING_SQL)[0]
    status = query_dicts(conn, "SHOW MASTER STATUS")
    if not status:
        return None
    file, pos = str(status[0]["File"]), int(status[0]["Position"])
    now = float(running["now"])
    if not may_see_all:
        return Probe(file, pos, None, "the account lacks PROCESS (other sessions are hidden)")
    if int(running["replicating"] or 0):
        return Probe(file, pos, None, "the server replicates (appliers keep old timestamps)")
    started = now - float(running["running_ms"] or 0) / 1000.0
    return Probe(file, pos, min(now, started) - MARGIN)


class Prober:
    """Probes one server on a connection of its own: opened on first use, reopened after
    an error (a probe that fails is None: nothing said, nothing raised)."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self._conn: Connection | None = None
        self._may_see_all = False
        self._told = False

    def probe(self) -> Probe | None:
        try:
            if self._conn is None:
                self._conn = connect(self.ep)
                self._may_see_all = account_privileges(self._conn).holds(("PROCESS",))
            found = probe(self._conn, may_see_all=self._may_see_all)
        except (pymysql.MySQLError, OSError, DatatierError) as exc:
            log.warning("binlog.probe_failed", node=self.ep.name, error=self.ep.scrub(str(exc)))
            self.close()
            return None
        if found is not None and found.bound is None and not self._told:
            log.warning("binlog.vouch_limited", node=self.ep.name, reason=found.why)
            self._told = True
        return found

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(pymysql.MySQLError, OSError):  # broken: nothing to free
                conn.close()
