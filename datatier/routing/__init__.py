"""Read/write routing for applications: one call starts it, the ORMs plug into it.

Contract. :func:`open` loads the configuration (``config_path``, else ``$DATATIER_CONFIG``,
else ``./datatier.toml``; ``DATATIER_*`` overrides apply), starts a
:class:`~datatier.replication.monitor.Monitor` thread, waits for its first round and returns
a :class:`~datatier.replication.router.Router` with one connection pool per node. Use it as a
context manager, or call ``close()``: pools are closed and the monitor stops. Keyword
arguments override the ``[router]`` settings. With ``registry`` the router's metrics
(:mod:`datatier.replication.routermetrics`) are registered there and unregistered on close.

Reads need ``datatier replication heartbeat`` running against the primary (a replica without
a heartbeat is never fit). Integrations: :mod:`datatier.routing.sqlalchemy` (extra
``datatier[sqlalchemy]``) and :mod:`datatier.routing.django` (extra ``datatier[django]``).
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry

from datatier.config import load
from datatier.errors import ConfigError, ServiceUnavailable
from datatier.mysql.pool import PooledConnection, PoolSettings
from datatier.replication.gtid import gtid_position
from datatier.replication.health import HealthServer, serve
from datatier.replication.monitor import Monitor
from datatier.replication.router import Policy, Route, Router
from datatier.replication.routermetrics import RouterCollector

__all__ = [
    "PoolSettings",
    "PooledConnection",
    "Route",
    "Router",
    "gtid_position",
    "open",
    "serve_health",
]


def open(
    config_path: str | os.PathLike[str] | None = None,
    *,
    registry: CollectorRegistry | None = None,
    fallback_to_primary: bool | None = None,
    policy: Policy | None = None,
    database: str | None = None,
    pool: PoolSettings | None = None,
    first_round_timeout: float | None = None,
) -> Router:
    """A running router (module doc). ConfigError (exit 2) on a bad or empty configuration;
    ServiceUnavailable (exit 3) if the monitor's first round does not finish within
    ``first_round_timeout`` (default: ``health.check_timeout`` + 2 intervals + 1 s)."""
    config = load(None if config_path is None else os.fspath(config_path)).config
    if not config.mysql.nodes:
        raise ConfigError("config", "mysql.nodes", "no MySQL nodes configured")
    monitor = Monitor(config.mysql, config.health)
    router = Router(
        config,
        monitor,
        fallback_to_primary=fallback_to_primary,
        policy=policy,
        database=database,
        pool=pool,
    )
    router.add_closer(monitor.stop)
    monitor.start()
    try:
        limit = first_round_timeout
        if limit is None:
            limit = config.health.check_timeout + 2 * monitor.interval + 1.0
        deadline = time.monotonic() + limit
        while monitor.snapshot is None:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"router: the monitor's first round did not finish within {limit:g} s"
                )
            time.sleep(0.01)
        if registry is not None:
            collector = RouterCollector(router)
            registry.register(collector)
            router.add_closer(lambda: registry.unregister(collector))
    except BaseException:
        router.close()
        raise
    return router


def serve_health(
    router: Router, address: tuple[str, int], registry: CollectorRegistry | None = None
) -> HealthServer:
    """The health endpoint (``/primary``, ``/replica``, ``/health``, ``/metrics``) on the
    router's own monitor, bound and not yet serving (call ``serve_forever()`` in a thread).
    ``/metrics`` includes ``registry``, or the router's metrics when none is given."""
    if not isinstance(router.monitor, Monitor):
        raise ConfigError("router", None, "serve_health needs a router made by routing.open")
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RouterCollector(router))
    return serve(address, router.monitor, router.default_max_lag, registry=registry)
