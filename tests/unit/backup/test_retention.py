"""Retention decisions on synthetic backup IDs and times (no store, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from datatier.backup.policy import RetentionSettings
from datatier.backup.retention import NEWEST, RetentionDecision, decide_retention

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def bid(moment: datetime, suffix: str = "0000") -> str:
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}-{suffix}"


def daily(days: int, hour: int = 2) -> dict[str, datetime]:
    """One backup per day at ``hour``, for the ``days`` days before NOW."""
    out = {}
    for back in range(1, days + 1):
        moment = (NOW - timedelta(days=back)).replace(hour=hour, minute=0)
        out[bid(moment)] = moment
    return out


def settings(
    keep_last: int = 1,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    keep_monthly: int = 0,
    min_age_days: float = 0,
) -> RetentionSettings:
    return RetentionSettings(keep_last, keep_daily, keep_weekly, keep_monthly, min_age_days)


def kept_ids(decision: RetentionDecision) -> list[str]:
    return [k.backup_id for k in decision.keep]


def test_empty_input_keeps_and_deletes_nothing() -> None:
    decision = decide_retention({}, settings(), NOW)
    assert decision.keep == [] and decision.delete == []


def test_single_backup_is_kept_as_newest_even_when_old() -> None:
    old = NOW - timedelta(days=400)
    decision = decide_retention({bid(old): old}, settings(keep_last=1), NOW)
    assert kept_ids(decision) == [bid(old)]
    assert NEWEST in decision.keep[0].reasons
    assert decision.delete == []


def test_keep_last_keeps_the_n_newest_and_lists_the_rest_newest_first() -> None:
    backups = daily(10)
    decision = decide_retention(backups, settings(keep_last=3), NOW)
    ordered = sorted(backups, reverse=True)
    assert kept_ids(decision) == ordered[:3]
    assert decision.delete == ordered[3:]
    assert decision.keep[0].reasons == (NEWEST, "last 1 of 3")
    assert decision.keep[2].reasons == ("last 3 of 3",)


def test_keep_last_larger_than_the_number_of_backups_keeps_all() -> None:
    decision = decide_retention(daily(4), settings(keep_last=50), NOW)
    assert len(decision.keep) == 4 and decision.delete == []


def test_keep_last_zero_still_keeps_the_newest() -> None:
    backups = daily(3)
    decision = decide_retention(backups, settings(keep_last=0), NOW)
    assert kept_ids(decision) == [max(backups)]
    assert decision.keep[0].reasons == (NEWEST,)


def test_daily_keeps_the_newest_of_each_day() -> None:
    backups: dict[str, datetime] = {}
    for back in range(1, 5):
        for hour in (1, 9, 17):
            moment = (NOW - timedelta(days=back)).replace(hour=hour, minute=0)
            backups[bid(moment)] = moment
    decision = decide_retention(backups, settings(keep_last=1, keep_daily=3), NOW)
    expected = [bid((NOW - timedelta(days=back)).replace(hour=17, minute=0)) for back in (1, 2, 3)]
    assert kept_ids(decision) == expected
    assert decision.keep[1].reasons == ("daily 2026-11-24",)
    assert len(decision.delete) == 12 - 3


def test_daily_counts_days_that_have_backups_not_calendar_days() -> None:
    times = [NOW - timedelta(days=d) for d in (1, 10, 20, 30)]
    backups = {bid(t): t for t in times}
    decision = decide_retention(backups, settings(keep_daily=3), NOW)
    assert kept_ids(decision) == [bid(t) for t in times[:3]]
    assert decision.delete == [bid(times[3])]


def test_days_are_utc_days_whatever_the_input_timezone() -> None:
    tz = timezone(timedelta(hours=-5))
    late = datetime(2026, 11, 20, 23, 30, tzinfo=tz)  # 2026-11-21 04:30 UTC
    early = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    backups = {bid(late, "aaaa"): late, bid(early, "bbbb"): early}
    decision = decide_retention(backups, settings(keep_daily=5), NOW)
    assert kept_ids(decision) == [bid(late, "aaaa")]
    assert decision.keep[0].reasons == (NEWEST, "last 1 of 1", "daily 2026-11-21")


def test_weekly_uses_iso_weeks_across_a_year_boundary() -> None:
    # 2026-12-31 (Thu) and 2027-01-03 (Sun) are both ISO week 2026-W53.
    a = datetime(2026, 12, 31, 2, tzinfo=UTC)
    b = datetime(2027, 1, 3, 2, tzinfo=UTC)
    c = datetime(2027, 1, 4, 2, tzinfo=UTC)  # Monday of 2027-W01
    backups = {bid(a): a, bid(b): b, bid(c): c}
    now = datetime(2027, 1, 10, tzinfo=UTC)
    decision = decide_retention(backups, settings(keep_weekly=2), now)
    reasons = {k.backup_id: k.reasons for k in decision.keep}
    assert reasons[bid(c)] == (NEWEST, "last 1 of 1", "weekly 2027-W01")
    assert reasons[bid(b)] == ("weekly 2026-W53",)
    assert decision.delete == [bid(a)]


def test_monthly_keeps_the_newest_of_each_month() -> None:
    backups = daily(100)
    decision = decide_retention(backups, settings(keep_monthly=3), NOW)
    kept = {k.backup_id: k.reasons for k in decision.keep}
    assert kept[bid(datetime(2026, 10, 31, 2, tzinfo=UTC))] == ("monthly 2026-10",)
    assert kept[bid(datetime(2026, 9, 30, 2, tzinfo=UTC))] == ("monthly 2026-09",)
    assert "monthly 2026-11" in kept[max(backups)]
    assert len(decision.keep) == 3
    assert len(decision.delete) == 97


def test_rules_combine_and_a_backup_lists_every_reason() -> None:
    backups = daily(60)
    decision = decide_retention(
        backups, settings(keep_last=2, keep_daily=7, keep_weekly=4, keep_monthly=3), NOW
    )
    newest = decision.keep[0]
    assert newest.reasons == (
        NEWEST,
        "last 1 of 2",
        "daily 2026-11-25",
        "weekly 2026-W48",
        "monthly 2026-11",
    )
    assert set(kept_ids(decision)).isdisjoint(decision.delete)
    assert set(kept_ids(decision)) | set(decision.delete) == set(backups)
    # 7 dailies, plus weekly/monthly representatives outside them.
    assert 7 <= len(decision.keep) <= 7 + 4 + 3


def test_min_age_keeps_everything_younger() -> None:
    backups = daily(10)
    decision = decide_retention(backups, settings(keep_last=1, min_age_days=3.5), NOW)
    assert len(decision.keep) == 3  # 1, 2 and 3 days old
    assert all("younger than 3.5 days" in k.reasons for k in decision.keep)
    assert len(decision.delete) == 7


def test_a_backup_dated_in_the_future_is_kept_but_takes_no_slot() -> None:
    """A clock ahead dated it: it was the newest and ``keep_last = 1`` deleted the backup
    just taken, the only one holding today's data. Now it is kept for what it is and the
    real newest backup keeps its slot."""
    future = NOW + timedelta(hours=3)
    backups = {bid(future): future, **daily(3)}
    decision = decide_retention(backups, settings(keep_last=1, min_age_days=1), NOW)
    assert decision.keep[0].backup_id == bid(future)
    assert decision.keep[0].reasons == ("dated after the time retention is judged at",)
    newest = max(daily(3), key=lambda i: daily(3)[i])
    assert decision.keep[1].backup_id == newest
    assert NEWEST in decision.keep[1].reasons and "last 1 of 1" in decision.keep[1].reasons
    assert len(decision.delete) == 2


def test_backups_dated_in_the_future_are_kept_and_say_so_without_a_minimum_age() -> None:
    """With ``min_age_days = 0`` (or ``--now`` in the past) they were labelled "younger than
    0 days"; kept either way."""
    soon, later = NOW + timedelta(hours=1), NOW + timedelta(days=2)
    backups = {bid(soon): soon, bid(later): later, **daily(2)}
    decision = decide_retention(backups, settings(keep_last=1, min_age_days=0), NOW)
    assert kept_ids(decision)[:2] == [bid(later), bid(soon)]
    future = ("dated after the time retention is judged at",)
    assert decision.keep[0].reasons == future and decision.keep[1].reasons == future
    assert len(decision.keep) == 3 and len(decision.delete) == 1


