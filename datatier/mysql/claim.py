"""One restore at a time into a database: ``GET_LOCK`` advisory locks on the target.

Two restores into the same database at once interleave their DROP/CREATE and INSERTs (a
table one of them created gets the other's rows, or loses its own), and each may still end
with exit 0. A restore therefore holds, from its first check of the target until its last
(the row counts), one named lock per target database on a connection of its own; a second
restore into any of them is refused at once (NotReadyYet, exit 5) before it changes
anything. A lock is named by the database's name as the target compares it
(:func:`~datatier.mysql.lettercase.name_key`: with ``lower_case_table_names`` 1 or 2,
`Shop` and `shop` are one database and share one lock).

The locks live as long as that connection's session, which the server ends when the
restore is killed (so none is left behind), but also when an operator or pt-kill ``KILL``\\ s
it, or a proxy or firewall resets it: the locks are then free for another restore while this
one still loads. So the session is never idle: a watcher thread keeps it in short
``SLEEP``\\ s, and the first one that fails or goes unanswered for :data:`ANSWER_WAIT` marks
the :class:`Claim` lost (a KILL is seen at once). A lost claim runs the hooks registered with
:meth:`Claim.on_lost` (the restore's loader and replay kill their statements on the target,
:mod:`datatier.mysql.interrupt`), refuses :meth:`Claim.check` (called before each write
outside them), and makes the block end with :class:`ClaimLost` (exit 1) whatever it did:
rows another restore wrote meanwhile may sit beside this one's.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator

from datatier.errors import NotReadyYet, OperationFailed
from datatier.log import get_logger
from datatier.mysql.connection import Connection, Endpoint, connect, connection_lost
from datatier.mysql.lettercase import folds_names, name_key

log = get_logger(__name__)

PREFIX = "datatier.restore."
LONGEST_WAIT = 31536000
"""The session's ``wait_timeout`` (MariaDB's maximum, a year): if the watcher stalls (the
process is stopped), the idle session, and the locks, must stay."""
BEAT = 0.5
"""Seconds of each watcher ``SLEEP`` (the end of a restore interrupts it: :func:`_wake`)."""
ANSWER_WAIT = 60.0
"""Seconds a watcher ``SLEEP`` may go unanswered before the claim is taken as lost (the
connection is partitioned or the server hung: the session may be ended at any time)."""


ER_CONNECTION_KILLED = 1927
"""What the session's query answers when the session is killed."""


class ClaimLost(OperationFailed):
    """The restore's locks ended before it did (module docstring; exit 1)."""


def lock_name(database: str) -> str:
    """The lock of target database ``database`` (as the target compares it: see the
    module docstring): a digest, since names may hold any character and lock names are
    limited to 64."""
    digest = hashlib.sha256(database.encode("utf-8", "surrogateescape")).hexdigest()
    return PREFIX + digest[:40]


