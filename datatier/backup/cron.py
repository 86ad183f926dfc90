"""Cron schedules of backup policies, parsed by croniter (a maintained cron library).

Contract. A schedule is what cron users write and every consumer datatier renders for can
run (Debian cron, systemd timers, Kubernetes CronJobs): five fields (minute hour day month
weekday) with numbers, ``*``, ranges, steps, lists and English names (``MON-FRI``,
``JAN,JUL``; any case), or one of the aliases in :data:`ALIASES` (``@daily``,
``@weekly``, ...). Extensions some of them lack are refused with a ValueError naming the
problem: ``L``, ``W``, ``#`` (nth weekday), ``?``, ``H``, a seconds or years field,
``@reboot``, and reversed ranges (``3-1``), which cron refuses too. Day-of-month and
day-of-week follow cron's rule: when both are restricted a day matching either fires.
"""

from __future__ import annotations

import re
from datetime import datetime

from croniter import CroniterError, croniter

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("dow", 0, 6))
NAMES = {
    **{n: i for i, n in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))},
    **{
        n: i + 1
        for i, n in enumerate(
            ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        )
    },
}
RANGE = re.compile(r"([0-9A-Za-z]+)-([0-9A-Za-z]+)")


def cron_fields(expr: str) -> list[str]:
    """The five field texts of ``expr`` (an alias replaced by its fields); ValueError if it
    is neither five fields nor a known alias."""
    text = " ".join(expr.split())
    if text.startswith("@"):
        fields = ALIASES.get(text.lower())
        if fields is None:
            known = ", ".join(ALIASES)
            raise ValueError(f"{expr!r}: unknown schedule alias (known: {known})")
        return fields.split()
    fields_list = text.split()
    if len(fields_list) != 5:
        raise ValueError(
            f"{expr!r} needs 5 fields (minute hour day month weekday) or an alias like @daily"
        )
    return fields_list


def _check_ranges(name: str, text: str) -> None:
    for low, high in RANGE.findall(text):
        a = NAMES.get(low.upper(), int(low) if low.isdigit() else None)
        b = NAMES.get(high.upper(), int(high) if high.isdigit() else None)
        if a is not None and b is not None and a > b and not (name == "dow" and b == 0):
            raise ValueError(f"{name} field {text!r}: range {low}-{high} runs backwards")


def expand_cron(expr: str) -> list[set[int]]:
    """The values each field allows: minute, hour, day, month, weekday (0 = Sunday; 7 is
    read as 0). ValueError naming the problem for anything outside the contract."""
    fields = cron_fields(expr)
    for (name, _, _), text in zip(FIELDS, fields, strict=True):
        if re.search(r"[?#]", text) or re.fullmatch(r"[0-9*,/-]*[LlWwHh][0-9,/-]*", text):
            raise ValueError(f"{name} field {text!r}: L, W, #, ? and H are not cron syntax")
        _check_ranges(name, text)
    try:
        values, nth = croniter.expand(" ".join(fields))
    except (CroniterError, ValueError) as exc:
        raise ValueError(f"{expr!r} is not a valid schedule: {exc}") from None
    if nth:
        raise ValueError(f"{expr!r}: nth weekday (#) is not cron syntax")
    expanded = []
    for (name, low, high), found in zip(FIELDS, values, strict=True):
        if found == ["*"]:
            expanded.append(set(range(low, high + 1)))
            continue
        if not all(isinstance(v, int) for v in found):
            raise ValueError(f"{expr!r}: {name} field uses syntax cron does not have")
        expanded.append({int(v) % 7 if name == "dow" else int(v) for v in found})
    return expanded


DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def validate_cron(expr: str) -> None:
    """Raise ValueError unless ``expr`` is a schedule (see module docstring) that fires at
    least once a year (``0 3 30 2 *`` never does)."""
    fields = expand_cron(expr)
    texts = cron_fields(expr)
    only_days = not texts[2].startswith("*") and texts[4].startswith("*")  # cron ORs the two
    if only_days and not any(d <= DAYS_IN_MONTH[m - 1] for m in fields[3] for d in fields[2]):
        months = ", ".join(MONTHS[m - 1] for m in sorted(fields[3]))
        raise ValueError(f"{expr!r} never runs: day {texts[2]} does not exist in {months}")


def previous_fire(expr: str, now: datetime) -> datetime:
    """The last time at or before ``now`` (tz-aware, UTC) that ``expr`` fires, in UTC."""
    fields = " ".join(cron_fields(expr))
    moment = croniter(fields, now).get_prev(datetime)
    assert isinstance(moment, datetime)
    return moment
