"""A bounded pool of pymysql connections to one node, and the handle a checkout returns.

Contract of :class:`NodePool` (thread-safe; one per node, shared by every route to it):

- At most ``size + max_overflow`` connections are open at once. A checkout takes the most
  recently returned idle connection (LIFO: hot connections stay hot, extra ones age out),
  else opens a new one while under the bound, else waits up to ``timeout`` seconds for a
  return and then raises :class:`~datatier.errors.ServiceUnavailable` ("pool exhausted").
- A connection older than ``recycle`` seconds is closed instead of handed out or kept. One
  idle for at least ``pre_ping_after`` seconds is pinged before it is handed out; if the
  ping fails it is discarded and a new connection is opened in its place.
- Returning (:meth:`PooledConnection.close`, or leaving its ``with`` block) resets the
  session (:class:`datatier.mysql.session.SessionKeeper`: ``COM_RESET_CONNECTION``, what
  datatier's connections promise restored, the pool's autocommit mode whatever the user
  set) and keeps the connection idle, unless ``size`` are idle already, the pool was
  drained since it was opened, or the reset failed: then it is closed.
- :meth:`NodePool.drain` closes every idle connection at once and marks the ones in use to
  be closed when they come back; later checkouts open fresh connections (a node that comes
  back is used again on demand). :meth:`NodePool.close` drains and refuses checkouts.
- The counters in :meth:`NodePool.stats` are plain integers updated under the pool's lock,
  read by the metrics collector at scrape time (nothing is exported per checkout).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pymysql

from datatier.errors import ServiceUnavailable
from datatier.mysql.connection import Connection
from datatier.mysql.session import SessionKeeper, SessionState

Opener = Callable[[], Connection]


@dataclass(frozen=True)
class PoolSettings:
    """Bounds and ages of one node's pool (``[router]`` in the configuration)."""

    size: int = 5
    max_overflow: int = 10
    timeout: float = 5.0
    recycle: float = 3600.0
    pre_ping_after: float = 1.0


@dataclass(frozen=True)
class PoolStats:
    """One pool's state and counters since it was created."""

    node: str
    size: int
    max_overflow: int
    open: int
    idle: int
    in_use: int
    opened_total: int
    closed_total: dict[str, int]
    checkouts_total: int
    waits_total: int
    wait_seconds_total: float
    timeouts_total: int
    drains_total: int


class PoolExhausted(ServiceUnavailable):
    """Every connection of the pool is in use and none came back in time."""


class _Slot:
    """One open connection and its bookkeeping."""

    __slots__ = ("conn", "created", "generation", "last_used", "state")

    def __init__(self, conn: Connection, generation: int, state: SessionState) -> None:
        self.conn = conn
        self.created = self.last_used = time.monotonic()
        self.generation = generation
        self.state = state


class PooledConnection:
    """A checked-out connection: use it like a pymysql connection; ``close()`` (or the end
    of a ``with`` block) returns it to its pool. Any use after that raises
    ``pymysql.err.InterfaceError``. ``node`` names the node it belongs to."""

    __slots__ = ("_pool", "_slot", "node")

    def __init__(self, pool: NodePool, slot: _Slot) -> None:
        self._pool: NodePool | None = pool
        self._slot: _Slot | None = slot
        self.node = pool.node

    @property
    def raw(self) -> Connection:
        """The underlying pymysql connection (only while checked out)."""
        slot = self._slot
        if slot is None:
            raise pymysql.err.InterfaceError(0, "connection already returned to the pool")
        return slot.conn

    @property
    def returned(self) -> bool:
        return self._slot is None

    def cursor(self, cursor: Any = None) -> Any:
        return self.raw.cursor(cursor)

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def begin(self) -> None:
        self.raw.begin()

    def ping(self) -> None:
        self.raw.ping()

    def autocommit(self, value: bool) -> None:
        self.raw.autocommit(value)

    def select_db(self, db: str) -> None:
        self.raw.select_db(db)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def close(self) -> None:
        """Return the connection to its pool (a second call does nothing)."""
        slot, pool = self._slot, self._pool
        self._slot = self._pool = None
        if slot is not None and pool is not None:
            pool.release(slot)

    def discard(self) -> None:
        """Close the underlying connection instead of returning it (after a fault)."""
        slot, pool = self._slot, self._pool
        self._slot = self._pool = None
        if slot is not None and pool is not None:
            pool.discard(slot, "discarded")

    def __enter__(self) -> PooledConnection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:  # a connection that was never closed frees its place
        slot, pool = self._slot, self._pool
        if slot is not None and pool is not None:
            self._slot = self._pool = None
            pool.discard(slot, "leaked")

    def __repr__(self) -> str:
        state = "returned" if self._slot is None else "checked out"
        return f"<PooledConnection {self.node} ({state})>"


