"""The lag-aware read/write router: application code asks for "write" or "read, at most N s
stale" and gets a pymysql connection to a node that fits.

Contract.

- Decisions come only from the monitor's last in-memory
  :class:`~datatier.replication.snapshot.Snapshot` (the same checks as ``/primary`` and
  ``/replica``, hysteresis included); the router never queries replication status per call.
  The only MySQL traffic a call makes is opening the returned connection.
- ``connection("write")``: the node that passes ``Snapshot.primary_check`` (fresh snapshot,
  reachable, ``read_only`` off): the configured primary first; else the single other node that
  is writable (a promoted replica). None, or several besides the configured primary (split
  brain): :class:`~datatier.errors.ServiceUnavailable`.
- ``connection("read", max_lag=S)``: a replica whose IO and SQL threads both run and whose
  heartbeat lag is at most ``S`` seconds (default ``health.replica_max_lag``), and that is not
  held out by hysteresis for ``S`` (the router registers ``S`` with the monitor, so from the
  next round on a replica that went over ``S`` comes back only at ``readmit_ratio`` x ``S``).
  Among fit replicas: the least lagged (``policy="least_lag"``, the default) or each in turn
  (``policy="round_robin"``). If none fits: the writable primary when ``fallback_to_primary``
  is set (it is never stale), else ServiceUnavailable naming every replica and why it was
  refused. A snapshot older than the monitor's ``stale_after`` fits nothing, so with a dead
  monitor reads and writes raise rather than guess.
- Connections are fresh ones per call (no pool): autocommit, utf8mb4, UTC session, the
  configured credentials (:func:`datatier.mysql.connection.connect`). The caller owns and
  closes the connection (``with router.connection(...) as conn:``). If a chosen replica
  refuses the connection, the next fit replica is tried, then the fallback; a write that
  cannot connect raises ServiceUnavailable. Messages never contain the password.
- Thread-safe: snapshots are immutable, the round-robin counter is locked.

- Read-your-writes (optional, per call): ``connection("read", after=gtid_position(wconn))``
  waits on the chosen replica for that GTID position up to ``wait_timeout``, else uses the
  primary (see :meth:`Router.connection`). This wait is the one per-call query, and only
  when asked for.

Not provided: connection pooling. :meth:`Router.route` gives the decision without connecting.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import pymysql

from datatier.config import Config
from datatier.errors import ServiceUnavailable, UsageError
from datatier.mysql.connection import Connection, Endpoint, connect, endpoint, query_dicts
from datatier.replication.snapshot import Snapshot
from datatier.replication.status import MARIADB

Intent = Literal["read", "write"]
Policy = Literal["least_lag", "round_robin"]
POLICIES = ("least_lag", "round_robin")
INTENTS = ("read", "write")
MAX_WAIT = 60.0
UNKNOWN_VARIABLE = 1193


class SnapshotSource(Protocol):
    """What the router needs of a monitor (a running :class:`Monitor` satisfies it)."""

    @property
    def snapshot(self) -> Snapshot | None: ...

    def register_threshold(self, max_lag: float) -> None: ...


Connector = Callable[[Endpoint, str | None], Connection]


def _connect(ep: Endpoint, database: str | None) -> Connection:
    return connect(ep, database=database)


@dataclass(frozen=True)
class Route:
    """One routing decision: the node to use and why (``lag`` in seconds, None on a write)."""

    node: str
    intent: str
    reason: str
    lag: float | None = None
    fallback: bool = False


class Router:
    """Chooses nodes from ``monitor``'s snapshot and opens connections to them (module doc).

    ``config`` gives the credentials, node addresses and the default ``max_lag``
    (``health.replica_max_lag``). ``database`` is selected on every connection when given.
    ``connector`` replaces how a connection is opened (tests).
    """

    def __init__(
        self,
        config: Config,
        monitor: SnapshotSource,
        *,
        fallback_to_primary: bool = False,
        policy: Policy = "least_lag",
        database: str | None = None,
        connector: Connector | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise UsageError(f"router policy {policy!r}: expected one of {', '.join(POLICIES)}")
        self.config = config
        self.monitor = monitor
        self.fallback_to_primary = fallback_to_primary
        self.policy = policy
        self.database = database
        self.default_max_lag = config.health.replica_max_lag
        self._endpoints = {name: endpoint(config.mysql, name) for name in config.mysql.nodes}
        self._connector = connector or _connect
        self._turn = itertools.count()
        self._lock = threading.Lock()

    # -- decisions (pure reads of the snapshot) ------------------------------------------
    def _snapshot(self) -> Snapshot:
        snap = self.monitor.snapshot
        if snap is None:
            raise ServiceUnavailable("router: the monitor has no measurement yet")
        return snap

    def write_route(self) -> Route:
        """The writable primary (see module doc); ServiceUnavailable if there is none."""
        snap = self._snapshot()
        refused: list[str] = []
        writable: list[str] = []
        configured = [n for n, h in sorted(snap.nodes.items()) if h.role == "primary"]
        for name in configured + sorted(set(snap.nodes) - set(configured)):
            if name not in self._endpoints:
                continue
            ok, reason = snap.primary_check(name)
            if ok:
                writable.append(name)
            elif name in configured:
                refused.append(f"{name}: {reason}")
        if writable and (writable[0] in configured or len(writable) == 1):
            return Route(writable[0], "write", "writable primary")
        if len(writable) > 1:
            raise ServiceUnavailable(
                f"router: no write target: several writable nodes ({', '.join(writable)}) "
                "and none is the configured primary"
            )
        detail = "; ".join(refused) or "no primary configured"
        raise ServiceUnavailable(f"router: no writable primary ({detail})")

    def read_candidates(self, max_lag: float) -> tuple[list[Route], list[str]]:
        """(fit replicas in preference order, refusals as ``"name: reason"``) for ``max_lag``.

        The order is by lag then name for ``least_lag``; for ``round_robin`` that list is
        rotated by one more position on every call.
        """
        snap = self._snapshot()
        fit: list[Route] = []
        refused: list[str] = []
        for name, node in sorted(snap.nodes.items()):
            if node.role != "replica" or name not in self._endpoints:
                continue
            ok, reason = snap.replica_check(name, max_lag)
            if ok:
                fit.append(Route(name, "read", reason, lag=node.lag))
            else:
                refused.append(f"{name}: {reason}")
        fit.sort(key=lambda r: (r.lag if r.lag is not None else float("inf"), r.node))
        if self.policy == "round_robin" and fit:
            fit.sort(key=lambda r: r.node)
            with self._lock:
                turn = next(self._turn) % len(fit)
            fit = fit[turn:] + fit[:turn]
        return fit, refused

    def _max_lag(self, max_lag: float | None) -> float:
        value = self.default_max_lag if max_lag is None else float(max_lag)
        if not value >= 0.0 or value == float("inf"):
            raise UsageError(f"router: max_lag must be a finite number >= 0, got {max_lag!r}")
        return round(value, 6)

    def route(self, intent: str = "read", max_lag: float | None = None) -> Route:
        """The decision :meth:`connection` would act on first, without connecting."""
        routes = self._routes(intent, max_lag)
        return routes[0]

    def _routes(self, intent: str, max_lag: float | None) -> list[Route]:
        """Every route to try, in order; ServiceUnavailable (clear reasons) if none."""
        if intent not in INTENTS:
            raise UsageError(f"router: intent {intent!r}: expected 'read' or 'write'")
        if intent == "write":
            if max_lag is not None:
                raise UsageError("router: max_lag applies to reads only")
            return [self.write_route()]
        limit = self._max_lag(max_lag)
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

    # -- connections ---------------------------------------------------------------------
    def connection(
        self,
        intent: str = "read",
        max_lag: float | None = None,
        *,
        after: str | None = None,
        wait_timeout: float = 1.0,
    ) -> Connection:
        """A fresh connection that fits ``intent`` (and ``max_lag`` seconds for reads).

        Read-your-writes: with ``after`` (a GTID position from :func:`gtid_position` taken on
        the write connection), a read on a replica first waits up to ``wait_timeout`` seconds
        for the replica to apply it (``MASTER_GTID_WAIT`` on MariaDB,
        ``WAIT_FOR_EXECUTED_GTID_SET`` on MySQL); if it does not, the replica connection is
        closed and the writable primary is used (whatever ``fallback_to_primary`` says).

        The caller closes the connection. Raises UsageError on a bad intent, max_lag or
        wait_timeout, and ServiceUnavailable when no node fits or none of the fitting nodes
        accepts a connection.
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
    ) -> tuple[Connection, Route]:
        """Like :meth:`connection`, also returning the :class:`Route` that was used."""
        if after is not None and intent != "read":
            raise UsageError("router: after= (read-your-writes) applies to reads only")
        if not 0.0 <= wait_timeout <= MAX_WAIT:
            raise UsageError(f"router: wait_timeout must be 0..{MAX_WAIT:g} s")
        failures: list[str] = []
        for route in self._routes(intent, max_lag):
            try:
                conn = self._connector(self._endpoints[route.node], self.database)
            except ServiceUnavailable as exc:
                failures.append(exc.message)
                continue
            if not after or route.fallback:
                return conn, route
            if self._reached(conn, route.node, after, wait_timeout):
                return conn, replace(route, reason=f"{route.reason}; reached {after}")
            with contextlib.suppress(Exception):
                conn.close()
            primary = self.write_route()
            reason = f"read-your-writes: {route.node} did not reach {after} in {wait_timeout:g} s"
            conn = self._connector(self._endpoints[primary.node], self.database)
            return conn, Route(primary.node, "read", reason, fallback=True)
        raise ServiceUnavailable(
            f"router: no {intent} node accepted a connection: " + "; ".join(failures)
        )

    def _reached(self, conn: Connection, node: str, position: str, timeout: float) -> bool:
        """Whether ``node`` applied ``position`` within ``timeout`` s (False on any error)."""
        snap = self.monitor.snapshot
        health = None if snap is None else snap.nodes.get(node)
        flavour = health.replica.flavour if health and health.replica else MARIADB
        # Both answer 0 once the position is applied (MariaDB -1, MySQL 1 on timeout).
        function = "MASTER_GTID_WAIT" if flavour == MARIADB else "WAIT_FOR_EXECUTED_GTID_SET"
        statement = f"SELECT {function}(%s, %s)"
        try:
            with conn.cursor() as cur:
                cur.execute(statement, (position, timeout))
                row = cur.fetchone()
        except pymysql.MySQLError:
            return False
        return row is not None and row[0] is not None and int(row[0]) == 0


def gtid_position(conn: Connection) -> str:
    """The server's executed GTID position, to pass as ``after=`` once a write committed:
    MariaDB's ``@@gtid_binlog_pos``, else MySQL's ``@@GLOBAL.gtid_executed``."""
    for variable in ("gtid_binlog_pos", "gtid_executed"):
        try:
            rows = query_dicts(conn, f"SELECT @@GLOBAL.{variable} AS pos")
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == UNKNOWN_VARIABLE:
                continue
            raise
        return " ".join(str(rows[0]["pos"] or "").split())
    return ""
