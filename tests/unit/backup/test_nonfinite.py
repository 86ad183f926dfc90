"""Non-finite numbers: a backup's lag limit refuses them (exit 2) and no stored document
(manifest, job status record, binlog index record) is ever written with NaN or Infinity,
which are not JSON."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from datatier.backup.jobstatus import JobOutcome, JobStatus
from datatier.backup.manifest import Manifest
from datatier.backup.policy import check_max_lag
from datatier.binlog.records import SEGMENT, IndexRecord
from datatier.errors import IntegrityFailure, UsageError
from datatier.mysql.binlog.positions import Position

NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", [*NON_FINITE, -1.0])
def test_a_lag_limit_that_is_not_finite_or_negative_is_a_usage_error(value: float) -> None:
    with pytest.raises(UsageError, match=r"max_lag must be a finite number of seconds >= 0"):
        check_max_lag(value)


@pytest.mark.parametrize("value", [0, 0.5, 300.0])
def test_a_finite_lag_limit_is_kept(value: float) -> None:
    assert check_max_lag(value) == value


def manifest(source: dict[str, object]) -> Manifest:
    return Manifest(
        policy="p", backup_id="20260101T000000Z-abcd", engine="mysql", tool_version="0",
        started_at="", finished_at="", source=source, consistency={}, objects=[], tables=[],
    )  # fmt: skip


@pytest.mark.parametrize("value", NON_FINITE)
def test_a_manifest_carrying_nan_or_infinity_is_refused(value: float) -> None:
    with pytest.raises(IntegrityFailure, match=r"p/20260101T000000Z-abcd: .*NaN or infinite"):
        manifest({"max_lag_seconds": value}).encode()


def test_a_finite_manifest_encodes_as_json() -> None:
    assert json.loads(manifest({"max_lag_seconds": 300.0}).encode())["source"] == {
        "max_lag_seconds": 300.0
    }


@pytest.mark.parametrize("value", NON_FINITE)
def test_a_job_status_record_with_nan_is_not_encoded(value: float) -> None:
    outcome = JobOutcome(job="backup", policy="p", started=value, finished=1.0, exit_code=0)
    status = JobStatus(job="backup", policy="p").updated(outcome)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        status.encode()
    finite = JobStatus(job="backup", policy="p").updated(replace(outcome, started=0.0))
    assert JobStatus.decode(finite.encode()) == finite


def test_a_binlog_index_record_with_nan_is_not_encoded() -> None:
    record = IndexRecord(
        seq=1, kind=SEGMENT, gtid_start=Position.parse("0-1-1"),
        gtid_end=Position.parse("0-1-2"), published_at="2026-12-01T12:00:00.000Z",
        key="p/_binlogs/data/000000000001.binlog.zst", size=10, first_ts=0, last_ts=0,
        reason="",
    )  # fmt: skip
    json.loads(record.encode())
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        replace(record, extra={"lag": math.nan}).encode()
