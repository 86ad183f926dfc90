"""What the last runs of a policy's jobs did, kept in the policy's own store.

Contract. Each job kind (``backup``, ``prune``, ``verify``, ``restore_test``, ``archive``,
``check``) of a policy has one small JSON record at ``POLICY/_status/JOB.json`` (STANDARD,
tagged ``datatier-kind=status``; never a backup: the catalog ignores the prefix, lifecycle
rules never move it). It holds the last attempt, the last success and counters, so the
metrics of any host that reads the store (``health serve``, a textfile written by the next
cron run) show failures that left no backup behind. A record is read, updated and written
by the job that finished (runs of one policy never overlap: cron's ``flock``, systemd's
oneshot); an unreadable record counts as empty and is logged, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from datatier.backup.policy import POLICY_NAME
from datatier.log import get_logger
from datatier.storage.base import ObjectNotFound, ObjectStore, StorageClass

log = get_logger(__name__)

STATUS_DIR = "_status"
STATUS_TAGS = {"datatier-kind": "status"}
JOBS = ("backup", "prune", "verify", "restore_test", "archive", "check")


@dataclass(frozen=True)
class JobOutcome:
    """One finished run: times are UNIX seconds (UTC); ``exit_code`` 0 means success."""

    job: str
    policy: str
    started: float
    finished: float
    exit_code: int
    error: str | None = None
    hint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def seconds(self) -> float:
        return max(0.0, self.finished - self.started)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> JobOutcome:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})


@dataclass(frozen=True)
class JobStatus:
    """The record of one policy's job: last attempt, last success, counters."""

    job: str
    policy: str
    last: JobOutcome | None = None
    last_success: JobOutcome | None = None
    runs_total: int = 0
    failures_total: int = 0

    def updated(self, outcome: JobOutcome) -> JobStatus:
        """This record after ``outcome``."""
        return replace(
            self,
            last=outcome,
            last_success=outcome if outcome.ok else self.last_success,
            runs_total=self.runs_total + 1,
            failures_total=self.failures_total + (0 if outcome.ok else 1),
        )

    def encode(self) -> bytes:
        text = json.dumps(asdict(self), indent=1, sort_keys=True, allow_nan=False)
        return (text + "\n").encode()

    @classmethod
    def decode(cls, raw: bytes) -> JobStatus:
        doc = json.loads(raw)
        last, success = doc.get("last"), doc.get("last_success")
        return cls(
            job=str(doc["job"]),
            policy=str(doc["policy"]),
            last=JobOutcome.from_json(last) if last else None,
            last_success=JobOutcome.from_json(success) if success else None,
            runs_total=int(doc.get("runs_total", 0)),
            failures_total=int(doc.get("failures_total", 0)),
        )


def status_key(policy: str, job: str) -> str:
    """``POLICY/_status/JOB.json``; ValueError for an unknown job or a malformed name."""
    if job not in JOBS or not POLICY_NAME.match(policy):
        raise ValueError(f"no status record for job {job!r} of policy {policy!r}")
    return f"{policy}/{STATUS_DIR}/{job}.json"


def read_status(store: ObjectStore, policy: str, job: str) -> JobStatus:
    """The stored record (an empty one if there is none or it cannot be parsed).
    Store errors (unreachable, ...) propagate."""
    key = status_key(policy, job)
    try:
        raw = store.get_bytes(key)
    except ObjectNotFound:
        return JobStatus(job, policy)
    try:
        status = JobStatus.decode(raw)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("jobstatus.unreadable", key=f"{store.url}/{key}", error=str(exc))
        return JobStatus(job, policy)
    return status if (status.job, status.policy) == (job, policy) else JobStatus(job, policy)


def record(store: ObjectStore, outcome: JobOutcome, known: JobStatus | None = None) -> JobStatus:
    """Add ``outcome`` to its record in ``store`` and return the new record. ``known``: the
    record as this job read it earlier (runs of a policy's job never overlap, so it is still
    the stored one); None reads it now."""
    status = (known or read_status(store, outcome.policy, outcome.job)).updated(outcome)
    store.put_bytes(
        status_key(outcome.policy, outcome.job),
        status.encode(),
        storage_class=StorageClass.STANDARD,
        tags=STATUS_TAGS,
    )
    return status


def record_quietly(
    store: ObjectStore, outcome: JobOutcome, known: JobStatus | None = None
) -> JobStatus | None:
    """:func:`record`, logging (never raising) when the store refuses: a job's own error
    matters more than its bookkeeping. None when nothing was written."""
    try:
        return record(store, outcome, known)
    except Exception as exc:
        log.warning(
            "jobstatus.not_recorded", job=outcome.job, policy=outcome.policy, error=str(exc)
        )
        return None
