"""Retention: which complete backups of a policy to keep, as a pure function.

Rules (:class:`~datatier.backup.policy.RetentionSettings`), each adding a reason to a backup:

* ``keep_last`` N: the N newest backups.
* ``keep_daily`` / ``keep_weekly`` / ``keep_monthly`` N: the newest backup of each of the N
  most recent UTC days / ISO weeks / months *that have backups* (gaps do not use up slots).
* ``min_age_days``: a backup younger than this is always kept.
* A backup dated after ``now`` (a clock ahead wrote it) is always kept and takes no slot of
  the rules above: it is never the newest, so it never makes the real newest backup go.
* ``recovery_window_days`` N (Barman's recovery window): every backup created in the last
  N days, plus the newest one created at or before the window's start (the base a restore
  to the window's first moment starts from). Binlog ranges and incremental chains those
  backups need are the catalog's business, kept with them.
* The newest backup (dated at or before ``now``) is always kept, whatever the settings.

Everything else is to be deleted. Only complete backups belong here: incomplete or
unreadable ones are the catalog's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from datatier.backup.policy import RetentionSettings

NEWEST = "newest"
FUTURE = "dated after the time retention is judged at"
EARLIEST = datetime.min.replace(tzinfo=UTC)


def days_before(now: datetime, days: float) -> datetime:
    """``now`` minus ``days``; the earliest representable moment when that lies before
    year 1 or the span is too large for a timedelta (such a span keeps everything, so a
    huge ``min_age_days`` or ``--now 0001-01-01`` never fails a prune)."""
    try:
        return now - timedelta(days=days)
    except OverflowError:
        return EARLIEST


@dataclass(frozen=True)
class Kept:
    """A backup that stays, with every rule that keeps it (e.g. ``daily 2026-11-26``)."""

    backup_id: str
    created_at: datetime
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RetentionDecision:
    """The outcome: ``keep`` and ``delete``, both newest first; together they hold every input."""

    keep: list[Kept]
    delete: list[str]


def _day(moment: datetime) -> str:
    return f"daily {moment:%Y-%m-%d}"


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"weekly {year}-W{week:02d}"


def _month(moment: datetime) -> str:
    return f"monthly {moment:%Y-%m}"


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment!r}")


def decide_retention(
    backups: Mapping[str, datetime], settings: RetentionSettings, now: datetime
) -> RetentionDecision:
    """Split ``backups`` (backup ID -> creation time, tz-aware) into keep and delete.

    Periods (days, ISO weeks, months) are taken in UTC. Ties in time are broken by ID, so
    the result is deterministic. Raises ValueError for naive datetimes.
    """
    _require_aware(now, "now")
    for backup_id, created in backups.items():
        _require_aware(created, f"creation time of {backup_id}")
    everything = sorted(backups.items(), key=lambda item: (item[1], item[0]), reverse=True)
    reasons: dict[str, list[str]] = {backup_id: [] for backup_id, _ in everything}
    for backup_id, created in everything:
        if created > now:  # a clock ahead wrote it: kept, and it takes no one's slot
            reasons[backup_id].append(FUTURE)
    ordered = [(i, created) for i, created in everything if created <= now]

    if ordered:
        reasons[ordered[0][0]].append(NEWEST)
    for rank, (backup_id, _) in enumerate(ordered[: settings.keep_last], start=1):
        reasons[backup_id].append(f"last {rank} of {settings.keep_last}")

    periods: tuple[tuple[int, Callable[[datetime], str]], ...] = (
        (settings.keep_daily, _day),
        (settings.keep_weekly, _week),
        (settings.keep_monthly, _month),
    )
    for count, label in periods:
        seen: set[str] = set()
        for backup_id, created in ordered:  # newest first: the first of a period is its newest
            if len(seen) >= count:
                break
            period = label(created.astimezone(UTC))
            if period not in seen:
                seen.add(period)
                reasons[backup_id].append(period)

    young_after = days_before(now, settings.min_age_days)
    for backup_id, created in ordered:
        if created > young_after:
            reasons[backup_id].append(f"younger than {settings.min_age_days:g} days")

    if settings.recovery_window_days > 0:
        window_start = days_before(now, settings.recovery_window_days)
        window = f"{settings.recovery_window_days:g} d recovery window"
        base_found = False
        for backup_id, created in ordered:  # newest first
            if created > window_start:
                reasons[backup_id].append(window)
            elif not base_found:
                base_found = True
                reasons[backup_id].append(f"base of the {window}")

    keep = [
        Kept(backup_id, created, tuple(reasons[backup_id]))
        for backup_id, created in everything
        if reasons[backup_id]
    ]
    delete = [backup_id for backup_id, _ in everything if not reasons[backup_id]]
    return RetentionDecision(keep=keep, delete=delete)
