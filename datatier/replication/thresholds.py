"""The lag thresholds whose hysteresis the monitor tracks, bounded against clients.

Contract. *Configured* thresholds (``health.replica_max_lag`` and ``health.lag_thresholds``:
what HAProxy's checks ask for) are tracked for every node, always: nothing a client does
can evict them. Thresholds a client picks with ``/replica?lag=`` are tracked per node, at
most ``per_node`` of them, least recently asked first out; one not asked for within
``idle_seconds`` expires. So a client flooding ``lag=`` with new values churns only other
client-chosen thresholds of that node, never the configured ones, and memory stays bounded.
Each flood (evictions) is logged as a warning at most once per ``log_every`` seconds, with
counts. Thread-safe: handlers call :meth:`touch`, the monitor thread calls :meth:`tracked`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

from datatier.log import get_logger

log = get_logger(__name__)

PER_NODE = 16
IDLE_SECONDS = 600.0
LOG_EVERY = 60.0


class ThresholdRegistry:
    """Configured thresholds plus a bounded LRU of client-chosen ones per node."""

    def __init__(
        self,
        configured: Iterable[float],
        *,
        per_node: int = PER_NODE,
        idle_seconds: float = IDLE_SECONDS,
        log_every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.configured = frozenset(configured)
        self.per_node = per_node
        self.idle_seconds = idle_seconds
        self.log_every = log_every
        self._clock = clock
        self._chosen: dict[str, OrderedDict[float, float]] = {}
        self._lock = threading.Lock()
        self._evicted = 0
        self._evicted_logged = 0
        self._logged_at: float | None = None

    def touch(self, node: str, threshold: float) -> None:
        """Note that a client asked ``node``'s health at ``threshold`` (tracked from the next
        round on, unless it is a configured threshold, which always is)."""
        if threshold in self.configured:
            return
        now = self._clock()
        with self._lock:
            chosen = self._chosen.setdefault(node, OrderedDict())
            if threshold in chosen:
                chosen.move_to_end(threshold)
                chosen[threshold] = now
                return
            chosen[threshold] = now
            while len(chosen) > self.per_node:
                chosen.popitem(last=False)
                self._evicted += 1
            self._maybe_log(node, now)

    def _maybe_log(self, node: str, now: float) -> None:
        if self._evicted == self._evicted_logged:
            return
        if self._logged_at is not None and now - self._logged_at < self.log_every:
            return
        log.warning(
            "health.lag_threshold_flood",
            node=node,
            evicted=self._evicted - self._evicted_logged,
            evicted_total=self._evicted,
            per_node=self.per_node,
            note="clients ask for many distinct lag= values; configured thresholds are kept",
        )
        self._evicted_logged = self._evicted
        self._logged_at = now

    def tracked(self, nodes: Iterable[str]) -> dict[float, frozenset[str]]:
        """Threshold -> the nodes to evaluate at it this round (expired entries dropped)."""
        names = frozenset(nodes)
        result: dict[float, set[str]] = {limit: set(names) for limit in self.configured}
        cutoff = self._clock() - self.idle_seconds
        with self._lock:
            for node, chosen in self._chosen.items():
                for limit in [t for t, used in chosen.items() if used < cutoff]:
                    del chosen[limit]
                if node not in names:
                    continue
                for limit in chosen:
                    result.setdefault(limit, set()).add(node)
        return {limit: frozenset(members) for limit, members in result.items()}

    def counts(self) -> Mapping[str, int]:
        """Client-chosen thresholds tracked per node (for tests and status)."""
        with self._lock:
            return {node: len(chosen) for node, chosen in self._chosen.items()}

    @property
    def evicted_total(self) -> int:
        return self._evicted
