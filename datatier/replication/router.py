"""The lag-aware read/write router: application code asks for "write" or "read, at most N s
stale" and gets a pooled connection to a node that fits.

Contract.

- Decisions come only from the monitor's last in-memory
  :class:`~datatier.replication.snapshot.Snapshot` (the same checks as ``/primary`` and
  ``/replica``, hysteresis included); the router never queries replication status per call.
  :meth:`Router.route` gives the decision alone, without any MySQL traffic.
- ``connection("write")``: the node that passes ``Snapshot.primary_check`` (fresh snapshot,
  reachable, ``read_only`` off): the configured primary first; else the single other node that
  is writable (a promoted replica). None, or several besides the configured primary (split
  brain): :class:`~datatier.errors.ServiceUnavailable`.
- ``connection("read", max_lag=S)``: a replica whose IO and SQL threads both run and whose
  heartbeat lag is at most ``S`` seconds (``S`` > 0; default ``health.replica_max_lag``), and
  that is not held out by hysteresis for ``S`` (the router registers ``S`` with the monitor,
  so from the next round on a replica that went over ``S`` comes back only at
  ``readmit_ratio`` x ``S``). Among fit replicas: the least lagged (``policy="least_lag"``,
  the default) or each in turn (``policy="round_robin"``). If none fits: the writable primary
  when ``fallback_to_primary`` is set (it is never stale), else ServiceUnavailable naming every
  replica and why it was refused. A snapshot older than the monitor's ``stale_after`` fits
  nothing, so with a dead monitor reads and writes raise rather than guess.
- Connections come from one bounded pool per node (:mod:`datatier.mysql.pool`), shared by
  all routes and opened on first use (a promoted primary's too): autocommit, utf8mb4, UTC
  session, the configured credentials. ``close()`` (or the end of ``with``) returns one,
  reset. If a chosen replica refuses connections the next fit replica is tried, then the
  fallback; when the fit replicas' pools are all exhausted the first one is waited on.
- Draining: after every monitor round (a listener on the monitor, or the first call that
  sees the new round) every node outside the fit set, i.e. neither the write target nor a
  replica that fits any ``max_lag`` this router has been asked for, has its pool drained:
  idle connections closed at once, the ones in use closed when returned.
- Read-your-writes (optional, per call): ``connection("read", after=gtid_position(wconn))``
  waits on the chosen replica for that GTID position up to ``wait_timeout``, else uses the
  primary (see :meth:`Router.connection`). This wait is the one per-call query, and only
  when asked for.
- Thread-safe: snapshots are immutable; pools and counters are locked.
- Counters for metrics (:meth:`Router.stats`; :mod:`datatier.replication.routermetrics`
  exports them to Prometheus): routes by intent, node and whether they fell back, refusals
  by intent, read-your-writes waits by outcome, and each pool's state.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Protocol

from datatier.config import Config
from datatier.errors import ServiceUnavailable, UsageError
from datatier.mysql.connection import Connection, Endpoint, connect, endpoint
from datatier.mysql.flavor import MARIADB
from datatier.mysql.pool import NodePool, PooledConnection, PoolExhausted, PoolSettings, PoolStats
from datatier.replication.gtid import gtid_position, wait_for
from datatier.replication.selection import (
    INTENTS,
    POLICIES,
    Policy,
    Route,
    check_max_lag,
    fit_nodes,
    read_verdicts,
    write_route,
)
from datatier.replication.snapshot import Snapshot

__all__ = ["INTENTS", "Policy", "Route", "Router", "gtid_position"]

MAX_WAIT = 60.0
MAX_THRESHOLDS = 32


class SnapshotSource(Protocol):
    """What the router needs of a monitor (a running :class:`Monitor` satisfies it)."""

    @property
    def snapshot(self) -> Snapshot | None: ...

    def register_threshold(self, max_lag: float) -> None: ...


Connector = Callable[[Endpoint, str | None], Connection]


def _connect(ep: Endpoint, database: str | None) -> Connection:
    return connect(ep, database=database)


@dataclass(frozen=True)
class RouterStats:
    """Counters since the router was created, and each pool's state."""

    routes: dict[tuple[str, str, bool], int]  # (intent, node, fallback) -> count
    unroutable: dict[str, int]  # intent -> calls refused (ServiceUnavailable)
    read_your_writes: dict[str, int]  # "reached" / "timeout" -> count
    pools: list[PoolStats]


