"""Cron schedules: impossible ones are refused; systemd calendars match cron's semantics."""

from __future__ import annotations

import pytest

from datatier.backup.policy import expand_cron
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


def test_malformed_schedules_are_refused() -> None:
    for bad in ("61 * * * *", "* * *", "0 0 0 * *", "*/0 * * * *"):
        with pytest.raises(ConfigError):
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
    ],
)
def test_on_calendar(cron: str, calendars: list[str]) -> None:
    assert on_calendar(expand(cron), "UTC") == calendars


def test_expand_cron_is_the_one_parser_of_policies_and_schedules() -> None:
    """backup.policy.expand_cron expands each field; expand() builds on it."""
    assert expand_cron("5/20 1-7/3 * 2,12 0,7") == [
        {5, 25, 45},
        {1, 4, 7},
        set(range(1, 32)),
        {2, 12},
        {0, 7},
    ]
    schedule = expand("5/20 1-7/3 * 2,12 0,7")
    assert schedule.minute == (5, 25, 45) and schedule.dow == (0,)
    with pytest.raises(ValueError, match=r"hour field '3-1' is outside 0-23"):
        expand_cron("0 3-1 * * *")
