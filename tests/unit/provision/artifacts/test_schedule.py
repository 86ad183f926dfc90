"""Cron schedules: impossible ones are refused; systemd calendars match cron's semantics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datatier.backup.cron import expand_cron, previous_fire
from datatier.errors import ConfigError
from datatier.provision.artifacts.schedule import expand, on_calendar


def test_a_schedule_that_never_fires_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"'0 3 30 2 \*' never runs: day 30 does not exist in Feb"
    ):
        expand("0 3 30 2 *", source="p.toml")
    with pytest.raises(ConfigError, match="never runs"):
        expand("0 0 31 4,6,9,11 *")
    expand("0 0 29 2 *")  # leap years exist
    expand("0 0 31 2 1")  # with a weekday cron fires on Mondays in February


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "needs 5 fields"),
        ("0 0 0 * *", "out of range"),
        ("*/0 * * * *", "step '0'"),
        ("@reboot", "unknown schedule alias"),
        ("0 0 L * *", "not cron syntax"),
        ("0 0 15W * *", "not cron syntax"),
        ("0 0 * * 5#2", "not cron syntax"),
        ("0 0 ? * *", "not cron syntax"),
        ("H 0 * * *", "not cron syntax"),
        ("0 0 1 * * 5", "needs 5 fields"),
        ("0 3-1 * * *", "runs backwards"),
        ("0 0 * * FRI-MON", "runs backwards"),
        ("0 0 * * MOO", "not a valid schedule"),
    ],
)
def test_malformed_schedules_are_refused(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expand(bad)


@pytest.mark.parametrize(
    ("cron", "calendars"),
    [
        ("15 2 * * *", ["*-*-* 02:15:00 UTC"]),
        ("0 */6 * * *", ["*-*-* 00/6:00:00 UTC"]),
        ("*/15 * * * 1-5", ["Mon,Tue,Wed,Thu,Fri *-*-* *:00/15:00 UTC"]),
        ("30 3 1 * 0", ["*-*-01 03:30:00 UTC", "Sun *-*-* 03:30:00 UTC"]),
        ("0 4 * 1,7 7", ["Sun *-01,07-* 04:00:00 UTC"]),
        ("5 1-4 10-20 * *", ["*-*-10..20 01..04:05:00 UTC"]),
        ("30 1 * * MON-FRI", ["Mon,Tue,Wed,Thu,Fri *-*-* 01:30:00 UTC"]),
        ("0 4 * jan,jul sat-sun", ["Sun,Sat *-01,07-* 04:00:00 UTC"]),
        ("@daily", ["*-*-* 00:00:00 UTC"]),
        ("@weekly", ["Sun *-*-* 00:00:00 UTC"]),
        ("@monthly", ["*-*-01 00:00:00 UTC"]),
        ("@hourly", ["*-*-* *:00:00 UTC"]),
    ],
)
def test_on_calendar(cron: str, calendars: list[str]) -> None:
    assert on_calendar(expand(cron), "UTC") == calendars


def test_expand_cron_is_the_one_parser_of_policies_and_schedules() -> None:
    """backup.cron.expand_cron (croniter underneath) expands each field; expand() builds on
    it; 0 and 7 are both Sunday."""
    assert expand_cron("5/20 1-7/3 * 2,12 0,7") == [
        {5, 25, 45},
        {1, 4, 7},
        set(range(1, 32)),
        {2, 12},
        {0},
    ]
    schedule = expand("5/20 1-7/3 * 2,12 0,7")
    assert schedule.minute == (5, 25, 45) and schedule.dow == (0,)
    assert expand_cron("0 2 * * MON-FRI")[4] == {1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match=r"hour field '3-1': range 3-1 runs backwards"):
        expand_cron("0 3-1 * * *")


def test_previous_fire() -> None:
    now = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)  # a Wednesday
    assert previous_fire("15 2 * * *", now) == datetime(2027, 3, 10, 2, 15, tzinfo=UTC)
    assert previous_fire("@weekly", now) == datetime(2027, 3, 7, 0, 0, tzinfo=UTC)
    assert previous_fire("0 3 * * MON-FRI", datetime(2027, 3, 7, 12, tzinfo=UTC)) == datetime(
        2027, 3, 5, 3, 0, tzinfo=UTC
    )