def test_only_backups_dated_in_the_future_are_all_kept() -> None:
    later = NOW + timedelta(days=1)
    decision = decide_retention({bid(later): later}, settings(keep_last=1), NOW)
    assert kept_ids(decision) == [bid(later)] and decision.delete == []


def test_equal_times_are_ordered_by_id_deterministically() -> None:
    moment = NOW - timedelta(days=2)
    backups = {bid(moment, "0001"): moment, bid(moment, "ffff"): moment}
    for _ in range(3):
        decision = decide_retention(backups, settings(keep_last=1), NOW)
        assert kept_ids(decision) == [bid(moment, "ffff")]
        assert decision.delete == [bid(moment, "0001")]


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 11, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        decide_retention({bid(NOW): naive}, settings(), NOW)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        decide_retention({}, settings(), naive)


def test_input_mapping_is_not_modified() -> None:
    backups = daily(5)
    copy = dict(backups)
    decide_retention(backups, settings(keep_last=2), NOW)
    assert backups == copy


def window(days: float) -> RetentionSettings:
    return RetentionSettings(keep_last=1, min_age_days=0, recovery_window_days=days)


def test_recovery_window_keeps_the_window_and_its_base_and_nothing_else() -> None:
    backups = daily(30)  # one a day at 02:00 for 30 days; NOW is 12:00
    decision = decide_retention(backups, window(7), NOW)
    in_window = [bid((NOW - timedelta(days=d)).replace(hour=2, minute=0)) for d in range(1, 7)]
    base = bid((NOW - timedelta(days=7)).replace(hour=2, minute=0))  # 7 d 10 h old
    assert kept_ids(decision) == [*in_window, base]
    assert len(decision.delete) == 30 - 7
    reasons = {k.backup_id: k.reasons for k in decision.keep}
    assert "7 d recovery window" in reasons[in_window[-1]]
    assert reasons[base] == ("base of the 7 d recovery window",)


