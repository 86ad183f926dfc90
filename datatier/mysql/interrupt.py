"""Stopping a restore's statements on the target at once (:mod:`datatier.mysql.load`).

A loading thread blocked in a statement (an INSERT waiting on a lock another session holds,
an ALTER building deferred indexes) never looks at a flag: it would run on until the
statement ends or a lock wait times out (``lock_wait_timeout`` defaults to a year). So every
connection a restore opens on the target, and every stock client process it starts, is
registered with one :class:`Interrupter`; :meth:`Interrupter.fire` (the first failure of a
job, Ctrl-C, SIGTERM) kills the clients and then ``KILL``\\ s every registered connection
from a short-lived connection of its own, as the backup does to its workers
(:meth:`datatier.mysql.pdump.ParallelDumpEngine._kill_workers`).

Whole connections are killed, not just their statement: a ``KILL QUERY`` that reached a
thread between two statements would be lost, and the next statement would wait again. A
client process that dies does not end its statement on the server (a statement waiting on
a lock runs on when the lock is released, then finds no one to answer), so its connection
is killed too: each client reports its connection id first (:mod:`.stock_client`).
Contract: after :meth:`~Interrupter.fire` returns, no statement registered before it runs
on the target, and :meth:`~Interrupter.watch` refuses (:class:`Stopped`) any connection
opened afterwards. The errors the killed statements raise are the siblings' business: the
loader reports the failure (or the signal) that fired, never those.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator

from datatier.errors import OperationFailed
from datatier.log import get_logger
from datatier.mysql.connection import Endpoint, connect

log = get_logger(__name__)

SETTLE_WAIT = 30.0
"""Seconds :meth:`Interrupter.supervise` waits, once it has fired, for the loading to end."""
CLIENT_ID_WAIT = 5.0
"""Seconds :meth:`Interrupter.fire` waits for a killed client's connection id (it is in the
pipe already, or the client never ran a statement)."""


class Stopped(OperationFailed):
    """A connection or client was opened after the restore was stopped (never shown: the
    failure that stopped it is)."""


class ClientHandle:
    """A stock client process and, once it has said it, its connection id."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.conn_id: int | None = None
        self.known = threading.Event()  # set with the id, or when the client said none

    def learned(self, conn_id: int | None) -> None:
        self.conn_id = conn_id
        self.known.set()


class Interrupter:
    """The connections and clients of one restore on ``target`` (module docstring).
    ``stop`` is set by :meth:`fire`; loading threads check it between objects."""

    def __init__(self, target: Endpoint) -> None:
        self.target = target
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[int] = set()
        self._clients: set[ClientHandle] = set()
        self._killed: set[int] = set()

    def watch(self, conn_id: int) -> None:
        """Register connection ``conn_id``; Stopped when the restore already was."""
        with self._lock:
            if self.stop.is_set():
                raise Stopped("the restore was stopped")
            self._conns.add(conn_id)

    def forget(self, conn_id: int) -> None:
        with self._lock:
            self._conns.discard(conn_id)

    @contextlib.contextmanager
    def client(self, proc: subprocess.Popen[bytes]) -> Iterator[ClientHandle]:
        """Register client ``proc`` while the block runs; Stopped (the client killed) when
        the restore already was."""
        handle = ClientHandle(proc)
        with self._lock:
            stopped = self.stop.is_set()
            if not stopped:
                self._clients.add(handle)
        if stopped:
            proc.kill()
            proc.wait()
            raise Stopped("the restore was stopped")
        try:
            yield handle
        finally:
            with self._lock:
                self._clients.discard(handle)

    def supervise(self, call: Callable[[], None]) -> None:
        """Run ``call`` on a thread of its own, and wait. Signals reach only the main thread,
        and one blocked in libmariadb would not even see them: so it waits here, and when
        the wait is interrupted (Ctrl-C, SIGTERM) it fires, lets ``call`` end (its errors,
        those of killed statements, are dropped), and raises the interruption. ``call``'s
        own failure is raised as it is."""
        done = threading.Event()
        failed: list[BaseException] = []

        def body() -> None:
            try:
                call()
            except BaseException as exc:
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=body, name="load-main", daemon=True).start()
        try:
            done.wait()
        except BaseException:
            self.fire()
            done.wait(SETTLE_WAIT)
            raise
        if failed:
            raise failed[0]

    def fire(self) -> None:
        """Stop the restore: set ``stop``, kill every registered client, then every
        registered connection on the server (best effort, each; a connection already gone
        is no failure). Safe to call again, and from any thread."""
        with self._lock:
            self.stop.set()
            clients = list(self._clients)
            conns = set(self._conns)
        for handle in clients:
            with contextlib.suppress(OSError):
                handle.proc.kill()
        for handle in clients:
            handle.known.wait(CLIENT_ID_WAIT)
            if handle.conn_id is not None:
                conns.add(handle.conn_id)
        with self._lock:
            victims = sorted(conns - self._killed)
            self._killed |= set(victims)
        if victims:
            self._kill(victims)

    def _kill(self, victims: list[int]) -> None:
        try:
            admin = connect(self.target)
        except Exception as exc:  # the server is gone: so are its statements
            log.warning("restore.kill_failed", reason=self.target.scrub(str(exc)))
            return
        try:
            with admin.cursor() as cur:
                for conn_id in victims:
                    try:
                        cur.execute(f"KILL CONNECTION {int(conn_id)}")
                    except Exception as exc:  # it ended meanwhile
                        log.debug("restore.kill_skipped", connection=conn_id, reason=str(exc))
        finally:
            with contextlib.suppress(Exception):
                admin.close()
        log.debug("restore.stopped", killed=len(victims))
