"""Backup metrics per policy, as a ``prometheus_client`` collector over cached stats.

Series (label ``policy``; job series also ``job``: backup, prune, verify, restore_test,
archive, check). Times are UNIX seconds; unknown values are NaN::

    datatier_backup_catalog_up                 1 if the store could be read at the last refresh
    datatier_backup_stats_age_seconds          age of the numbers below
    datatier_backup_complete                   backups with a manifest
    datatier_backup_last_success_timestamp_seconds   newest complete backup's finish time
    datatier_backup_last_duration_seconds / _last_size_bytes / _last_raw_bytes / _last_objects
    datatier_job_last_attempt_timestamp_seconds      when the last run finished
    datatier_job_last_attempt_success          1 if it succeeded, 0 if it failed
    datatier_job_last_exit_code
    datatier_job_last_duration_seconds
    datatier_job_last_success_timestamp_seconds
    datatier_job_runs_total / datatier_job_failures_total   (counters)
    datatier_binlog_archive_lag_seconds        (once binlog archiving exists; see stats.py)

Alert on ``time() - datatier_backup_last_success_timestamp_seconds`` and on
``datatier_job_last_attempt_success == 0``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from datatier.backup.jobstatus import JobStatus
from datatier.backup.stats import PolicyStats
from datatier.metrics import value

StatsSource = Callable[[], Mapping[str, PolicyStats] | None]

BACKUP_SERIES: tuple[tuple[str, str, Callable[[PolicyStats], float | None]], ...] = (
    (
        "datatier_backup_complete",
        "Backups of the policy that have a manifest.",
        lambda s: None if s.error else s.backups,
    ),
    (
        "datatier_backup_last_success_timestamp_seconds",
        "When the newest complete backup finished (UNIX time).",
        lambda s: None if s.newest is None else s.newest.finished,
    ),
    (
        "datatier_backup_last_duration_seconds",
        "How long the newest complete backup took.",
        lambda s: None if s.newest is None else s.newest.seconds,
    ),
    (
        "datatier_backup_last_size_bytes",
        "Stored (compressed) bytes of the newest complete backup.",
        lambda s: None if s.newest is None else s.newest.bytes,
    ),
    (
        "datatier_backup_last_raw_bytes",
        "Uncompressed bytes of the newest complete backup.",
        lambda s: None if s.newest is None else s.newest.raw_bytes,
    ),
    (
        "datatier_backup_last_objects",
        "Data objects of the newest complete backup.",
        lambda s: None if s.newest is None else s.newest.objects,
    ),
)

JOB_SERIES: tuple[tuple[str, str, Callable[[JobStatus], float | None]], ...] = (
    (
        "datatier_job_last_attempt_timestamp_seconds",
        "When the job's last run finished (UNIX time).",
        lambda j: None if j.last is None else j.last.finished,
    ),
    (
        "datatier_job_last_attempt_success",
        "1 if the job's last run succeeded, 0 if it failed.",
        lambda j: None if j.last is None else j.last.ok,
    ),
    (
        "datatier_job_last_exit_code",
        "Exit code of the job's last run.",
        lambda j: None if j.last is None else j.last.exit_code,
    ),
    (
        "datatier_job_last_duration_seconds",
        "How long the job's last run took.",
        lambda j: None if j.last is None else j.last.seconds,
    ),
    (
        "datatier_job_last_success_timestamp_seconds",
        "When the job last succeeded (UNIX time).",
        lambda j: None if j.last_success is None else j.last_success.finished,
    ),
)


class BackupCollector:
    """Metric families of the stats ``source`` returns (None: nothing read yet)."""

    def __init__(self, source: StatsSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        stats = self.source()
        if stats is None:
            return
        rows = [stats[name] for name in sorted(stats)]
        up = GaugeMetricFamily(
            "datatier_backup_catalog_up",
            "1 if the policy's store could be read at the last refresh.",
            labels=["policy", "store"],
        )
        age = GaugeMetricFamily(
            "datatier_backup_stats_age_seconds",
            "Seconds since the policy's backup stats were read from its store.",
            labels=["policy"],
        )
        now = time.time()
        for row in rows:
            up.add_metric([row.policy, row.store_url], float(row.error is None))
            age.add_metric([row.policy], max(0.0, now - row.read_at))
        yield up
        yield age
        for name, text, getter in BACKUP_SERIES:
            family = GaugeMetricFamily(name, text, labels=["policy"])
            for row in rows:
                family.add_metric([row.policy], value(getter(row)))
            yield family
        jobs = [(row.policy, job, row.jobs[job]) for row in rows for job in sorted(row.jobs)]
        for name, text, job_getter in JOB_SERIES:
            family = GaugeMetricFamily(name, text, labels=["policy", "job"])
            for policy, job, status in jobs:
                family.add_metric([policy, job], value(job_getter(status)))
            yield family
        runs = CounterMetricFamily(
            "datatier_job_runs", "Runs of the job recorded in the store.", labels=["policy", "job"]
        )
        failures = CounterMetricFamily(
            "datatier_job_failures",
            "Failed runs of the job recorded in the store.",
            labels=["policy", "job"],
        )
        for policy, job, status in jobs:
            runs.add_metric([policy, job], status.runs_total)
            failures.add_metric([policy, job], status.failures_total)
        yield runs
        yield failures
        lags = [row for row in rows if row.binlog_archive_lag is not None]
        if lags:
            lag = GaugeMetricFamily(
                "datatier_binlog_archive_lag_seconds",
                "How far the binlog archive trails the primary.",
                labels=["policy"],
            )
            for row in lags:
                lag.add_metric([row.policy], value(row.binlog_archive_lag))
            yield lag
