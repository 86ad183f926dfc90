"""The health HTTP endpoint (Patroni-style) for HAProxy and uptime monitors.

Contract. Handlers read only the monitor's last :class:`~datatier.replication.monitor.Snapshot`
and never open a MySQL connection. Paths (GET, HEAD, OPTIONS):

- ``/primary[?node=NAME]``: 200 only if the node (default: the listener's node, else the
  configured primary) is reachable, writable and the router's write target (the configured
  primary while it is writable; another node only while it is the single writable one), so
  at most one node answers 200 even when a replica's read_only is switched off;
- ``/replica[?lag=2s][&node=NAME]``: 200 only if both replication threads run and the
  heartbeat lag is at most ``lag`` (``ms``, ``s``, ``m``; a bare number is seconds; default
  ``health.replica_max_lag``), with hysteresis; ``node`` may be omitted on a listener bound
  to a node (``--listen HOST:PORT=NODE``) or when exactly one replica is configured;
- ``/health``: 200 while the monitor thread runs and its snapshot is fresh (and, with an
  in-process heartbeat writer, while its thread runs); the body also says when the
  heartbeat writer has stopped;
- ``/metrics``: Prometheus text exposition (always 200 while serving) of the replication
  series, followed by the series of the ``registry`` the server was given (backup metrics
  in ``health serve``; a router's, when it runs in-process).

Otherwise 503 (unhealthy), 400 (bad query parameter, with a message), 404 (unknown path),
501 (other methods, from the stdlib). GET answers JSON (``/metrics``: text); HEAD and
OPTIONS answer the status line and headers only, with ``Content-Length: 0``.

Robustness. A response (headers and body) leaves in one write. A client that disconnects
early (HAProxy closes its check as soon as it has the status line) is logged once at debug,
never with a traceback and never answered with a 500 on the dead socket. A request must
arrive whole within ``client_timeout`` seconds of the connection (or of the previous
answer on a kept-alive one), however slowly its bytes trickle in; else it is closed.
Connections are capped at ``max_clients`` (default: well below the process's open-file
limit): at the cap, the one that has waited longest for its request is closed to admit the
new one, so a flood of idle or slow clients can never starve HAProxy's checks (which send
their request at once) of file descriptors or of the accept backlog.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import resource
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry

from datatier.config import split_host_port
from datatier.errors import ServiceUnavailable, UsageError
from datatier.log import get_logger
from datatier.metrics import CONTENT_TYPE, build_registry, exposition
from datatier.mysql.heartbeat import HeartbeatWriter
from datatier.replication.metrics import ReplicationCollector
from datatier.replication.monitor import Monitor
from datatier.replication.selection import write_route
from datatier.replication.snapshot import Snapshot

log = get_logger(__name__)

LAG_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
MAX_LAG = 86_400.0


class BadRequest(Exception):
    """A query parameter the client must fix (HTTP 400)."""


def parse_lag(text: str) -> float:
    """``250ms``, ``2s``, ``1.5m`` or ``2`` (seconds) as seconds; BadRequest otherwise."""
    match = LAG_PATTERN.match(text)
    if not match:
        raise BadRequest(f"lag={text!r}: expected a number with unit ms, s or m, e.g. lag=2s")
    value = float(match.group(1)) * UNITS[match.group(2)]
    if not math.isfinite(value) or value > MAX_LAG:
        raise BadRequest(f"lag={text!r}: at most {MAX_LAG:g} s")
    return round(value, 6)


def parse_listen(text: str) -> tuple[str, int, str | None]:
    """``HOST:PORT`` or ``HOST:PORT=NODE`` (``[::1]:PORT`` for IPv6) -> (host, port, node);
    UsageError otherwise. A listener bound to NODE answers for that node without ``?node=``
    (one port per node: what HAProxy's per-server check ``port`` needs)."""
    address, _, node = text.partition("=")
    try:
        host, port = split_host_port(address)
    except ValueError as exc:
        raise UsageError(
            f"--listen {text!r}: expected HOST:PORT or HOST:PORT=NODE, e.g. 127.0.0.1:8008 ({exc})"
        ) from None
    if "=" in text and not node:
        raise UsageError(f"--listen {text!r}: empty node name after '='")
    return host, port, node or None


def default_max_clients() -> int:
    """Connections to admit at once: half the open-file limit left after 64 for the rest of
    the process (MySQL, S3, logs), between 16 and 1024 (systemd's default soft limit is 1024)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, (soft - 64) // 2))


class _DeadlineReader(io.RawIOBase):
    """A socket reader whose every receive waits only until the handler's request deadline,
    so a client trickling a byte at a time cannot hold a connection past it."""

    def __init__(self, sock: socket.socket, handler: HealthHandler) -> None:
        super().__init__()
        self._sock = sock
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._handler.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request not received within client_timeout")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class HealthServer(ThreadingHTTPServer):
    """A threaded HTTP server bound to ``address`` that answers from ``monitor``'s snapshot."""

    daemon_threads = True
    allow_reuse_address = True
    # The stdlib backlog of 5 drops connects when HAProxy or a monitor fleet opens many at
    # once (ListenOverflows seen with 32 clients); let the kernel queue them instead.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        monitor: Monitor,
        default_lag: float,
        node: str | None = None,
        registry: CollectorRegistry | None = None,
        *,
        client_timeout: float | None = None,
        heartbeat: HeartbeatWriter | None = None,
        max_clients: int | None = None,
    ) -> None:
        if node is not None and node not in monitor.mysql.nodes:
            known = ", ".join(sorted(monitor.mysql.nodes)) or "none"
            raise UsageError(f"--listen ...={node}: unknown node (known: {known})")
        self.monitor = monitor
        self.default_lag = default_lag
        self.node = node
        self.replication = build_registry(ReplicationCollector(monitor, default_lag))
        self.registry = registry  # more series for /metrics (backups, a router's)
        self.client_timeout = (
            monitor.health.client_timeout if client_timeout is None else client_timeout
        )
        self.heartbeat = heartbeat
        self.max_clients = default_max_clients() if max_clients is None else max(1, max_clients)
        # open connection -> whether it waits for a request (evictable), in admission order
        self._clients: dict[socket.socket, bool] = {}
        self._clients_lock = threading.Lock()
        self.evicted_total = 0
        self._evicted_logged_at: float | None = None
        if ":" in address[0]:  # an IPv6 address (parse_listen's ``[::1]:PORT``)
            self.address_family = socket.AF_INET6
        super().__init__(address, HealthHandler)

    # -- admission: bounded connections, the longest-waiting idle one makes room ----------
    def process_request(self, request: Any, client_address: Any) -> None:
        victim = None
        full = False
        with self._clients_lock:
            if len(self._clients) >= self.max_clients:
                victim = next((c for c, waiting in self._clients.items() if waiting), None)
                if victim is None:  # every slot is answering a request right now
                    full = True
                else:
                    del self._clients[victim]
                    self.evicted_total += 1
            if not full:
                self._clients[request] = True
        if full:
            self.shutdown_request(request)
            return
        if victim is not None:
            with contextlib.suppress(OSError):  # its own thread closes it
                victim.shutdown(socket.SHUT_RDWR)
            self._note_eviction()
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._clients_lock:
            self._clients.pop(request, None)
        super().shutdown_request(request)

    def client_waiting(self, sock: socket.socket, waiting: bool) -> None:
        """Mark ``sock`` as waiting for a request (evictable) or being answered."""
        with self._clients_lock:
            if sock in self._clients:
                self._clients[sock] = waiting

    def _note_eviction(self) -> None:
        now = time.monotonic()
        if self._evicted_logged_at is None or now - self._evicted_logged_at >= 60.0:
            self._evicted_logged_at = now
            log.warning(
                "health.clients_evicted",
                evicted_total=self.evicted_total,
                max_clients=self.max_clients,
                note="too many idle or slow clients: the longest-waiting ones are closed",
            )

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A dropped client is routine (debug, no traceback); anything else is a bug, logged
        once as an error (the stdlib would print a traceback to stderr instead)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("health.client_disconnected", error=str(exc))
            return
        log.error("health.connection_failed", error=str(exc), exc_info=True)


