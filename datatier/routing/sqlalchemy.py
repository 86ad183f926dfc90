"""SQLAlchemy integration (``pip install 'datatier[sqlalchemy]'``): a Session that routes.

Contract.

- :class:`RoutedEngines` builds one ``Engine`` per configured node (``mysql+pymysql``), on
  first use. Its connections come from the router's pool of that node (a ``NullPool``
  engine whose creator checks out of :class:`~datatier.mysql.pool.NodePool`), so the
  router's bounds, pre-ping, recycle, draining and metrics apply to the ORM too; each
  checkout is switched to autocommit off (SQLAlchemy manages transactions) and the pool
  restores its own mode when the connection comes back.
- :class:`RoutedSession` (make them with :func:`session_factory`) routes in ``get_bind``:
  to the router's write target during a flush, for INSERT/UPDATE/DELETE statements, for
  every statement once the transaction wrote, and for everything while
  ``session.info["intent"] == "write"``; otherwise to a replica within the session's
  ``max_lag`` (``session.info["max_lag"]`` overrides it), the same one for the rest of the
  transaction. Decisions read the monitor's snapshot only.
- Read-your-writes (``read_your_writes=True``): after a transaction that wrote commits, the
  primary's GTID position is read once; the first read of each later transaction waits on
  the chosen replica for it (``wait_timeout``), else reads from the primary.
- Bad input: an intent other than ``"read"``/``"write"``/None, or a ``max_lag`` that is not
  > 0: :class:`~datatier.errors.UsageError`. No node fits: ServiceUnavailable.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Delete, Engine, Insert, Update, create_engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import NullPool

from datatier.errors import UsageError
from datatier.mysql.pool import PooledConnection
from datatier.replication.gtid import gtid_position
from datatier.replication.router import INTENTS, Router

__all__ = ["RoutedEngines", "RoutedSession", "session_factory"]


class RoutedEngines:
    """One engine per node over the router's pools (module doc); ``engine_options`` go to
    every ``create_engine`` call (e.g. ``echo=True``)."""

    def __init__(self, router: Router, **engine_options: Any) -> None:
        self.router = router
        self._options = engine_options
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def engine(self, node: str) -> Engine:
        engine = self._engines.get(node)
        if engine is not None:
            return engine
        with self._lock:
            engine = self._engines.get(node)
            if engine is None:
                engine = create_engine(
                    "mysql+pymysql://",
                    creator=lambda: self._checkout(node),
                    poolclass=NullPool,
                    pool_reset_on_return=None,  # the pool resets the session on return
                    **self._options,
                )
                self._engines[node] = engine
        return engine

    def _checkout(self, node: str) -> PooledConnection:
        conn = self.router.pool(node).checkout()
        try:
            conn.autocommit(False)
        except BaseException:
            conn.discard()
            raise
        return conn

    def dispose(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.dispose()


class RoutedSession(Session):
    """A Session whose ``get_bind`` routes reads and writes (module doc)."""

    def __init__(
        self,
        *,
        engines: RoutedEngines,
        max_lag: float | None = None,
        read_your_writes: bool = False,
        wait_timeout: float = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.engines = engines
        self.router = engines.router
        self.max_lag = None if max_lag is None else self.router.check_max_lag(max_lag)
        self.read_your_writes = read_your_writes
        self.wait_timeout = wait_timeout
        self.after: str | None = None  # the GTID position reads must see (read-your-writes)
        self.routes: list[tuple[str, str]] = []  # (intent, node) per decision, newest last
        self._read_node: str | None = None
        self._wrote = False
        self._committed_write = False

    def _intent(self) -> str | None:
        intent = self.info.get("intent")
        if intent is not None and intent not in INTENTS:
            raise UsageError(f"session.info['intent'] = {intent!r}: expected 'read' or 'write'")
        return intent

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Engine:
        intent = self._intent()
        writing = self._flushing or isinstance(clause, Insert | Update | Delete)
        if intent == "write" or writing or self._wrote:
            self._wrote = self._wrote or writing or intent == "write"
            node = self.router.route("write").node
            self.routes.append(("write", node))
            return self.engines.engine(node)
        if self._read_node is None:
            self._read_node = self._choose_read()
        self.routes.append(("read", self._read_node))
        return self.engines.engine(self._read_node)

    def _choose_read(self) -> str:
        limit = self.info.get("max_lag", self.max_lag)
        if limit is not None:
            limit = self.router.check_max_lag(limit)
        if not self.after:
            return self.router.route("read", limit).node
        conn, route = self.router.connection_with_route(
            "read", limit, after=self.after, wait_timeout=self.wait_timeout
        )
        conn.close()  # the replica has the position now: any of its connections sees it
        return route.node

    def _committed(self) -> None:
        self._committed_write = self._wrote

    def _transaction_ended(self) -> None:
        wrote = self._committed_write
        self._wrote = self._committed_write = False
        self._read_node = None
        if wrote and self.read_your_writes:
            with self.router.connection("write") as conn:
                self.after = gtid_position(conn)


@event.listens_for(RoutedSession, "after_commit")
def _after_commit(session: Session) -> None:
    if isinstance(session, RoutedSession):
        session._committed()


@event.listens_for(RoutedSession, "after_transaction_end")
def _after_end(session: Session, transaction: SessionTransaction) -> None:
    if isinstance(session, RoutedSession) and transaction.parent is None:
        session._transaction_ended()


def session_factory(
    router: Router,
    *,
    max_lag: float | None = None,
    read_your_writes: bool = False,
    wait_timeout: float = 1.0,
    engines: RoutedEngines | None = None,
    **options: Any,
) -> sessionmaker[RoutedSession]:
    """A ``sessionmaker`` of :class:`RoutedSession` on ``router`` (other ``options`` go to
    the Session, e.g. ``expire_on_commit=False``)."""
    if max_lag is not None:
        router.check_max_lag(max_lag)
    return sessionmaker(
        class_=RoutedSession,
        engines=engines or RoutedEngines(router),
        max_lag=max_lag,
        read_your_writes=read_your_writes,
        wait_timeout=wait_timeout,
        **options,
    )
