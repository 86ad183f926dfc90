"""The monitor loop: measure every configured node each interval; publish an immutable snapshot.

Contract. :class:`Monitor` runs one daemon thread. Each round measures all nodes in parallel
(one worker and one kept-open connection per node, ``health.check_timeout`` for connect and
reads): reachable, ``read_only``, ``server_id``, replica status (both flavours), heartbeat
lag (a replica's against the heartbeat row of the previous round's write target, so a
chained replica is measured against the primary: :func:`heartbeat_source`), the server's
clock offset against this host (the skew between a replica's and the heartbeat writer's
clocks comes off the replica's lag: :mod:`datatier.replication.skew`), and the check's
duration. The round ends by replacing
:attr:`Monitor.snapshot` with a new frozen :class:`Snapshot` (one attribute assignment:
readers never see half a round and never lock). HTTP handlers read only that
snapshot; nothing here is called per request.

Hysteresis: for every lag threshold in use (the configured ones, always, plus a bounded set
per node of thresholds asked for by ``/replica?lag=``: see
:mod:`datatier.replication.thresholds`), a replica whose heartbeat lag exceeds the threshold
is held out until its lag falls to ``readmit_ratio`` x threshold or below.

Listeners (:meth:`Monitor.add_listener`) are called on the monitor thread with each new
snapshot right after it is published (the router drains its pools there); one that raises
is logged and does not stop the loop.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from types import MappingProxyType

import pymysql

from datatier.config import HealthSettings, MySQLSettings
from datatier.errors import ServiceUnavailable
from datatier.log import get_logger
from datatier.mysql.connection import Connection, Endpoint, endpoint, query_dicts
from datatier.mysql.heartbeat import clock_reading, read_lag
from datatier.mysql.replica_status import read_replica_status
from datatier.replication.selection import write_route
from datatier.replication.skew import correct_lags
from datatier.replication.snapshot import NodeHealth, Snapshot, hold_lagging
from datatier.replication.thresholds import ThresholdRegistry

log = get_logger(__name__)


def heartbeat_source(snap: Snapshot) -> int | None:
    """The server_id whose heartbeat row measures replica lag: the write target's (see
    :func:`~datatier.replication.selection.write_route`), else the configured primary's
    last known one; None when neither is known."""
    target: NodeHealth | None
    try:
        target = snap.nodes[write_route(snap, snap.nodes).node]
    except ServiceUnavailable:
        target = snap.primary()
    return None if target is None else target.server_id


class Monitor:
    """Measures the topology in ``mysql`` every ``health.interval`` seconds (see module doc)."""

    def __init__(
        self, mysql: MySQLSettings, health: HealthSettings, *, interval: float | None = None
    ) -> None:
        self.mysql = mysql
        self.health = health
        self.interval = health.interval if interval is None else interval
        self.stale_after = self.interval * health.stale_intervals + health.check_timeout
        self.snapshot: Snapshot | None = None
        self._endpoints = {name: endpoint(mysql, name) for name in sorted(mysql.nodes)}
        self._conns: dict[str, Connection] = {}
        self._inflight: dict[str, Future[NodeHealth]] = {}
        self._errors = dict.fromkeys(self._endpoints, 0)
        self.thresholds = ThresholdRegistry([health.replica_max_lag, *health.lag_thresholds])
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self._endpoints)), thread_name_prefix="monitor-check"
        )

    # -- thresholds (called from HTTP handler threads) -----------------------------------
    def register_threshold(self, max_lag: float, node: str | None = None) -> None:
        """Track hysteresis for ``max_lag`` on ``node`` (every node if None) from the next
        round on; bounded per node, never evicting configured thresholds; thread-safe."""
        for name in [node] if node is not None else self._endpoints:
            self.thresholds.touch(name, max_lag)

    def add_listener(self, callback: Callable[[Snapshot], None]) -> None:
        """Call ``callback(snapshot)`` after every round (module doc)."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[Snapshot], None]) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    # -- one round -----------------------------------------------------------------------
    def _open(self, ep: Endpoint) -> Connection:
        timeout = self.health.check_timeout
        return pymysql.connect(
            host=ep.host,
            port=ep.port,
            user=ep.user,
            password=ep.password,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            autocommit=True,
            charset="utf8mb4",
            **ep.tls_options(),
        )

    def _drop(self, name: str) -> None:
        conn = self._conns.pop(name, None)
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken socket may fail any way on close
                conn.close()

    @staticmethod
    def _gtid_position(conn: Connection) -> str:
        """MariaDB's ``gtid_binlog_pos``, else MySQL's ``gtid_executed`` ('' if neither)."""
        for variable in ("gtid_binlog_pos", "gtid_executed"):
            try:
                rows = query_dicts(conn, f"SELECT @@GLOBAL.{variable} AS pos")
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] == 1193:  # unknown system variable
                    continue
                raise
            return " ".join(str(rows[0]["pos"] or "").split())
        return ""

    def _measure(self, name: str, source_id: int | None) -> NodeHealth:
        ep = self._endpoints[name]
        base = NodeHealth(name=name, role=self.mysql.nodes[name].role, host=ep.host, port=ep.port)
        started = time.monotonic()
        try:
            conn = self._conns.get(name)
            if conn is None:
                conn = self._conns[name] = self._open(ep)
            before = time.time()
            row = query_dicts(
                conn, "SELECT @@server_id AS id, @@read_only AS ro, UTC_TIMESTAMP(6) AS now"
            )[0]
            after = time.time()
            status = read_replica_status(conn)
            server_id = int(row["id"])
            # A replica's lag is measured against the write target's heartbeat: what the
            # application's writes reach. Its own source's row serves only while no write
            # target is known (a chained replica's source writes no heartbeat; a wrong
            # source's heartbeat would say nothing about the primary's data).
            source = server_id if status is None else (source_id or status.source_server_id)
            reading = read_lag(conn, source)
            if reading is None and status is not None and source_id is None:
                # First round (one-shot `replication status`, `check`): no write target
                # known yet; the newest row is the one heartbeat writer's.
                reading = read_lag(conn, None)
            gtid = status.gtid_executed if status is not None else self._gtid_position(conn)
        except (pymysql.MySQLError, OSError) as exc:
            self._drop(name)
            self._errors[name] += 1
            message = ep.scrub(str(exc.args[1] if len(exc.args) > 1 else exc))
            return replace(
                base,
                error=message,
                check_seconds=time.monotonic() - started,
                measured_at=time.time(),
                checked=time.monotonic(),
                errors_total=self._errors[name],
            )
        clock = clock_reading(server_id, row["now"], before, after)
        return replace(
            base,
            reachable=True,
            read_only=bool(int(row["ro"])),
            server_id=server_id,
            replica=status,
            gtid_position=gtid,
            lag=None if reading is None else reading.lag,
            lag_raw=None if reading is None else reading.lag,
            lag_source=None if reading is None else reading.source_server_id,
            clock_offset=clock.offset,
            clock_error=clock.error,
            check_seconds=time.monotonic() - started,
            measured_at=time.time(),
            checked=time.monotonic(),
            errors_total=self._errors[name],
        )

    def measure_once(self, wait: float | None = None) -> Snapshot:
        """Measure every node, publish and return the new snapshot.

        With ``wait`` (the loop passes its interval), a node whose check is still running
        after ``wait`` seconds keeps its previous measurement (which turns stale in time) and
        is not checked again until that check ends: one hung server never delays the others.
        """
        previous = self.snapshot
        source_id = None if previous is None else heartbeat_source(previous)
        for name in self._endpoints:
            if name not in self._inflight:
                self._inflight[name] = self._pool.submit(self._measure, name, source_id)
        futures.wait(self._inflight.values(), timeout=wait)
        nodes: dict[str, NodeHealth] = {}
        for name in self._endpoints:
            future = self._inflight[name]
            if future.done():
                del self._inflight[name]
                nodes[name] = future.result()
            elif previous is not None and name in previous.nodes:
                nodes[name] = previous.nodes[name]
            else:
                ep = self._endpoints[name]
                nodes[name] = NodeHealth(
                    name=name,
                    role=self.mysql.nodes[name].role,
                    host=ep.host,
                    port=ep.port,
                    error="first check still running",
                    checked=time.monotonic(),
                )
        nodes = correct_lags(nodes, previous.nodes if previous else None)
        lagging = hold_lagging(
            previous.lagging if previous else {},
            nodes,
            self.thresholds.tracked(nodes),
            self.health.readmit_ratio,
        )
        snap = Snapshot(
            nodes=MappingProxyType(nodes),
            round=(previous.round + 1) if previous else 1,
            interval=self.interval,
            stale_after=self.stale_after,
            finished=time.monotonic(),
            lagging=MappingProxyType(lagging),
            heartbeat_stale_after=self.health.heartbeat_stale_after,
            heartbeat_source=source_id,
        )
        self.snapshot = snap  # the atomic swap readers rely on
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(snap)
            except Exception as exc:
                log.error("monitor.listener_failed", error=str(exc), exc_info=True)
        return snap

    # -- the loop ------------------------------------------------------------------------
    def _run(self) -> None:
        next_at = time.monotonic()
        # The first round waits for slow first connections (up to check_timeout); later
        # rounds wait one interval and carry a still-running check's previous result.
        wait = max(self.interval, self.health.check_timeout)
        while not self._stop.is_set():
            try:
                self.measure_once(wait=wait)
                wait = self.interval
            except Exception as exc:  # the loop must survive; /health shows it
                log.error("monitor.round_failed", error=str(exc), exc_info=True)
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:
                next_at = now
            self._stop.wait(next_at - now)

    def start(self) -> Monitor:
        """Start the loop in a daemon thread (the first round runs immediately)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="datatier-monitor", daemon=True)
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, close the per-node connections and the worker pool."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for name in list(self._conns):
            self._drop(name)
