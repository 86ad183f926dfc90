"""Cron schedules of backup policies: expanded, checked for impossibility, and translated into
systemd ``OnCalendar=`` expressions.

The syntax is checked, and each field expanded, by croniter through
:func:`datatier.backup.cron.expand_cron` (``validate_cron`` when a policy loads); here
:func:`expand` refuses a schedule that is valid but never fires (``0 3 30 2 *``: there is
no 30 February) and :func:`on_calendar` gives the equivalent systemd calendar events.
Cron fires when *either* day-of-month or day-of-week matches if both are restricted;
systemd requires both, so such a schedule becomes two ``OnCalendar=`` lines (timers fire
on any).
"""

from __future__ import annotations

from dataclasses import dataclass

from datatier.backup.cron import cron_fields, expand_cron, validate_cron
from datatier.backup.policy import Policy
from datatier.errors import ConfigError

WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


@dataclass(frozen=True)
class Schedule:
    """A cron expression expanded to the values of each field (``dow``: 0 = Sunday)."""

    expr: str
    minute: tuple[int, ...]
    hour: tuple[int, ...]
    day: tuple[int, ...]
    month: tuple[int, ...]
    dow: tuple[int, ...]
    day_restricted: bool
    dow_restricted: bool


def expand(expr: str, *, source: str = "schedule", key: str = "schedule") -> Schedule:
    """The expanded schedule; ConfigError if it is malformed or can never fire."""
    try:
        validate_cron(expr)  # syntax, and a day that exists (policies are loaded this way)
        fields = [tuple(sorted(values)) for values in expand_cron(expr)]
    except ValueError as exc:
        raise ConfigError(source, key, str(exc)) from None
    texts = cron_fields(expr)
    dow = tuple(sorted({d % 7 for d in fields[4]}))
    schedule = Schedule(
        expr=expr,
        minute=fields[0],
        hour=fields[1],
        day=fields[2],
        month=fields[3],
        dow=dow,
        day_restricted=not texts[2].startswith("*"),
        dow_restricted=not texts[4].startswith("*"),
    )
    return schedule


def policy_schedule(policy: Policy) -> Schedule:
    """The policy's schedule, expanded and checked (ConfigError naming the policy file)."""
    return expand(policy.spec.schedule, source=str(policy.path))


def _compact(values: tuple[int, ...], low: int, high: int, width: int = 2) -> str:
    """``*``, ``START/STEP``, ``A..B`` runs or a list, as systemd calendar syntax."""
    if values == tuple(range(low, high + 1)):
        return "*"
    if len(values) > 2:
        step = values[1] - values[0]
        if step > 1 and values == tuple(range(values[0], high + 1, step)):
            return f"{values[0]:0{width}d}/{step}"
    parts: list[str] = []
    run = [values[0]]
    for v in values[1:]:
        if v == run[-1] + 1:
            run.append(v)
            continue
        parts.append(_run(run, width))
        run = [v]
    parts.append(_run(run, width))
    return ",".join(parts)


def _run(run: list[int], width: int) -> str:
    if len(run) >= 3:
        return f"{run[0]:0{width}d}..{run[-1]:0{width}d}"
    return ",".join(f"{v:0{width}d}" for v in run)


def _weekdays(dow: tuple[int, ...]) -> str:
    if dow == tuple(range(7)):
        return ""
    names = [WEEKDAYS[d] for d in dow]
    return ",".join(names) + " "


def on_calendar(schedule: Schedule, timezone: str = "") -> list[str]:
    """systemd ``OnCalendar=`` values with the same firing times (see module docstring)."""
    time = f"{_compact(schedule.hour, 0, 23)}:{_compact(schedule.minute, 0, 59)}:00"
    month = _compact(schedule.month, 1, 12)
    suffix = f" {timezone}" if timezone else ""
    all_days = tuple(range(1, 32))
    all_dow = tuple(range(7))
    variants: list[tuple[tuple[int, ...], tuple[int, ...]]]
    if schedule.day_restricted and schedule.dow_restricted:
        variants = [(schedule.day, all_dow), (all_days, schedule.dow)]
    else:
        variants = [(schedule.day, schedule.dow)]
    return [
        f"{_weekdays(dow)}*-{month}-{_compact(days, 1, 31)} {time}{suffix}"
        for days, dow in variants
    ]
