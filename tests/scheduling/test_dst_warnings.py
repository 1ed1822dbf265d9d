"""Tests for scheduling.cron.dst_warnings; plain pytest, no Django settings needed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.cron import dst_warnings, next_runs, parse_cron

NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def warnings(expression: str, zone: str, after: datetime, **kwargs: int) -> list[str]:
    return dst_warnings(parse_cron(expression), zone, after=after, **kwargs)


def last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def test_a_fixed_time_in_new_yorks_spring_gap_runs_when_the_gap_ends() -> None:
    assert warnings("30 2 * * *", NEW_YORK, utc(2026, 12, 1)) == [
        "2027-03-14 02:30 does not exist in America/New_York; that day's run is at 03:00"
    ]


def test_a_fixed_time_in_new_yorks_repeated_hour_runs_once_at_the_first() -> None:
    assert warnings("30 1 * * *", NEW_YORK, utc(2026, 6, 1)) == [
        "2026-11-01 01:30 occurs twice in America/New_York; it runs once, at the first (01:30 EDT)"
    ]


def test_berlin_warns_of_its_gap_on_the_last_sunday_of_march_and_its_repeat_in_october() -> None:
    march, october = last_sunday(2027, 3), last_sunday(2027, 10)
    assert (march, october) == (date(2027, 3, 28), date(2027, 10, 31))
    assert warnings("30 2 * * *", BERLIN, utc(2026, 12, 1)) == [
        f"{march} 02:30 does not exist in Europe/Berlin; that day's run is at 03:00",
        f"{october} 02:30 occurs twice in Europe/Berlin; it runs once, at the first (02:30 CEST)",
    ]


def test_the_warnings_say_what_the_scheduler_then_does() -> None:
    zone = ZoneInfo(NEW_YORK)
    (gap_run,) = next_runs(parse_cron("30 2 * * *"), NEW_YORK, after=utc(2027, 3, 14), count=1)
    assert gap_run.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") == "2027-03-14 03:00 EDT"
    repeat_runs = next_runs(parse_cron("30 1 * * *"), NEW_YORK, after=utc(2026, 11, 1), count=2)
    assert [run.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") for run in repeat_runs] == [
        "2026-11-01 01:30 EDT",
        "2026-11-02 01:30 EST",
    ]


def test_several_fixed_times_in_a_gap_are_one_warning_and_one_run() -> None:
    assert warnings("0,30 2 * * *", NEW_YORK, utc(2026, 12, 1)) == [
        "2027-03-14 02:00 and 02:30 do not exist in America/New_York; "
        "those runs happen once, at 03:00"
    ]
    assert warnings("0-59/5 1 * * *", NEW_YORK, utc(2027, 6, 1)) == [
        "2027-11-07 01:00 to 01:55 (12 times) occur twice in America/New_York; "
        "each runs once, at its first occurrence (EDT)"
    ]


def test_a_wildcard_schedule_skips_the_gap_and_runs_the_repeated_hour_twice() -> None:
    assert warnings("*/15 * * * *", NEW_YORK, utc(2026, 12, 1)) == [
        "2027-03-14 02:00 to 02:45 (4 times) do not exist in America/New_York; "
        "those runs are skipped, as the schedule follows real time",
        "2027-11-07 01:00 to 01:45 (4 times) occur twice in America/New_York; "
        "those runs happen twice (EDT, then EST), as the schedule follows real time",
    ]


def test_an_hourly_schedule_loses_one_run_in_a_half_hour_gap() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00-02:30 is skipped, 01:30-02:00
    # repeats, and "0 * * * *" fires only in the first of the two.
    assert warnings("0 * * * *", "Australia/Lord_Howe", utc(2027, 1, 1)) == [
        "2027-10-03 02:00 does not exist in Australia/Lord_Howe; "
        "that run is skipped, as the schedule follows real time"
    ]


def test_a_every_minute_schedule_gets_one_warning_per_clock_change() -> None:
    assert warnings("* * * * *", BERLIN, utc(2026, 12, 1)) == [
        "2027-03-28 02:00 to 02:59 (60 times) do not exist in Europe/Berlin; "
        "those runs are skipped, as the schedule follows real time",
        "2027-10-31 02:00 to 02:59 (60 times) occur twice in Europe/Berlin; "
        "those runs happen twice (CEST, then CET), as the schedule follows real time",
    ]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "Etc/GMT+5"])
def test_zones_without_clock_changes_give_no_warnings(zone: str) -> None:
    assert warnings("* * * * *", zone, utc(2026, 12, 1)) == []


@pytest.mark.parametrize(
    "expression",
    [
        "30 2 * * 1",  # the clocks change on Sundays
        "30 2 * 6 *",  # only in June
        "0 3 * * *",  # just after the gap, just after the repeat
        "59 0 * * *",  # just before both
        "30 12 * * *",
    ],
)
def test_a_schedule_that_does_not_fire_in_a_gap_or_repeat_gets_none(expression: str) -> None:
    assert warnings(expression, NEW_YORK, utc(2026, 12, 1)) == []


def test_only_clock_changes_within_the_year_after_the_moment_count() -> None:
    gap = utc(2027, 3, 14, 7)  # 02:00 EST, when the clocks go forward
    assert len(warnings("30 2 * * *", NEW_YORK, gap - timedelta(days=365))) == 1
    assert warnings("30 2 * * *", NEW_YORK, gap - timedelta(days=366)) == []
    assert warnings("30 2 * * *", NEW_YORK, gap, days=300) == []  # not the change at `after`
    assert len(warnings("30 2 * * *", NEW_YORK, gap - timedelta(days=10), days=10)) == 1
    assert warnings("30 2 * * *", NEW_YORK, gap - timedelta(days=10), days=9) == []


def test_a_moment_with_microseconds_finds_the_clock_changes_to_the_second() -> None:
    after = utc(2026, 12, 1, 0, 0, 0, 500000)
    assert warnings("0 2 * * *", NEW_YORK, after) == [
        "2027-03-14 02:00 does not exist in America/New_York; that day's run is at 03:00"
    ]
    assert warnings("0 1 * * *", NEW_YORK, after) == [
        "2027-11-07 01:00 occurs twice in America/New_York; it runs once, at the first (01:00 EDT)"
    ]


def test_a_zone_that_changes_at_midnight_dates_the_warning_by_the_local_day() -> None:
    # Chile moves from 24:00 to 01:00 on the first Sunday of September.
    assert warnings("30 0 * * *", "America/Santiago", utc(2027, 6, 1)) == [
        "2027-09-05 00:30 does not exist in America/Santiago; that day's run is at 01:00"
    ]


def test_the_moment_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        warnings("30 2 * * *", NEW_YORK, datetime(2026, 12, 1))