class HealthHandler(BaseHTTPRequestHandler):
    """Routes requests to the snapshot checks; never raises out (500 only on a bug)."""

    server: HealthServer
    protocol_version = "HTTP/1.1"  # keep-alive for pollers; every answer has Content-Length
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server_version = "datatier-health"
    sys_version = ""
    # Buffered writes: status line, headers and body leave in one send (flushed per request
    # by the stdlib), so a checker that hangs up after the status line finds nothing unsent.
    wbufsize = 1 << 16
    _gone = False
    deadline = 0.0  # time.monotonic() by which the current request must have arrived

    def setup(self) -> None:
        super().setup()
        # Idle (keep-alive) or half-sent requests: reads stop at the request's deadline
        # (however slowly bytes trickle in); the stdlib then closes the connection.
        self.connection.settimeout(self.server.client_timeout)
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self))

    def handle_one_request(self) -> None:
        self.deadline = time.monotonic() + self.server.client_timeout
        self.server.client_waiting(self.connection, True)
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers (until the deadline)
        # The request is in: answering it may not be evicted, and the answer's writes get
        # the full client_timeout again.
        self.server.client_waiting(self.connection, False)
        self.connection.settimeout(self.server.client_timeout)
        return parsed

    def handle(self) -> None:
        # The stdlib flushes after each request: a client gone since the answer was written
        # raises there, out of handle(); noted here (once), not again by the server.
        try:
            super().handle()
        except ConnectionError as exc:
            self._disconnected(exc)

    def finish(self) -> None:
        try:
            super().finish()
        except ConnectionError as exc:
            self._disconnected(exc)

    def _disconnected(self, exc: BaseException) -> None:
        """Note an early disconnect once per connection, at debug, and stop serving it."""
        self.close_connection = True
        if not self._gone:
            self._gone = True
            log.debug("health.client_disconnected", path=self.path, error=str(exc))

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: pollers call hundreds of times a second."""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_OPTIONS(self) -> None:
        self._answer(body=False)

    def _send(self, status: int, payload: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Cache-Control", "no-store")
        if body:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
        else:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if body:
            self.wfile.write(payload)
        self.wfile.flush()

    def _json(self, status: int, doc: Mapping[str, Any], body: bool) -> None:
        payload = json.dumps(doc, separators=(",", ":"), default=str).encode() + b"\n"
        self._send(status, payload, "application/json", body)

    def _answer(self, body: bool) -> None:
        parts = urlsplit(self.path)
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
            route = ROUTES.get(parts.path.rstrip("/") or "/")
            if route is None:
                known = ", ".join(sorted(ROUTES))
                self._json(404, {"error": f"unknown path {parts.path!r} (known: {known})"}, body)
                return
            route(self, query, body)
        except ConnectionError as exc:  # the client hung up: nobody to answer
            self._disconnected(exc)
        except BadRequest as exc:
            self._reply_error(400, str(exc), body)
        except Exception as exc:  # a bug answers 500, never a dropped connection
            log.error("health.handler_failed", path=parts.path, error=str(exc), exc_info=True)
            self._reply_error(500, f"internal error: {type(exc).__name__}", body)

    def _reply_error(self, status: int, message: str, body: bool) -> None:
        try:
            self._json(status, {"error": message}, body)
        except ConnectionError as exc:
            self._disconnected(exc)

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _single(query: Mapping[str, list[str]], key: str) -> str | None:
        values = query.get(key)
        if not values:
            return None
        if len(values) > 1:
            raise BadRequest(f"{key} given {len(values)} times")
        return values[0]

    def _snapshot(self, body: bool) -> Snapshot | None:
        snap = self.server.monitor.snapshot
        if snap is None:
            self._json(503, {"healthy": False, "reason": "no measurement yet"}, body)
        return snap

    def _node(self, query: Mapping[str, list[str]], role: str) -> str:
        nodes = self.server.monitor.mysql.nodes
        name = self._single(query, "node")
        bound = self.server.node
        if name is not None:
            if name not in nodes:
                known = ", ".join(sorted(nodes)) or "none"
                raise BadRequest(f"node={name!r}: unknown node (known: {known})")
            if bound is not None and name != bound:
                raise BadRequest(f"node={name!r}: this port answers for node {bound!r} only")
            return name
        if bound is not None:
            return bound
        candidates = sorted(n for n, spec in nodes.items() if spec.role == role)
        if len(candidates) != 1:
            raise BadRequest(
                f"node=NAME is required: {len(candidates)} {role} nodes are configured "
                f"({', '.join(candidates) or 'none'})"
            )
        return candidates[0]

    @staticmethod
    def _check_params(query: Mapping[str, list[str]], allowed: set[str]) -> None:
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise BadRequest(
                f"unknown query parameter {unknown[0]!r} "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
            )

    # -- routes --------------------------------------------------------------------------
    def primary(self, query: Mapping[str, list[str]], body: bool) -> None:
        self._check_params(query, {"node"})
        name = self._node(query, "primary")
        snap = self._snapshot(body)
        if snap is None:
            return
        ok, reason = write_target_check(snap, name)
        doc = {"healthy": ok, "reason": reason, "node": snap.nodes[name].to_json()}
        self._json(200 if ok else 503, doc, body)

    def replica(self, query: Mapping[str, list[str]], body: bool) -> None:
        self._check_params(query, {"node", "lag"})
        name = self._node(query, "replica")
        lag_text = self._single(query, "lag")
        max_lag = self.server.default_lag if lag_text is None else parse_lag(lag_text)
        monitor = self.server.monitor
        monitor.register_threshold(max_lag, name)
        snap = self._snapshot(body)
        if snap is None:
            return
        ok, reason = snap.replica_check(name, max_lag)
        doc = {
            "healthy": ok,
            "reason": reason,
            "max_lag_seconds": max_lag,
            "clock_skew_seconds": snap.clock_skew(name),
            "node": snap.nodes[name].to_json(),
        }
        self._json(200 if ok else 503, doc, body)

    def health(self, query: Mapping[str, list[str]], body: bool) -> None:
        self._check_params(query, set())
        monitor = self.server.monitor
        snap = monitor.snapshot
        alive = monitor.alive()
        fresh = snap is not None and snap.fresh()
        reasons = []
        if not alive:
            reasons.append("monitor thread is not running")
        elif not fresh:
            reasons.append("no fresh measurement" if snap is None else "measurements are stale")
        writer = self.server.heartbeat
        if writer is not None and not writer.alive():
            reasons.append("the in-process heartbeat writer is not running")
        primary = None if snap is None else snap.primary()
        note = "" if snap is None else snap.heartbeat_note()
        healthy = not reasons
        doc: dict[str, Any] = {
            "healthy": healthy,
            "reasons": reasons,
            "monitor_alive": alive,
            "round": None if snap is None else snap.round,
            "snapshot_age_seconds": None if snap is None else round(snap.age(), 6),
            "stale_after_seconds": monitor.stale_after,
            "interval_seconds": monitor.interval,
            "heartbeat": {
                "age_seconds": None
                if primary is None or primary.lag is None
                else round(primary.lag, 3),
                "stale_after_seconds": monitor.health.heartbeat_stale_after,
                "note": note or None,
            },
        }
        if writer is not None:
            doc["heartbeat_writer"] = writer.status()
        self._json(200 if healthy else 503, doc, body)

    def metrics(self, query: Mapping[str, list[str]], body: bool) -> None:
        self._check_params(query, set())
        payload = exposition(self.server.replication)
        if self.server.registry is not None:
            payload += exposition(self.server.registry)
        self._send(200, payload, CONTENT_TYPE, body)


def write_target_check(snap: Snapshot, name: str) -> tuple[bool, str]:
    """(healthy, reason) for ``/primary`` on ``name``: the router's write target only.

    Every node's port sits in HAProxy's write backend, so a node that is merely writable (a
    replica whose read_only was switched off while the primary is up) must not answer 200:
    HAProxy would balance writes onto it. The rule is :func:`write_route`'s: the configured
    primary while it is writable, another node only when it is the single writable one.
    """
    ok, reason = snap.primary_check(name)
    if not ok:
        return ok, reason
    try:
        target = write_route(snap, snap.nodes).node
    except ServiceUnavailable as exc:
        return False, str(exc).removeprefix("router: ")
    if target != name:
        return False, f"writable, but {target} is the write target (one /primary at a time)"
    return True, reason


ROUTES = {
    "/primary": HealthHandler.primary,
    "/replica": HealthHandler.replica,
    "/health": HealthHandler.health,
    "/metrics": HealthHandler.metrics,
}


def serve(
    address: tuple[str, int],
    monitor: Monitor,
    default_lag: float,
    node: str | None = None,
    registry: CollectorRegistry | None = None,
    **options: Any,
) -> HealthServer:
    """A bound (not yet serving) :class:`HealthServer` (``options``: its keyword-only
    arguments); call ``serve_forever()`` on it. ``registry``'s series are appended to
    ``/metrics`` (backup metrics, a router's in the same process)."""
    return HealthServer(address, monitor, default_lag, node, registry, **options)
