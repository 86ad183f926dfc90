"""Prometheus series of the binlog archive, read from an :class:`ArchiveWatch`'s memory."""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from datatier.binlog.status import ArchiveWatch


class BinlogArchiveCollector(Collector):
    """``datatier_binlog_archive_lag_seconds`` (NaN until known) and
    ``datatier_binlog_archive_gaps`` (gaps in the archive, by policy)."""

    def __init__(self, watch: ArchiveWatch) -> None:
        self.watch = watch

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.watch.last
        policy = status.policy if status else ""
        lag = GaugeMetricFamily(
            "datatier_binlog_archive_lag_seconds",
            "How far the binlog archive trails the server (0: it holds everything).",
            labels=["policy"],
        )
        gaps = GaugeMetricFamily(
            "datatier_binlog_archive_gaps",
            "Gaps in the binlog archive (purged before archived, missing or resized objects).",
            labels=["policy"],
        )
        value = status.lag_seconds if status and status.lag_seconds is not None else math.nan
        lag.add_metric([policy], value)
        gaps.add_metric([policy], float(len(status.gaps)) if status else math.nan)
        yield lag
        yield gaps