class Claim:
    """The held locks of one restore (module docstring). Thread-safe."""

    def __init__(self, databases: list[str], label: str) -> None:
        self.databases = databases
        self.label = label
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []
        self._lost: ClaimLost | None = None

    @property
    def lost(self) -> ClaimLost | None:
        """Why the claim is lost; None while it holds."""
        return self._lost

    def check(self) -> None:
        """ClaimLost if the claim is lost."""
        if self._lost is not None:
            raise self._lost

    def on_lost(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` (from the watcher thread) when the claim is lost; at once if it is."""
        with self._lock:
            if self._lost is None:
                self._hooks.append(hook)
                return
        hook()

    def lose(self, reason: str) -> None:
        """Mark the claim lost (once) and run the hooks; each hook's failure is logged."""
        names = ", ".join(repr(d) for d in self.databases)
        with self._lock:
            if self._lost is not None:
                return
            self._lost = ClaimLost(
                f"the restore lock of {names} on {self.label} was lost ({reason}): the "
                "restore stopped, since another restore could write into it meanwhile",
                hint="restore again once no other restore runs into it (what this one wrote "
                "may be beside another's rows)",
            )
            hooks, self._hooks = self._hooks, []
        log.error("restore.claim_lost", databases=self.databases, reason=reason)
        for hook in hooks:
            try:
                hook()
            except Exception as exc:
                log.warning("restore.claim_hook_failed", reason=str(exc))


@contextlib.contextmanager
def claim_databases(target: Endpoint, databases: Iterable[str]) -> Iterator[Claim]:
    """Hold the locks of ``databases`` on ``target`` for the block; NotReadyYet naming the
    first one another session holds (none is then kept). The block ends with ClaimLost
    if they were lost meanwhile (module docstring)."""
    wanted = sorted(set(databases))
    claim = Claim(wanted, target.label)
    if not wanted:
        yield claim
        return
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wait_timeout = %s", (LONGEST_WAIT,))
        fold = folds_names(cur)
        for database in wanted:
            cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(name_key(database, fold)),))
            row = cur.fetchone()
            if row is None or row[0] != 1:
                raise NotReadyYet(
                    f"another restore into {database!r} on {target.label} is running "
                    "(it holds the database's restore lock)",
                    hint="wait for it to finish, or restore elsewhere with --rename SRC=DST",
                )
        ending = threading.Event()
        watcher = threading.Thread(
            target=_watch, args=(conn, claim, ending), name="restore-claim", daemon=True
        )
        watcher.start()
        try:
            yield claim
        except BaseException as exc:
            if claim.lost is not None and isinstance(exc, Exception):
                raise _instead(claim.lost, exc) from exc
            raise
        finally:
            ending.set()
            if claim.lost is None and watcher.is_alive():
                _wake(target, conn)
            watcher.join()
            if claim.lost is None:
                with contextlib.suppress(Exception):  # closing the connection frees them too
                    cur.execute("SELECT RELEASE_ALL_LOCKS()")
        if claim.lost is not None:
            raise claim.lost


def _beat_sql() -> str:
    return f"SELECT SLEEP({BEAT})"


def _wake(target: Endpoint, conn: Connection) -> None:
    """Interrupt the watcher's SLEEP (``ending`` is set: it then returns) rather than wait
    for it to run out, from a short connection of the same account (which may always
    stop its own statements), and only where that connection id runs the watcher's SLEEP
    (behind a proxy, the id could be another server's session; a proxy that splits the two
    statements between servers defeats this check). Best effort, bounded by a beat's wait
    per statement: a KILL QUERY that finds the session between two statements is
    forgotten at its next one, and the watcher then ends within a beat. Not called once
    the claim is lost (the server may be hung)."""
    thread = int(conn.thread_id())  # type: ignore[no-untyped-call]
    try:
        with connect(target) as other, other.cursor() as cur:
            # a hung server must not hold the end of the restore: a beat's wait at most
            other._read_timeout = other._write_timeout = 2 * BEAT  # type: ignore[attr-defined]
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s AND INFO = %s",
                (thread, _beat_sql()),
            )
            row = cur.fetchone()
            if row and row[0]:
                cur.execute(f"KILL QUERY {thread}")
    except Exception as exc:  # the watcher's SLEEP ends on its own within a beat
        log.debug("restore.claim_wake_failed", reason=str(exc))


def _watch(conn: Connection, claim: Claim, ending: threading.Event) -> None:
    """Keep the lock session busy in short SLEEPs until ``ending``; the first that fails
    (the session was killed or reset) or goes unanswered loses ``claim``."""
    conn._read_timeout = ANSWER_WAIT  # type: ignore[attr-defined]  # pymysql applies it per read
    while not ending.is_set():
        try:
            with conn.cursor() as cur:
                cur.execute(_beat_sql())
                row = cur.fetchone()
        except Exception as exc:
            if ending.is_set():
                return
            if connection_lost(exc) or _code(exc) == ER_CONNECTION_KILLED:
                claim.lose(f"its session ended: {exc}")
                return
            # the server answered (KILL QUERY interrupted the SLEEP, say): the session lives
            log.debug("restore.claim_beat_failed", reason=str(exc))
            ending.wait(BEAT)
            continue
        if row is None:
            if not ending.is_set():
                claim.lose("its session answered nothing")
            return
        # A SLEEP a KILL QUERY interrupted answers 1 or fails: the session, and the locks,
        # remain. A KILL of the session fails the next one at the latest.


def _code(exc: BaseException) -> int | None:
    """The MySQL error code of ``exc``, if it has one."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def _instead(lost: ClaimLost, failure: Exception) -> ClaimLost:
    """``lost`` carrying ``failure``'s notes (what the restore says it left): the failure
    is a consequence (a statement killed when the claim was lost), the loss its cause."""
    for note in getattr(failure, "__notes__", ()):
        lost.add_note(note)
    return lost
