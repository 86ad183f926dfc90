"""Until when a binlog source has written everything it will ever stamp (SQL).

Contract. A transaction's binlog timestamp is the start of the statement that commits it
(``COMMIT``, or the autocommit statement itself), so a source may still write transactions
stamped in the past: those of statements running now. :func:`probe` reads, in this order,

1. the server's clock (``@@timestamp``: the clock binlog events are stamped with) and its
   running statements (``information_schema.PROCESSLIST``: every thread not asleep, not a
   binlog dump, not a daemon, not this connection);
2. the end of its binlog (``SHOW MASTER STATUS``, ``gtid_binlog_pos``).

A running statement's start is not simply ``TIME_MS`` ago: a stored program or trigger
resets that count at each statement it runs (see :func:`probe` for how threads are followed
across probes instead); one already running at a connection's first probe holds every bound
back until it ends. An ``INSERT DELAYED`` handler (whose rows carry their clients' stamps)
counts as running unless it waits for rows with none queued (``Not_flushed_delayed_rows``).

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
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pymysql

from datatier.errors import DatatierError
from datatier.log import get_logger
from datatier.mysql.binlog.positions import Position
from datatier.mysql.connection import Connection, Endpoint, connect, query_dicts
from datatier.mysql.privileges import account_privileges

log = get_logger(__name__)

MARGIN = 1.0
"""Seconds a bound is taken early: PROCESSLIST's ``TIME_MS`` counts on the server's
interval timer, ``@@timestamp`` on its wall clock."""

THREADS_SQL = (
    "SELECT @@timestamp AS now, ID AS id, USER AS user, COMMAND AS command, TIME_MS AS ms, "
    "STATE AS state FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
)
DELAYED_SQL = (
    "SELECT VARIABLE_VALUE AS queued FROM information_schema.GLOBAL_STATUS "
    "WHERE VARIABLE_NAME = 'NOT_FLUSHED_DELAYED_ROWS'"
)
DELAYED_IDLE = "Waiting for INSERT"
"""The state of an ``INSERT DELAYED`` handler with nothing queued: it lives on for
``delayed_insert_timeout`` (300 s) after its last row, which would hold every bound."""
IDLE = frozenset({"Sleep", "Binlog Dump", "Daemon"})
MIN_INTERVAL = 1.0
"""Seconds between two probes of one prober (a probe reads the whole process list)."""
QUERY_TIMEOUT = 30
"""Seconds a probe query may take (``SHOW MASTER STATUS`` waits on the binlog's lock)."""
NO_PROCESS = "the account lacks PROCESS (other sessions are hidden)"
REPLICATING = "the server replicates (appliers keep old timestamps)"
HELD_NOTE_AFTER = 2.0
"""A statement that holds the bound back longer is named in the probe (``held_by``)."""
HELD_LOG_AFTER = 60.0
"""A statement that holds the bound back this long is logged (once)."""


@dataclass(frozen=True)
class Probe:
    """One reading of a source: its binlog's end (``file``, ``pos``) and the ``bound``
    before which it will write nothing more after that end (server epoch seconds; None:
    cannot be said, ``why``)."""

    file: str
    pos: int
    bound: float | None
    why: str = ""
    gtid: Position = field(default_factory=Position)
    taken: float = 0.0  # this host's monotonic clock
    held_by: str = ""  # the statement that holds ``bound`` back, if one does

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


@dataclass
class _Threads:
    """What a prober saw of the server's threads: when each busy one's statement started
    at the latest (server epoch seconds, -inf: unknown), and when it last looked."""

    since: dict[int, float] = field(default_factory=dict)
    looked: float | None = None
    logged: set[int] = field(default_factory=set)


def probe(conn: Connection, threads: _Threads, *, may_see_all: bool) -> Probe | None:
    """Probe the server of ``conn`` (see module docstring); ``threads`` carries what the
    previous probe on this connection saw; ``may_see_all``: the account holds PROCESS.
    None when the binlog is off (no end to read).

    A busy thread's statement started at ``now - TIME_MS`` only if nothing reset that
    count: a stored program or trigger resets it at each of its statements while the binlog
    keeps the outer statement's start. So a thread is followed across probes: seen busy
    for the first time, its statement started after the previous probe (it was idle or
    absent then) and no later than ``now - TIME_MS``, and keeps the earliest start seen
    while it stays busy; busy at a connection's first probe, its start is unknown, and no
    bound is given until it is idle."""
    rows = query_dicts(conn, THREADS_SQL)
    queued = query_dicts(conn, DELAYED_SQL)  # after the threads, before the binlog's end
    nothing_queued = not queued or int(queued[0]["queued"] or 0) == 0
    status = query_dicts(conn, "SHOW MASTER STATUS")
    gtid = query_dicts(conn, "SELECT @@global.gtid_binlog_pos AS pos")[0]["pos"]
    if not status:
        return None
    file, pos = str(status[0]["File"]), int(status[0]["Position"])
    now = (
        float(rows[0]["now"])
        if rows
        else float(query_dicts(conn, "SELECT @@timestamp AS now")[0]["now"])
    )
    end = Position.parse(str(gtid or ""))
    replicating = any(str(r["command"]).startswith("Slave_") for r in rows)
    since: dict[int, float] = {}
    about: dict[int, str] = {}
    for row in rows:
        command = str(row["command"])
        if command in IDLE or command.startswith("Slave_"):
            continue
        if command == "Delayed insert" and row["state"] == DELAYED_IDLE and nothing_queued:
            continue  # an idle handler: its rows, stamped by their clients, are written
        thread = int(row["id"])
        latest = now - float(row["ms"] or 0) / 1000.0
        before = threads.since.get(thread)
        if before is None:
            before = threads.looked if threads.looked is not None else -math.inf
        since[thread] = min(before, latest)
        about[thread] = f"thread {thread} ({row['user']}, {command})"
        if now - since[thread] >= HELD_LOG_AFTER and thread not in threads.logged:
            threads.logged.add(thread)
            log.info(
                "binlog.vouch_held",
                thread=thread,
                user=str(row["user"]),
                command=command,
                since=since[thread],
                note="a statement still running may commit stamped at its start",
            )
    threads.since, threads.looked = since, now
    taken = time.monotonic()
    if not may_see_all:
        return Probe(file, pos, None, NO_PROCESS, end, taken)
    if replicating:
        return Probe(file, pos, None, REPLICATING, end, taken)
    holder = min(since, key=lambda t: since[t], default=None)
    if holder is None:
        return Probe(file, pos, now - MARGIN, "", end, taken)
    oldest = since[holder]
    if oldest == -math.inf:
        why = (
            f"{about[holder]} has been running since before the archiver connected and may "
            "commit stamped earlier"
        )
        return Probe(file, pos, None, why, end, taken)
    held = f"{about[holder]} has been running since {_utc(oldest)}"
    return Probe(
        file, pos, min(now, oldest) - MARGIN, "", end, taken,
        held if now - oldest > HELD_NOTE_AFTER else "",
    )  # fmt: skip


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Prober:
    """Probes one server on a connection of its own: opened on first use, reopened after
    an error (a probe that fails is None: nothing said, nothing raised; what was seen of
    the threads is forgotten with the connection)."""

    RETRY_AFTER = 10.0  # seconds without a connection attempt after a failure

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self._failed_at = -math.inf
        self._conn: Connection | None = None
        self._may_see_all = False
        self._threads = _Threads()
        self._told: set[str] = set()

    def probe(self) -> Probe | None:
        if self._conn is None and time.monotonic() - self._failed_at < self.RETRY_AFTER:
            return None  # a dump loop is not held up by a server that refuses probes
        try:
            if self._conn is None:
                self._conn = connect(self.ep)
                self._conn._read_timeout = QUERY_TIMEOUT  # type: ignore[attr-defined]
                self._may_see_all = account_privileges(self._conn).holds(("PROCESS",))
                self._threads = _Threads()
            found = probe(self._conn, self._threads, may_see_all=self._may_see_all)
        except (pymysql.MySQLError, OSError, DatatierError) as exc:
            self._tell("binlog.probe_failed", error=self.ep.scrub(str(exc)))
            self.close()
            self._failed_at = time.monotonic()
            return None
        if found is not None and found.why in (NO_PROCESS, REPLICATING):
            self._tell("binlog.vouch_limited", reason=found.why)
        return found

    def _tell(self, event: str, **fields: str) -> None:
        """Log ``event`` once per prober (it repeats at every heartbeat)."""
        if event not in self._told:
            self._told.add(event)
            log.warning(event, node=self.ep.name, **fields)
        else:
            log.debug(event, node=self.ep.name, **fields)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(pymysql.MySQLError, OSError):  # broken: nothing to free
                conn.close()