def test_recovery_window_with_gaps_keeps_the_older_base() -> None:
    jan10 = datetime(2026, 11, 10, 2, tzinfo=UTC)
    old = {
        bid(datetime(2026, 11, 1, 2, tzinfo=UTC)): datetime(2026, 11, 1, 2, tzinfo=UTC),
        bid(jan10): jan10,
        bid(datetime(2026, 11, 25, 2, tzinfo=UTC)): datetime(2026, 11, 25, 2, tzinfo=UTC),
    }
    decision = decide_retention(old, window(7), NOW)
    assert kept_ids(decision) == [bid(datetime(2026, 11, 25, 2, tzinfo=UTC)), bid(jan10)]
    assert decision.delete == [bid(datetime(2026, 11, 1, 2, tzinfo=UTC))]


def test_a_backup_exactly_at_the_window_start_is_the_base() -> None:
    start = NOW - timedelta(days=2)
    backups = {
        bid(start - timedelta(hours=1)): start - timedelta(hours=1),
        bid(start): start,
        bid(NOW - timedelta(hours=1)): NOW - timedelta(hours=1),
    }
    decision = decide_retention(backups, window(2), NOW)
    assert kept_ids(decision) == [bid(NOW - timedelta(hours=1)), bid(start)]
    assert decision.delete == [bid(start - timedelta(hours=1))]


def test_recovery_window_adds_to_the_other_rules_and_zero_turns_it_off() -> None:
    backups = daily(30)
    both = decide_retention(
        backups,
        RetentionSettings(keep_last=1, keep_weekly=4, min_age_days=0, recovery_window_days=3),
        NOW,
    )
    weekly_only = decide_retention(backups, settings(keep_weekly=4), NOW)
    window_only = decide_retention(backups, window(3), NOW)
    assert set(kept_ids(both)) == set(kept_ids(weekly_only)) | set(kept_ids(window_only))
    assert kept_ids(decide_retention(backups, window(0), NOW)) == kept_ids(
        decide_retention(backups, settings(), NOW)
    )


def test_recovery_window_with_everything_inside_keeps_everything() -> None:
    backups = daily(5)
    decision = decide_retention(backups, window(30), NOW)
    assert decision.delete == [] and len(decision.keep) == 5


def test_a_span_past_year_one_keeps_everything_instead_of_overflowing() -> None:
    """min_age_days / recovery_window_days larger than a date can hold: every backup kept."""
    backups = daily(5)
    for huge in (settings(min_age_days=1_000_000), settings(min_age_days=1e300)):
        assert sorted(kept_ids(decide_retention(backups, huge, NOW))) == sorted(backups)
    early = datetime(1, 1, 1, 3, tzinfo=UTC)
    decision = decide_retention(backups, settings(min_age_days=1), early)
    assert sorted(kept_ids(decision)) == sorted(backups) and decision.delete == []
