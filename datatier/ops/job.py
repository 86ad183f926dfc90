"""One unattended job (backup, prune, verify, archive, check): its outcome, everywhere it
must go.

Contract. ``with run_job(loaded, "backup", policy="shop") as run:`` runs the body; the
command sets ``run.store`` once the policy's store is known (a
:class:`~datatier.storage.deferred.DeferredStore` that fails to open counts as unknown) and
may add ``run.details``; ``run.read_record_early()`` reads the job's record while the job
runs, so that its end only writes it. When the body ends, however it ends (error, Ctrl-C,
SIGTERM), before the exception goes on:

1. the outcome is added to the policy's job record in its store (when both are known;
   see :mod:`datatier.backup.jobstatus`);
2. on failure, the event goes to ``notify.command`` / ``notify.webhook_url``;
3. with ``metrics_file``, the policy's metrics (store stats plus this outcome) are written
   there as a node_exporter textfile, atomically;
4. one log line, last: ``job.completed`` (debug) or ``job.failed`` carrying ``error`` (the
   one-line message), ``exit_code`` and ``hint``; the failure is noted in ``reported`` so
   the CLI does not print it a second time (with JSON logs nothing plain follows it).

Steps 1-3 never raise: a bookkeeping problem is logged and the job's own result stands.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datatier import log as logging_setup
from datatier.backup.jobstatus import JobOutcome, JobStatus, read_status, record_quietly
from datatier.backup.stats import PolicyStats, read_policy_stats
from datatier.config import LoadedConfig
from datatier.errors import FailureFields, failure_fields
from datatier.log import get_logger
from datatier.ops.notify import Notifier
from datatier.storage.base import ObjectStore
from datatier.storage.deferred import settled

log = get_logger(__name__)


@dataclass
class JobRun:
    """What the command tells the runner while the job runs."""

    job: str
    policy: str | None = None
    store: ObjectStore | None = None
    details: dict[str, Any] = field(default_factory=dict)
    record: bool = True
    _early: list[JobStatus] = field(default_factory=list, init=False, repr=False)
    _reading: threading.Thread | None = field(default=None, init=False, repr=False)

    def read_record_early(self) -> None:
        """Start reading the job's record from ``store`` in a background thread, so the end
        of the job only writes it (a round trip saved on a long job's critical path). Runs of
        a policy's job never overlap (:mod:`datatier.backup.jobstatus`): the record read now
        is the one the end updates. When the read fails, the end reads again."""
        store, policy = self.store, self.policy
        if store is None or not policy or not self.record or self._reading is not None:
            return

        def read() -> None:
            with contextlib.suppress(Exception):  # the end reads again, and reports
                self._early.append(read_status(store, policy, self.job))

        self._reading = threading.Thread(target=read, name="job-record", daemon=True)
        self._reading.start()

    def early_record(self) -> JobStatus | None:
        """The record :meth:`read_record_early` read (waited for), None without one."""
        if self._reading is None:
            return None
        self._reading.join()
        return self._early[0] if self._early else None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextlib.contextmanager
def run_job(
    loaded: LoadedConfig,
    job: str,
    *,
    policy: str | None = None,
    metrics_file: Path | None = None,
    reported: set[int] | None = None,
    record: bool = True,
) -> Iterator[JobRun]:
    """Run the body as job ``job`` (see module docstring); ``record=False`` (a dry run)
    keeps the outcome out of the store's job record."""
    run = JobRun(job, policy, record=record)
    started = time.time()
    try:
        yield run
    except BaseException as exc:
        _finish(loaded, run, started, exc, metrics_file)
        if reported is not None:
            reported.add(id(exc))
        raise
    _finish(loaded, run, started, None, metrics_file)


def _finish(
    loaded: LoadedConfig,
    run: JobRun,
    started: float,
    exc: BaseException | None,
    metrics_file: Path | None,
) -> None:
    failure = None if exc is None else failure_fields(exc)
    outcome = JobOutcome(
        job=run.job,
        policy=run.policy or "",
        started=started,
        finished=time.time(),
        exit_code=failure["exit_code"] if failure else 0,
        error=failure["error"] if failure else None,
        hint=failure["hint"] if failure else None,
        details=dict(run.details),
    )
    where: dict[str, Any] = {
        "job": run.job,
        "policy": run.policy,
        "seconds": round(outcome.seconds, 3),
        **(failure or {}),
    }
    status = None
    store = settled(run.store)  # a store that failed to open is none to record in
    if run.record and run.policy and store is not None:
        status = record_quietly(store, outcome, run.early_record())
    if failure is not None:
        _notify(loaded, run, outcome, failure)
    if metrics_file is not None:
        known = status or JobStatus(run.job, outcome.policy).updated(outcome)
        _write_metrics(run, store, known, metrics_file)
    # Last, so the job's own failure is the final line (bookkeeping warnings come before).
    if exc is None:
        log.debug("job.completed", **where)
    elif logging_setup.json_enabled():
        log.error("job.failed", **where)
    else:  # at a terminal the CLI's one error line says it
        log.debug("job.failed", **where)


def _notify(loaded: LoadedConfig, run: JobRun, outcome: JobOutcome, failure: FailureFields) -> None:
    notifier = Notifier(loaded.config.notify)
    if not notifier.configured:
        return
    try:
        notifier.send(
            {
                "event": "job.failed",
                "job": run.job,
                "policy": run.policy,
                **failure,
                "host": socket.gethostname(),
                "started_at": _iso(outcome.started),
                "finished_at": _iso(outcome.finished),
                "seconds": round(outcome.seconds, 3),
                "details": run.details,
            }
        )
    except Exception as exc:
        log.warning("notify.failed", channel="any", problem=str(exc))


def _write_metrics(run: JobRun, store: ObjectStore | None, known: JobStatus, path: Path) -> None:
    # lazy: prometheus_client costs ~50 ms to import, paid by every job otherwise
    from datatier.backup.metrics import BackupCollector
    from datatier.metrics import build_registry, write_textfile

    policy = known.policy
    try:
        if store is not None and policy:
            stats = read_policy_stats(store, policy, known={run.job: known})
        else:
            stats = PolicyStats(
                policy, "", time.time(), error="store not read", jobs={run.job: known}
            )
        write_textfile(path, build_registry(BackupCollector(lambda: {policy: stats})))
        log.debug("job.metrics_written", path=str(path))
    except Exception as exc:
        log.warning("job.metrics_not_written", path=str(path), error=str(exc))
