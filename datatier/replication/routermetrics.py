"""Prometheus metrics of a :class:`~datatier.replication.router.Router` and its pools.

Contract. :class:`RouterCollector` is a ``prometheus_client`` custom collector: it reads the
router's counters (:meth:`Router.stats`) when scraped, so routing and checkouts pay nothing
for metrics. Register it into any registry::

    registry.register(RouterCollector(router))      # or prometheus_client.REGISTRY

:func:`datatier.routing.open` does that for the registry it is given. Series (every name
starts with ``datatier_router_`` or ``datatier_pool_``):

- ``datatier_router_routes_total{intent,node,fallback}``: connections handed out;
  ``fallback="true"`` counts reads sent to the primary (no replica fit, or a
  read-your-writes wait timed out);
- ``datatier_router_unroutable_total{intent}``: calls refused (no node fits or connects);
- ``datatier_router_read_your_writes_total{outcome}``: GTID waits, ``reached``/``timeout``;
- ``datatier_pool_connections{node,state}``: open connections, ``idle`` and ``in_use``;
- ``datatier_pool_limit{node,bound}``: ``size`` and ``max_overflow``;
- ``datatier_pool_checkouts_total{node}``, ``datatier_pool_opened_total{node}``,
  ``datatier_pool_closed_total{node,reason}`` (recycled, ping_failed, drained, overflow,
  reset_failed, discarded, leaked), ``datatier_pool_drains_total{node}``,
  ``datatier_pool_timeouts_total{node}``;
- ``datatier_pool_wait_seconds{node}`` (a summary: ``_count`` checkouts that had to wait
  for a free connection, ``_sum`` seconds spent waiting).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from datatier.mysql.pool import PoolStats
from datatier.replication.router import Router


class RouterCollector(Collector):
    """Exports ``router``'s counters and pool states at scrape time (module doc)."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def describe(self) -> list[Metric]:
        """Nothing up front: the series depend on the nodes used (collected lazily)."""
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self.router.stats()
        routes = CounterMetricFamily(
            "datatier_router_routes",
            "Connections the router handed out, by intent, node and fallback to the primary.",
            labels=["intent", "node", "fallback"],
        )
        for (intent, node, fallback), count in sorted(stats.routes.items()):
            routes.add_metric([intent, node, "true" if fallback else "false"], count)
        yield routes
        refused = CounterMetricFamily(
            "datatier_router_unroutable",
            "Router calls refused because no node fit or gave a connection.",
            labels=["intent"],
        )
        for intent in ("read", "write"):
            refused.add_metric([intent], stats.unroutable.get(intent, 0))
        yield refused
        ryw = CounterMetricFamily(
            "datatier_router_read_your_writes",
            "GTID waits for read-your-writes, by outcome (timeout: read from the primary).",
            labels=["outcome"],
        )
        for outcome in ("reached", "timeout"):
            ryw.add_metric([outcome], stats.read_your_writes.get(outcome, 0))
        yield ryw
        yield from self._pools(stats.pools)

    @staticmethod
    def _pools(pools: list[PoolStats]) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "datatier_pool_connections",
            "Open pooled connections per node, idle or in use.",
            labels=["node", "state"],
        )
        limit = GaugeMetricFamily(
            "datatier_pool_limit", "Pool bounds per node.", labels=["node", "bound"]
        )
        counters = {
            name: CounterMetricFamily(f"datatier_pool_{name}", text, labels=["node"])
            for name, text in (
                ("checkouts", "Checkouts asked of the pool."),
                ("opened", "Connections the pool opened."),
                ("drains", "Times the pool was drained (its node left the fit set)."),
                ("timeouts", "Checkouts that gave up waiting for a free connection."),
            )
        }
        closed = CounterMetricFamily(
            "datatier_pool_closed",
            "Connections the pool closed, by reason.",
            labels=["node", "reason"],
        )
        waits = SummaryMetricFamily(
            "datatier_pool_wait_seconds",
            "Checkouts that waited for a free connection, and the seconds they waited.",
            labels=["node"],
        )
        for pool in sorted(pools, key=lambda p: p.node):
            connections.add_metric([pool.node, "idle"], pool.idle)
            connections.add_metric([pool.node, "in_use"], pool.in_use)
            limit.add_metric([pool.node, "size"], pool.size)
            limit.add_metric([pool.node, "max_overflow"], pool.max_overflow)
            counters["checkouts"].add_metric([pool.node], pool.checkouts_total)
            counters["opened"].add_metric([pool.node], pool.opened_total)
            counters["drains"].add_metric([pool.node], pool.drains_total)
            counters["timeouts"].add_metric([pool.node], pool.timeouts_total)
            for reason, count in sorted(pool.closed_total.items()):
                closed.add_metric([pool.node, reason], count)
            waits.add_metric([pool.node], pool.waits_total, pool.wait_seconds_total)
        yield connections
        yield limit
        yield from counters.values()
        yield closed
        yield waits
