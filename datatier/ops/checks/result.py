"""The outcome of one preflight check, and what every check is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from datatier.backup.policy import Policy
from datatier.config import LoadedConfig


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    WARN = "warn"  # works, with less than it could (exit 0: a grant to add, not an outage)
    SKIP = "skip"  # does not apply here (the thing it checks is not configured)


@dataclass(frozen=True)
class CheckResult:
    """One line of ``datatier check``: which check, on what, and what was found."""

    check: str
    target: str
    status: Status
    detail: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "target": self.target,
            "status": self.status.value,
            "ok": self.status is not Status.FAIL,
            "detail": self.detail,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class CheckContext:
    """Everything checks read: the config, the policies chosen, the time, the options."""

    loaded: LoadedConfig
    policies: tuple[Policy, ...]
    now: datetime
    max_lag: float
    staging_dir: Path
    grace_hours: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def passed(check: str, target: str, detail: str) -> CheckResult:
    return CheckResult(check, target, Status.PASS, detail)


def failed(check: str, target: str, detail: str, hint: str | None = None) -> CheckResult:
    return CheckResult(check, target, Status.FAIL, detail, hint)


def warned(check: str, target: str, detail: str, hint: str | None = None) -> CheckResult:
    return CheckResult(check, target, Status.WARN, detail, hint)


def skipped(check: str, target: str, detail: str) -> CheckResult:
    return CheckResult(check, target, Status.SKIP, detail)