class NodePool:
    """The pool of one node (see module doc). ``opener`` opens a new connection (raising
    ServiceUnavailable); ``keeper`` learns, resets and pings sessions (default: a
    :class:`~datatier.mysql.session.SessionKeeper` restoring autocommit)."""

    def __init__(
        self,
        node: str,
        opener: Opener,
        settings: PoolSettings,
        *,
        keeper: SessionKeeper | None = None,
    ) -> None:
        self.node = node
        self.settings = settings
        self.keeper = keeper or SessionKeeper()
        self._opener = opener
        self._cond = threading.Condition(threading.RLock())
        self._idle: list[_Slot] = []
        self._open = 0
        self._generation = 0
        self._closed = False
        self._opened_total = 0
        self._closed_total: dict[str, int] = {}
        self._checkouts = 0
        self._waits = 0
        self._wait_seconds = 0.0
        self._timeouts = 0
        self._drains = 0

    @property
    def limit(self) -> int:
        return self.settings.size + self.settings.max_overflow

    # -- checkout --------------------------------------------------------------------------
    def checkout(self, timeout: float | None = None) -> PooledConnection:
        """A connection from the pool (module doc); ``timeout`` overrides the setting, 0
        means do not wait. ServiceUnavailable if the pool stays exhausted or the node
        refuses a new connection."""
        limit = self.settings.timeout if timeout is None else timeout
        slot = self._take(limit)
        now = time.monotonic()
        if slot is not None:
            if now - slot.created > self.settings.recycle:
                self._close(slot, "recycled", free=False)  # its place goes to the new one
                slot = None
            elif now - slot.last_used >= self.settings.pre_ping_after:
                try:
                    self.keeper.ping(slot.conn)
                except Exception:
                    self._close(slot, "ping_failed", free=False)
                    slot = None
        if slot is None:
            slot = self._new()
        return PooledConnection(self, slot)

    def _take(self, timeout: float) -> _Slot | None:
        """An idle slot, or None with a place reserved for a new connection."""
        with self._cond:
            if self._closed:
                raise ServiceUnavailable(f"pool of {self.node} is closed")
            self._checkouts += 1
            if self._idle:
                return self._idle.pop()
            if self._open < self.limit:
                self._open += 1
                return None
            self._waits += 1
            started = time.monotonic()
            deadline = started + timeout
            try:
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        self._timeouts += 1
                        raise PoolExhausted(
                            f"pool of {self.node} exhausted: {self._open} connections in use, "
                            f"none returned within {timeout:g} s"
                        )
                    self._cond.wait(remaining)
                    if self._idle:
                        return self._idle.pop()
                    if self._open < self.limit:
                        self._open += 1
                        return None
            finally:
                self._wait_seconds += time.monotonic() - started

    def _new(self) -> _Slot:
        """Open a connection in a place already reserved (freed again on failure)."""
        try:
            conn = self._opener()
        except BaseException:
            self._free()
            raise
        try:
            state = self.keeper.opened(conn)
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.close()
            self._free()
            raise ServiceUnavailable(f"cannot prepare a connection to {self.node}: {exc}") from None
        with self._cond:
            self._opened_total += 1
            return _Slot(conn, self._generation, state)

    def _free(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()

    # -- return ----------------------------------------------------------------------------
    def release(self, slot: _Slot) -> None:
        """Clean ``slot``'s session and keep it idle, or close it (module doc)."""
        now = time.monotonic()
        with self._cond:
            stale = slot.generation != self._generation or self._closed
            full = len(self._idle) >= self.settings.size
        if stale or full or now - slot.created > self.settings.recycle:
            self._close(slot, "drained" if stale else "overflow" if full else "recycled")
            return
        try:
            self.keeper.reset(slot.conn, slot.state)
        except Exception:
            self._close(slot, "reset_failed")
            return
        slot.last_used = time.monotonic()
        with self._cond:
            if slot.generation == self._generation and not self._closed:
                self._idle.append(slot)
                self._cond.notify()
                return
        self._close(slot, "drained")

    def discard(self, slot: _Slot, reason: str) -> None:
        """Close ``slot``'s connection and free its place."""
        self._close(slot, reason)

    def _close(self, slot: _Slot, reason: str, *, free: bool = True) -> None:
        """Close ``slot``'s connection; ``free`` gives its place back (else the caller
        reuses the place for a new connection)."""
        with contextlib.suppress(Exception):  # a broken socket may fail any way on close
            if slot.conn.open:
                slot.conn.close()
        with self._cond:
            self._closed_total[reason] = self._closed_total.get(reason, 0) + 1
            if free:
                self._open -= 1
                self._cond.notify()

    # -- draining --------------------------------------------------------------------------
    def drain(self) -> int:
        """Close every idle connection now; the ones in use close when returned. Returns
        how many idle connections were closed."""
        with self._cond:
            self._generation += 1
            idle, self._idle = self._idle, []
            if idle or self._open:
                self._drains += 1
        for slot in idle:
            self._close(slot, "drained")
        return len(idle)

    def close(self) -> None:
        """Drain and refuse further checkouts (waiting checkouts fail at once)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.drain()

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(
                node=self.node,
                size=self.settings.size,
                max_overflow=self.settings.max_overflow,
                open=self._open,
                idle=len(self._idle),
                in_use=self._open - len(self._idle),
                opened_total=self._opened_total,
                closed_total=dict(self._closed_total),
                checkouts_total=self._checkouts,
                waits_total=self._waits,
                wait_seconds_total=self._wait_seconds,
                timeouts_total=self._timeouts,
                drains_total=self._drains,
            )