class Router:
    """Chooses nodes from ``monitor``'s snapshot and hands out pooled connections to them.

    ``config`` gives the credentials, node addresses, the default ``max_lag``
    (``health.replica_max_lag``) and ``[router]``: pool bounds and ages, ``policy``,
    ``fallback_to_primary`` and ``database`` (selected on every connection), each of which
    the keyword arguments override. ``connector`` replaces how a connection is opened and
    ``pool_options`` are passed to every :class:`NodePool` (tests). :meth:`close` calls
    every function given with :meth:`add_closer` (what :func:`datatier.routing.open` uses
    to stop the monitor it started).
    """

    def __init__(
        self,
        config: Config,
        monitor: SnapshotSource,
        *,
        fallback_to_primary: bool | None = None,
        policy: Policy | None = None,
        database: str | None = None,
        pool: PoolSettings | None = None,
        connector: Connector | None = None,
        pool_options: dict[str, object] | None = None,
    ) -> None:
        settings = config.router
        policy = policy or settings.policy
        if policy not in POLICIES:
            raise UsageError(f"router policy {policy!r}: expected one of {', '.join(POLICIES)}")
        self.config = config
        self.monitor = monitor
        self.fallback_to_primary = (
            settings.fallback_to_primary if fallback_to_primary is None else fallback_to_primary
        )
        self.policy = policy
        self.database = database or settings.database
        self.default_max_lag = config.health.replica_max_lag
        self.pool_settings = pool or PoolSettings(
            size=settings.pool_size,
            max_overflow=settings.max_overflow,
            timeout=settings.pool_timeout,
            recycle=settings.recycle,
            pre_ping_after=settings.pre_ping_after,
        )
        self._endpoints = {name: endpoint(config.mysql, name) for name in config.mysql.nodes}
        self._connector = connector or _connect
        self._pool_options = pool_options or {}
        self._pools: dict[str, NodePool] = {}
        self._closers: list[Callable[[], None]] = []
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._synced_round = -1
        self._thresholds: set[float] = set()
        # max_lag -> (snapshot, valid until (monotonic), fit, refused); replaced whole
        self._verdicts: dict[float, tuple[Snapshot, float, list[Route], list[str]]] = {}
        self._routes_total: dict[tuple[str, str, bool], int] = {}
        self._unroutable: dict[str, int] = {}
        self._ryw: dict[str, int] = {}
        self._closed = False
        add_listener = getattr(monitor, "add_listener", None)
        if callable(add_listener):
            add_listener(self.sync)

    # -- decisions (pure reads of the snapshot) ------------------------------------------
    def _snapshot(self) -> Snapshot:
        snap = self.monitor.snapshot
        if snap is None:
            raise ServiceUnavailable("router: the monitor has no measurement yet")
        if snap.round != self._synced_round:
            self.sync(snap)
        return snap

    def write_route(self, snap: Snapshot | None = None) -> Route:
        """The writable primary (see module doc); ServiceUnavailable if there is none."""
        return write_route(snap or self._snapshot(), self._endpoints)

    def read_candidates(
        self, max_lag: float, snap: Snapshot | None = None
    ) -> tuple[list[Route], list[str]]:
        """(fit replicas in preference order, refusals as ``"name: reason"``) for ``max_lag``.

        The order is by lag then name for ``least_lag``; for ``round_robin`` that list is
        rotated by one more position on every call. The evaluation of a snapshot is kept
        until a measurement in it turns stale (the only way its verdicts change with time).
        """
        snap = snap or self._snapshot()
        cached = self._verdicts.get(max_lag)
        if cached is not None and cached[0] is snap and time.monotonic() < cached[1]:
            fit, refused = cached[2], cached[3]
        else:
            fit, refused = read_verdicts(snap, max_lag, self._endpoints, self.policy)
            if max_lag in self._verdicts or len(self._verdicts) < MAX_THRESHOLDS:
                expires = (
                    min([snap.finished, *(n.checked for n in snap.nodes.values())])
                    + snap.stale_after
                )
                self._verdicts[max_lag] = (snap, expires, fit, refused)
        if self.policy == "round_robin" and fit:
            with self._lock:
                turn = next(self._turn) % len(fit)
            return fit[turn:] + fit[:turn], refused
        return list(fit), refused

    def check_max_lag(self, max_lag: float | None) -> float:
        """``max_lag`` (default ``health.replica_max_lag``) as seconds; UsageError unless it
        is a finite number > 0."""
        if max_lag is None:
            return check_max_lag(self.default_max_lag, "health.replica_max_lag")
        return check_max_lag(max_lag)

    def route(self, intent: str = "read", max_lag: float | None = None) -> Route:
        """The decision :meth:`connection` would act on first, without connecting."""
        return self._routes(intent, max_lag)[0]

    def _routes(self, intent: str, max_lag: float | None) -> list[Route]:
        """Every route to try, in order; ServiceUnavailable (clear reasons) if none."""
        if intent not in INTENTS:
            raise UsageError(f"router: intent {intent!r}: expected 'read' or 'write'")
        try:
            if intent == "write":
                if max_lag is not None:
                    raise UsageError("router: max_lag applies to reads only")
                return [self.write_route()]
            return self._read_routes(self.check_max_lag(max_lag))
        except ServiceUnavailable:
            self._count(self._unroutable, intent)
            raise

    def _read_routes(self, limit: float) -> list[Route]:
        if limit not in self._thresholds:
            with self._lock:
                if len(self._thresholds) < MAX_THRESHOLDS:
                    self._thresholds.add(limit)
        self.monitor.register_threshold(limit)  # hysteresis for this threshold from now on
        fit, refused = self.read_candidates(limit)
        if self.fallback_to_primary:
            try:
                primary = self.write_route()
            except ServiceUnavailable as exc:
                if not fit:
                    raise ServiceUnavailable(
                        f"router: no replica within {limit:g} s ({'; '.join(refused)}) "
                        f"and no primary to fall back to ({exc.message.removeprefix('router: ')})"
                    ) from None
            else:
                reason = "fallback: no replica fits" if not fit else "fallback"
                fit.append(Route(primary.node, "read", reason, fallback=True))
        if not fit:
            raise ServiceUnavailable(
                f"router: no replica within {limit:g} s of lag "
                f"({'; '.join(refused) or 'no replicas configured'}); "
                "fallback to the primary is off"
            )
        return fit

    # -- the fit set and draining ----------------------------------------------------------
    def fit_nodes(self, snap: Snapshot) -> set[str]:
        """The write target plus every replica that fits a ``max_lag`` in use."""
        with self._lock:
            limits = self._thresholds | {self.default_max_lag}
        return fit_nodes(snap, self._endpoints, limits)

    def sync(self, snap: Snapshot) -> None:
        """Drain the pools of nodes outside the fit set of ``snap`` (module doc); called by
        the monitor after each round and by the first call that sees a new round."""
        if not self._sync_lock.acquire(blocking=False):
            return  # another thread is at it
        try:
            if snap.round == self._synced_round:
                return
            self._synced_round = snap.round
            fit = self.fit_nodes(snap)
            with self._lock:
                pools = list(self._pools.items())
            for name, pool in pools:
                if name not in fit:
                    pool.drain()
        finally:
            self._sync_lock.release()

    # -- pools -----------------------------------------------------------------------------
    def pool(self, node: str) -> NodePool:
        """The pool of ``node``, created on first use."""
        pool = self._pools.get(node)
        if pool is not None:
            return pool
        ep = self._endpoints[node]
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("router is closed")
            pool = self._pools.get(node)
            if pool is None:
                database, connector = self.database, self._connector
                pool = NodePool(
                    node,
                    lambda: connector(ep, database),
                    self.pool_settings,
                    **self._pool_options,  # type: ignore[arg-type]
                )
                self._pools[node] = pool
        return pool

    def _count(self, counter: dict[str, int], key: str) -> None:
        with self._lock:
            counter[key] = counter.get(key, 0) + 1

    def stats(self) -> RouterStats:
        with self._lock:
            routes, refused, ryw = dict(self._routes_total), dict(self._unroutable), dict(self._ryw)
            pools = list(self._pools.values())
        return RouterStats(routes, refused, ryw, [p.stats() for p in pools])

    # -- connections ---------------------------------------------------------------------
    def connection(
        self,
        intent: str = "read",
        max_lag: float | None = None,
        *,
        after: str | None = None,
        wait_timeout: float = 1.0,
    ) -> PooledConnection:
        """A pooled connection that fits ``intent`` (and ``max_lag`` seconds for reads).

        Read-your-writes: with ``after`` (a GTID position from :func:`gtid_position` taken on
        the write connection), a read on a replica first waits up to ``wait_timeout`` seconds
        for the replica to apply it (``MASTER_GTID_WAIT`` on MariaDB,
        ``WAIT_FOR_EXECUTED_GTID_SET`` on MySQL); if it does not, the replica connection is
        returned and the writable primary is used (whatever ``fallback_to_primary`` says).

        Close the connection (``with router.connection(...) as conn:``) to return it. Raises
        UsageError on a bad intent, max_lag or wait_timeout, and ServiceUnavailable when no
        node fits or none of the fitting nodes gives a connection.
        """
        conn, _ = self.connection_with_route(
            intent, max_lag, after=after, wait_timeout=wait_timeout
        )
        return conn

    def connection_with_route(
        self,
        intent: str = "read",
        max_lag: float | None = None,
        *,
        after: str | None = None,
        wait_timeout: float = 1.0,
    ) -> tuple[PooledConnection, Route]:
        """Like :meth:`connection`, also returning the :class:`Route` that was used."""
        if self._closed:
            raise ServiceUnavailable("router is closed")
        if after is not None and intent != "read":
            raise UsageError("router: after= (read-your-writes) applies to reads only")
        if not 0.0 <= wait_timeout <= MAX_WAIT:
            raise UsageError(f"router: wait_timeout must be 0..{MAX_WAIT:g} s")
        conn, route = self._checkout(intent, self._routes(intent, max_lag))
        if after and not route.fallback:
            snap = self.monitor.snapshot
            health = None if snap is None else snap.nodes.get(route.node)
            flavour = health.replica.flavour if health and health.replica else MARIADB
            if wait_for(conn, after, wait_timeout, flavour):
                self._count(self._ryw, "reached")
                route = replace(route, reason=f"{route.reason}; reached {after}")
            else:
                self._count(self._ryw, "timeout")
                conn.close()
                primary = self.write_route()
                reason = (
                    f"read-your-writes: {route.node} did not reach {after} in {wait_timeout:g} s"
                )
                conn = self.pool(primary.node).checkout()
                route = Route(primary.node, "read", reason, fallback=True)
        with self._lock:
            key = (intent, route.node, route.fallback)
            self._routes_total[key] = self._routes_total.get(key, 0) + 1
        return conn, route

    def _checkout(self, intent: str, routes: list[Route]) -> tuple[PooledConnection, Route]:
        """A connection from the first route whose pool gives one (module doc)."""
        failures: list[str] = []
        exhausted: list[Route] = []
        preferred = [r for r in routes if not r.fallback]
        for route in preferred:
            try:
                # Only wait on a pool when every fit replica's pool is exhausted.
                wait = 0.0 if len(preferred) > 1 else None
                return self.pool(route.node).checkout(wait), route
            except PoolExhausted as exc:
                exhausted.append(route)
                failures.append(exc.message)
            except ServiceUnavailable as exc:
                failures.append(exc.message)
        if exhausted and len(preferred) > 1:
            try:
                return self.pool(exhausted[0].node).checkout(), exhausted[0]
            except ServiceUnavailable as exc:
                failures.append(exc.message)
        for route in routes:
            if route.fallback:
                try:
                    return self.pool(route.node).checkout(), route
                except ServiceUnavailable as exc:
                    failures.append(exc.message)
        self._count(self._unroutable, intent)
        raise ServiceUnavailable(
            f"router: no {intent} node gave a connection: " + "; ".join(failures)
        )

    # -- life cycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close every pool (connections in use close when returned) and stop the monitor
        this router owns. Later calls raise ServiceUnavailable."""
        remove = getattr(self.monitor, "remove_listener", None)
        if callable(remove):
            remove(self.sync)
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()
        while self._closers:
            self._closers.pop()()

    def add_closer(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the router is closed (last added, first called)."""
        self._closers.append(callback)

    def __enter__(self) -> Router:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
