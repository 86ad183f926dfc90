"""Prometheus metrics through ``prometheus_client``: one registry per process, built from
collectors.

Contract. Every part of datatier that exports metrics provides a *collector* (an object with
``collect()`` yielding metric families, read from memory: a snapshot or a cache, never a
server). :func:`build_registry` puts any number of them in one fresh registry (never the
library's global one); the health server serves it on ``/metrics`` with :func:`exposition`, and
cron jobs write it as a node_exporter textfile with :func:`write_textfile` (written to a
temporary file beside the target and renamed over it, so the exporter never reads half a
file). Unknown values are exported as ``NaN`` (see :func:`value`), so a dashboard shows a gap
rather than a stale number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric

from datatier.errors import OperationFailed

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The text exposition format 0.0.4, which every Prometheus and node_exporter reads."""


class Collector(Protocol):
    """What :func:`build_registry` accepts: ``collect()`` yields metric families."""

    def collect(self) -> Iterable[Metric]: ...


def build_registry(*collectors: Collector) -> CollectorRegistry:
    """A new registry holding ``collectors`` (not described up front: they are read lazily)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the text exposition format (:data:`CONTENT_TYPE`)."""
    return generate_latest(registry)


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    """Write ``registry`` to ``path`` for node_exporter's textfile collector, atomically
    (a temporary file in the same directory, then rename). OperationFailed if it cannot."""
    if path.suffix != ".prom":
        raise OperationFailed(f"metrics file {path}: node_exporter reads only *.prom files")
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise OperationFailed(f"cannot write metrics file {path}: {exc.strerror}") from None


def value(number: float | int | bool | None) -> float:
    """A sample value: None (unknown) becomes NaN."""
    if number is None:
        return math.nan
    return float(number)
