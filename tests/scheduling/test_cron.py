"""Tests for scheduling.cron; plain pytest, no Django settings needed."""

from __future__ import annotations

import dataclasses
import locale
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from croniter import croniter

from scheduling import cron
from scheduling.cron import (
    CronError,
    CronExpression,
    TimezoneError,
    celery_crontab_fields,
    describe,
    next_run,
    next_runs,
    parse_cron,
    previous_run,
    previous_runs,
    validate_timezone,
)

NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(zone: str, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone), fold=fold)


# --- grammar -----------------------------------------------------------------------------------

VALID = [
    ("* * * * *", "* * * * *"),
    ("*/15 * * * *", "*/15 * * * *"),
    ("0 9 * * *", "0 9 * * *"),
    ("1,5,10-20 * * * *", "1,5,10-20 * * * *"),
    ("1-30/5 * * * *", "1-30/5 * * * *"),
    ("5/10 * * * *", "5-59/10 * * * *"),
    ("0 5/6 * * *", "0 5-23/6 * * *"),
    ("0 0 1/7 * *", "0 0 1-31/7 * *"),
    ("0 0 1 2/3 *", "0 0 1 2-12/3 *"),
    ("*/60 0 * * *", "*/60 0 * * *"),
    ("05 007 * * *", "5 7 * * *"),
    ("  0 9 * * *  ", "0 9 * * *"),
    ("0\t9  *\t* *", "0 9 * * *"),
    ("59 23 31 12 6", "59 23 31 12 6"),
    ("0 0 1 jan *", "0 0 1 1 *"),
    ("0 0 1 JAN-Mar,dec *", "0 0 1 1-3,12 *"),
    ("0 0 1 jan-dec/3 *", "0 0 1 1-12/3 *"),
    ("0 9 * * MON-fri", "0 9 * * 1-5"),
    ("0 9 * * sun,Wed,SAT", "0 9 * * 0,3,6"),
    ("0 0 * * 7", "0 0 * * 0"),
    ("0 0 * * 1,7", "0 0 * * 1,0"),
    ("0 0 * * 5-7", "0 0 * * 0,5,6"),
    ("0 0 * * 0-7", "0 0 * * 0-6"),
    ("0 0 * * 7-7", "0 0 * * 0"),
    ("0 0 * * 1-7/2", "0 0 * * 0,1,3,5"),
    ("0 0 * * 1/2", "0 0 * * 1-6/2"),
    ("0 0 * * 7/2", "0 0 * * 0"),
    ("0 0 * * */2", "0 0 * * */2"),
    ("0 0 * * mon-sun", "0 0 * * 0-6"),
    ("0 0 * * sat-sun", "0 0 * * 0,6"),
    ("0 0 * * sun-sat", "0 0 * * 0-6"),
    ("0 0 * * sun-sun", "0 0 * * 0"),
    ("0 0 13 * 5", "0 0 13 * 5"),
    ("0 0 */2 * fri", "0 0 */2 * 5"),
    ("0 0 29 2 *", "0 0 29 2 *"),
    ("0 0 31 1,2 *", "0 0 31 1,2 *"),
    ("0 0 30,31 2 1", "0 0 30,31 2 1"),
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@Daily", "0 0 * * *"),
]

INVALID = [
    (None, "Invalid cron expression: expected a string, got NoneType."),
    (15, "expected a string, got int"),
    (["0", "9", "*", "*", "*"], "expected a string, got list"),
    ({"minute": "0"}, "expected a string, got dict"),
    (b"0 9 * * *", "expected a string, got bytes"),
    ("", "Invalid cron expression: it is empty."),
    ("   \t ", "it is empty"),
    ("foo", "expected 5 fields (minute hour day-of-month month day-of-week), got 1"),
    ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
    ("0 0 9 * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
    ("0 0 9 * * * 2026", "expected 5 fields (minute hour day-of-month month day-of-week), got 7"),
    ("99 99 * * *", "minute value 99 is out of range 0-59"),
    ("60 * * * *", "minute value 60 is out of range 0-59"),
    ("0 24 * * *", "hour value 24 is out of range 0-23"),
    ("0 0 0 * *", "day-of-month value 0 is out of range 1-31"),
    ("0 0 32 * *", "day-of-month value 32 is out of range 1-31"),
    ("0 0 * 0 *", "month value 0 is out of range 1-12"),
    ("0 0 * 13 *", "month value 13 is out of range 1-12"),
    ("0 0 * * 8", "day-of-week value 8 is out of range 0-7"),
    ("0-60 * * * *", "minute value 60 is out of range 0-59"),
    ("5-1 * * * *", "minute range '5-1' is reversed"),
    ("0 0 * dec-jan *", "month range 'dec-jan' is reversed"),
    ("0 0 * * fri-mon", "day-of-week range 'fri-mon' is reversed"),
    ("0 0 * * 7-1", "day-of-week range '7-1' is reversed"),
    ("*/0 * * * *", "minute step 0 is out of range 1-60"),
    ("0 0 1-10/0 * *", "day-of-month step 0 is out of range 1-31"),
    ("*/61 * * * *", "minute step 61 is out of range 1-60"),
    ("0 */25 * * *", "hour step 25 is out of range 1-24"),
    ("0 0 * * */8", "day-of-week step 8 is out of range 1-7"),
    ("@reboot", "unknown macro '@reboot'"),
    ("@every 5m", "unknown macro '@every'"),
    ("@", "unknown macro '@'"),
    ("@daily 0", "the macro @daily must be the whole expression"),
    ("* * * foo *", "month value 'foo' is not a number or a month name (jan-dec)"),
    ("* * * january *", "month value 'january' is not a number or a month name"),
    ("* * * * foo", "day-of-week value 'foo' is not a number or a day name (sun-sat)"),
    ("* * * * monday", "day-of-week value 'monday' is not a number or a day name"),
    ("0 0 * * jan", "day-of-week value 'jan' is not a number or a day name"),
    ("jan * * * *", "minute value 'jan' is not a number."),
    ("0 mon * * *", "hour value 'mon' is not a number."),
    ("0 0 L * *", "day-of-month entry 'L' uses non-standard syntax"),
    ("0 0 15W * *", "day-of-month entry '15W' uses non-standard syntax"),
    ("0 0 LW * *", "day-of-month entry 'LW' uses non-standard syntax"),
    ("0 0 * * 5L", "day-of-week entry '5L' uses non-standard syntax"),
    ("0 0 * * 5#2", "day-of-week entry '5#2' uses non-standard syntax"),
    ("0 0 ? * *", "day-of-month entry '?' uses non-standard syntax"),
    ("0 0 * * ?", "day-of-week entry '?' uses non-standard syntax"),
    ("H * * * *", "minute entry 'H' uses non-standard syntax"),
    ("H/15 * * * *", "minute entry 'H/15' uses non-standard syntax"),
    ("H(0-29)/10 * * * *", "minute entry 'H(0-29)/10' uses non-standard syntax"),
    ("*,5 * * * *", "minute cannot combine '*' with other entries"),
    ("0 0 1 * 5,*", "day-of-week cannot combine '*' with other entries"),
    ("1,,2 * * * *", "minute has an empty entry in its list"),
    ("1, * * * *", "minute has an empty entry in its list"),
    ("1--2 * * * *", "minute entry '1--2' is not a number, range or step"),
    ("1-2-3 * * * *", "minute entry '1-2-3' is not a number, range or step"),
    ("*/ * * * *", "minute entry '*/' is not a number, range or step"),
    ("/5 * * * *", "minute entry '/5' is not a number, range or step"),
    ("*-5 * * * *", "minute entry '*-5' is not a number, range or step"),
    ("-1 * * * *", "minute entry '-1' is not a number, range or step"),
    ("1.5 * * * *", "minute entry '1.5' is not a number, range or step"),
    ("*/x * * * *", "minute entry '*/x' is not a number, range or step"),
    ("\u0663 * * * *", "is not a number, range or step"),
    ("0 0 31 2 *", "it can never fire, because day-of-month 31 never occurs in month 2"),
    ("0 0 30 2 *", "it can never fire, because day-of-month 30 never occurs in month 2"),
    ("0 0 31 4,6,9,11 *", "day-of-month 31 never occurs in month 4,6,9,11"),
    ("0 0 30-31 feb *", "day-of-month 30-31 never occurs in month 2"),
]


@pytest.mark.parametrize(("expression", "normalized"), VALID)
def test_it_accepts_and_normalises_a_valid_expression(expression: str, normalized: str) -> None:
    parsed = parse_cron(expression)
    assert parsed.normalized == normalized
    assert parsed.source == expression.strip()


@pytest.mark.parametrize(("expression", "normalized"), VALID)
def test_it_parses_its_own_normalised_form_to_the_same_form(
    expression: str, normalized: str
) -> None:
    assert parse_cron(normalized).normalized == normalized


@pytest.mark.parametrize(("value", "fragment"), INVALID)
def test_it_rejects_an_invalid_expression_with_a_message_naming_the_problem(
    value: object, fragment: str
) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(value)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith("Invalid cron expression")
    assert message.endswith(".")
    assert "\n" not in message


def test_it_words_an_out_of_range_error_as_one_sentence() -> None:
    with pytest.raises(CronError) as caught:
        parse_cron("99 99 * * *")
    assert str(caught.value) == (
        "Invalid cron expression '99 99 * * *': minute value 99 is out of range 0-59."
    )


def test_it_raises_errors_that_are_value_errors() -> None:
    assert issubclass(CronError, ValueError)
    assert issubclass(TimezoneError, ValueError)
    assert not issubclass(TimezoneError, CronError)


def test_it_keeps_the_source_of_a_macro_and_expands_the_fields() -> None:
    parsed = parse_cron(" @weekly ")
    assert parsed.source == "@weekly"
    assert (parsed.minute, parsed.hour, parsed.day_of_month) == ("0", "0", "*")
    assert (parsed.month_of_year, parsed.day_of_week) == ("*", "0")


def test_it_exposes_the_normalised_fields_separately() -> None:
    parsed = parse_cron("*/15 9-17 1,15 jan-jun mon-fri")
    assert parsed == CronExpression(
        source="*/15 9-17 1,15 jan-jun mon-fri",
        minute="*/15",
        hour="9-17",
        day_of_month="1,15",
        month_of_year="1-6",
        day_of_week="1-5",
    )


def test_it_validates_an_expression_built_directly() -> None:
    with pytest.raises(CronError, match="hour value 25 is out of range 0-23"):
        CronExpression("x", "0", "25", "*", "*", "*")
    with pytest.raises(CronError, match="never occurs in month 2"):
        CronExpression("x", "0", "0", "31", "2", "*")
    with pytest.raises(CronError, match="day-of-week must be text, got int"):
        CronExpression("x", "0", "0", "*", "*", 5)  # type: ignore[arg-type]


def test_it_makes_expressions_immutable_plain_values() -> None:
    parsed = parse_cron("0 9 * * *")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.minute = "5"  # type: ignore[misc]
    assert dataclasses.asdict(parsed) == {
        "source": "0 9 * * *",
        "minute": "0",
        "hour": "9",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
    }
    assert hash(parsed) == hash(parse_cron("0 9 * * *"))
    assert dataclasses.replace(parsed, hour="10").normalized == "0 10 * * *"


# --- day rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "day_of_month_restricted", "day_of_week_restricted"),
    [
        ("0 0 * * *", False, False),
        ("0 0 13 * *", True, False),
        ("0 0 * * 5", False, True),
        ("0 0 13 * 5", True, True),
        ("0 0 */2 * *", True, False),
        ("0 0 1-31 * 0-6", True, True),
    ],
)
def test_it_treats_a_day_field_as_unrestricted_only_when_it_is_exactly_a_star(
    expression: str, day_of_month_restricted: bool, day_of_week_restricted: bool
) -> None:
    parsed = parse_cron(expression)
    assert parsed.day_of_month_restricted is day_of_month_restricted
    assert parsed.day_of_week_restricted is day_of_week_restricted


@pytest.mark.parametrize(
    ("expression", "matching_days"),
    [
        # January 2026 begins on a Thursday; the 13th is a Tuesday and Fridays are 2, 9, 16...
        ("0 0 13 * 5", {2, 9, 13, 16, 23, 30}),
        ("0 0 13 * *", {13}),
        ("0 0 * * 5", {2, 9, 16, 23, 30}),
        ("0 0 * * fri,7", {2, 4, 9, 11, 16, 18, 23, 25, 30}),
        ("0 0 */10 * 5", {1, 2, 9, 11, 16, 21, 23, 30, 31}),
        ("0 0 * * *", set(range(1, 32))),
    ],
)
def test_it_matches_days_with_either_day_field_when_both_are_restricted(
    expression: str, matching_days: set[int]
) -> None:
    parsed = parse_cron(expression)
    found = {day for day in range(1, 32) if parsed.matches_day(date(2026, 1, day))}
    assert found == matching_days


def test_it_matches_a_wall_clock_time_on_every_field() -> None:
    parsed = parse_cron("30 9 13 mar 5")
    assert parsed.matches(datetime(2026, 3, 13, 9, 30))
    assert parsed.matches(datetime(2026, 3, 6, 9, 30))  # a Friday in March
    assert parsed.matches(local(BERLIN, 2026, 3, 6, 9, 30))
    assert not parsed.matches(datetime(2026, 3, 13, 9, 31))
    assert not parsed.matches(datetime(2026, 3, 13, 10, 30))
    assert not parsed.matches(datetime(2026, 4, 13, 9, 30))
    assert not parsed.matches(datetime(2026, 3, 12, 9, 30))


def test_it_allows_the_twenty_ninth_of_february_because_leap_years_exist() -> None:
    runs = next_runs(parse_cron("0 0 29 2 *"), "UTC", after=utc(2026, 1, 1), count=3)
    assert runs == [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)]


def test_it_skips_the_missing_leap_day_of_2100() -> None:
    runs = next_runs(parse_cron("0 0 29 feb *"), "UTC", after=utc(2096, 3, 1), count=1)
    assert runs == [utc(2104, 2, 29)]


def test_it_allows_an_impossible_date_when_the_weekday_can_still_fire() -> None:
    runs = next_runs(parse_cron("0 0 31 2 mon"), "UTC", after=utc(2026, 2, 1), count=2)
    assert runs == [utc(2026, 2, 2), utc(2026, 2, 9)]


# --- run times in UTC --------------------------------------------------------------------------


def test_it_lists_friday_and_the_thirteenth_once_each() -> None:
    runs = next_runs(parse_cron("0 0 13 * 5"), "UTC", after=utc(2026, 2, 1), count=6)
    # 2026-02-13 is a Friday the 13th: it must appear once.
    assert runs == [
        utc(2026, 2, 6),
        utc(2026, 2, 13),
        utc(2026, 2, 20),
        utc(2026, 2, 27),
        utc(2026, 3, 6),
        utc(2026, 3, 13),
    ]


def test_it_returns_runs_strictly_after_the_given_instant() -> None:
    parsed = parse_cron("0 9 * * *")
    assert next_runs(parsed, "UTC", after=utc(2026, 5, 1, 9), count=2) == [
        utc(2026, 5, 2, 9),
        utc(2026, 5, 3, 9),
    ]
    assert next_run(parsed, "UTC", after=utc(2026, 5, 1, 8, 59, 59)) == utc(2026, 5, 1, 9)


def test_it_accepts_an_after_instant_in_any_timezone() -> None:
    after = local(NEW_YORK, 2026, 5, 1, 4, 30)  # 08:30 UTC
    assert next_run(parse_cron("0 9 * * *"), "UTC", after=after) == utc(2026, 5, 1, 9)


def test_it_returns_five_runs_by_default_in_utc() -> None:
    runs = next_runs(parse_cron("*/15 * * * *"), ZoneInfo("UTC"), after=utc(2026, 1, 1, 23, 50))
    assert runs == [utc(2026, 1, 2, 0, minute) for minute in (0, 15, 30, 45)] + [utc(2026, 1, 2, 1)]
    assert all(run.tzinfo is UTC for run in runs)


def test_it_returns_no_runs_when_none_are_asked_for() -> None:
    assert next_runs(parse_cron("* * * * *"), "UTC", after=utc(2026, 1, 1), count=0) == []


def test_it_rejects_a_negative_count() -> None:
    with pytest.raises(ValueError, match="count must not be negative"):
        next_runs(parse_cron("* * * * *"), "UTC", after=utc(2026, 1, 1), count=-1)


@pytest.mark.parametrize("moment", [datetime(2026, 1, 1), date(2026, 1, 1), "2026-01-01"])
def test_it_rejects_a_moment_without_a_timezone(moment: object) -> None:
    parsed = parse_cron("* * * * *")
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        next_runs(parsed, "UTC", after=moment)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at_or_before must be a timezone-aware datetime"):
        previous_run(parsed, "UTC", at_or_before=moment)  # type: ignore[arg-type]


def test_it_rejects_an_unknown_timezone_when_computing_runs() -> None:
    with pytest.raises(TimezoneError, match="Unknown timezone 'Mars/Base'"):
        next_runs(parse_cron("* * * * *"), "Mars/Base", after=utc(2026, 1, 1))


def test_it_reports_that_there_is_no_run_after_the_end_of_the_calendar() -> None:
    with pytest.raises(CronError, match="has no run after 9999-12-31"):
        next_run(parse_cron("0 0 * * *"), "UTC", after=utc(9999, 12, 31))


@pytest.mark.parametrize("expression", [normalized for _, normalized in VALID])
def test_it_agrees_with_croniter_in_utc(expression: str) -> None:
    # croniter is a reference only where it is right: in UTC and on normalised text.
    start = utc(2026, 1, 30, 22, 7, 30)
    reference = croniter(expression, start)
    expected = [reference.get_next(datetime) for _ in range(12)]
    assert next_runs(parse_cron(expression), "UTC", after=start, count=12) == expected
    reference = croniter(expression, start)
    assert previous_run(parse_cron(expression), "UTC", at_or_before=start) == reference.get_prev(
        datetime
    )


# --- run times across DST ----------------------------------------------------------------------

DST_CASES = [
    # America/New_York springs forward at 02:00 EST on 2026-03-08 (07:00 UTC).
    (
        "30 2 * * *",
        NEW_YORK,
        local(NEW_YORK, 2026, 3, 7, 0, 0),
        [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)],
    ),
    (
        "0 9 * * *",
        NEW_YORK,
        local(NEW_YORK, 2026, 3, 7, 0, 0),
        [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)],
    ),
    (
        "*/30 * * * *",
        NEW_YORK,
        utc(2026, 3, 8, 5, 45),
        [utc(2026, 3, 8, 6), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 30)],
    ),
    # New York falls back at 02:00 EDT on 2026-11-01 (06:00 UTC); 01:00-02:00 happens twice.
    (
        "30 2 * * *",
        NEW_YORK,
        local(NEW_YORK, 2026, 10, 31, 0, 0),
        [utc(2026, 10, 31, 6, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 7, 30)],
    ),
    (
        "30 1 * * *",
        NEW_YORK,
        local(NEW_YORK, 2026, 10, 31, 0, 0),
        [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
    ),
    (
        "0 9 * * *",
        NEW_YORK,
        local(NEW_YORK, 2026, 10, 31, 0, 0),
        [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)],
    ),
    (
        "*/30 * * * *",
        NEW_YORK,
        utc(2026, 11, 1, 4, 45),
        [
            utc(2026, 11, 1, 5),  # 01:00 EDT
            utc(2026, 11, 1, 5, 30),  # 01:30 EDT
            utc(2026, 11, 1, 6),  # 01:00 EST
            utc(2026, 11, 1, 6, 30),  # 01:30 EST
            utc(2026, 11, 1, 7),  # 02:00 EST
        ],
    ),
    # Europe/Berlin springs forward at 02:00 CET on 2026-03-29 (01:00 UTC).
    (
        "30 2 * * *",
        BERLIN,
        local(BERLIN, 2026, 3, 28, 0, 0),
        [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
    ),
    (
        "0 9 * * *",
        BERLIN,
        local(BERLIN, 2026, 3, 28, 0, 0),
        [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)],
    ),
    (
        "*/30 * * * *",
        BERLIN,
        utc(2026, 3, 29, 0, 15),
        [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30)],
    ),
    # Berlin falls back at 03:00 CEST on 2026-10-25 (01:00 UTC); 02:00-03:00 happens twice.
    (
        "30 2 * * *",
        BERLIN,
        local(BERLIN, 2026, 10, 24, 0, 0),
        [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
    ),
    (
        "0 9 * * *",
        BERLIN,
        local(BERLIN, 2026, 10, 24, 0, 0),
        [utc(2026, 10, 24, 7), utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)],
    ),
    (
        "*/30 * * * *",
        BERLIN,
        utc(2026, 10, 24, 23, 45),
        [
            utc(2026, 10, 25, 0),  # 02:00 CEST
            utc(2026, 10, 25, 0, 30),  # 02:30 CEST
            utc(2026, 10, 25, 1),  # 02:00 CET
            utc(2026, 10, 25, 1, 30),  # 02:30 CET
            utc(2026, 10, 25, 2),  # 03:00 CET
        ],
    ),
    # UTC has no transitions at all.
    (
        "30 2 * * *",
        "UTC",
        utc(2026, 3, 7, 12),
        [utc(2026, 3, 8, 2, 30), utc(2026, 3, 9, 2, 30), utc(2026, 3, 10, 2, 30)],
    ),
    (
        "*/30 * * * *",
        "UTC",
        utc(2026, 3, 29, 0, 45),
        [utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2)],
    ),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), DST_CASES)
def test_it_computes_runs_across_dst_transitions(
    expression: str, zone: str, after: datetime, expected: list[datetime]
) -> None:
    runs = next_runs(parse_cron(expression), zone, after=after, count=len(expected))
    assert runs == expected
    assert all(run.tzinfo is UTC for run in runs)


def test_it_runs_a_fixed_time_slot_in_the_spring_gap_when_the_gap_ends() -> None:
    run = next_run(parse_cron("30 2 * * *"), NEW_YORK, after=utc(2026, 3, 8, 5))
    assert run == utc(2026, 3, 8, 7)
    assert run.astimezone(ZoneInfo(NEW_YORK)).isoformat() == "2026-03-08T03:00:00-04:00"


def test_it_runs_several_fixed_time_slots_in_the_gap_only_once() -> None:
    for expression in ("0,30 2 * * *", "0 2,3 * * *", "15,45 2-3 * * *"):
        runs = next_runs(parse_cron(expression), NEW_YORK, after=utc(2026, 3, 8, 5), count=3)
        assert runs[0] == utc(2026, 3, 8, 7), expression
        assert runs == sorted(set(runs)), expression


def test_it_runs_a_wildcard_minute_schedule_not_at_all_in_a_skipped_hour() -> None:
    runs = next_runs(parse_cron("*/15 2 * * *"), NEW_YORK, after=utc(2026, 3, 8, 5), count=1)
    assert runs == [utc(2026, 3, 9, 6)]  # 02:00 EDT the next day


def test_it_runs_a_wildcard_minute_schedule_in_both_copies_of_a_repeated_hour() -> None:
    runs = next_runs(parse_cron("*/15 2 * * *"), BERLIN, after=utc(2026, 10, 24, 12), count=9)
    assert runs == [
        utc(2026, 10, 25, 0, 0),
        utc(2026, 10, 25, 0, 15),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 0, 45),
        utc(2026, 10, 25, 1, 0),
        utc(2026, 10, 25, 1, 15),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 25, 1, 45),
        utc(2026, 10, 26, 1, 0),
    ]


def test_it_runs_an_hourly_schedule_every_real_hour_across_both_transitions() -> None:
    spring = next_runs(parse_cron("0 * * * *"), BERLIN, after=utc(2026, 3, 28, 23, 30), count=4)
    assert spring == [utc(2026, 3, 29, hour) for hour in range(4)]
    autumn = next_runs(parse_cron("@hourly"), BERLIN, after=utc(2026, 10, 24, 23, 30), count=4)
    assert autumn == [utc(2026, 10, 25, hour) for hour in range(4)]


def test_it_treats_a_stepped_hour_field_as_a_wildcard_schedule() -> None:
    runs = next_runs(parse_cron("0 */2 * * *"), BERLIN, after=utc(2026, 3, 28, 22, 30), count=2)
    assert runs == [utc(2026, 3, 28, 23), utc(2026, 3, 29, 2)]  # 00:00 CET, 04:00 CEST


def test_it_handles_half_hour_dst_shifts() -> None:
    # Lord Howe Island moves from +10:30 to +11:00 at 02:00 local on 2026-10-04.
    zone = "Australia/Lord_Howe"
    runs = next_runs(parse_cron("15 2 * * *"), zone, after=utc(2026, 10, 3, 12), count=2)
    assert runs == [utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)]
    runs = next_runs(parse_cron("*/15 * * * *"), zone, after=utc(2026, 10, 3, 15, 10), count=3)
    assert runs == [utc(2026, 10, 3, 15, 15), utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 15, 45)]


def test_it_runs_a_slot_of_a_skipped_day_when_the_next_day_begins() -> None:
    # Samoa skipped 2011-12-30 entirely, jumping from -10:00 to +14:00 at midnight.
    runs = next_runs(parse_cron("15 0 * * *"), "Pacific/Apia", after=utc(2011, 12, 29), count=3)
    assert runs == [utc(2011, 12, 29, 10, 15), utc(2011, 12, 30, 10), utc(2011, 12, 30, 10, 15)]


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN, "Australia/Lord_Howe", "UTC"])
@pytest.mark.parametrize("expression", ["* * * * *", "*/7 1-3 * * *", "0,30 1-3 * * *"])
def test_it_never_returns_duplicate_or_unordered_runs(zone: str, expression: str) -> None:
    parsed = parse_cron(expression)
    for after in (utc(2026, 3, 7, 22), utc(2026, 3, 28, 12), utc(2026, 10, 3, 12)):
        runs = next_runs(parsed, zone, after=after, count=300)
        assert len(runs) == 300
        assert runs == sorted(set(runs))
        assert runs[0] > after


# --- previous run ------------------------------------------------------------------------------


def test_it_finds_the_latest_run_at_or_before_an_instant() -> None:
    parsed = parse_cron("0 9 * * *")
    assert previous_run(parsed, "UTC", at_or_before=utc(2026, 5, 1, 9)) == utc(2026, 5, 1, 9)
    assert previous_run(parsed, "UTC", at_or_before=utc(2026, 5, 1, 8, 59)) == utc(2026, 4, 30, 9)
    assert previous_run(parsed, BERLIN, at_or_before=utc(2026, 5, 1, 12)) == utc(2026, 5, 1, 7)


def test_it_finds_the_previous_run_of_a_sparse_schedule() -> None:
    parsed = parse_cron("0 0 29 2 *")
    assert previous_run(parsed, "UTC", at_or_before=utc(2031, 1, 1)) == utc(2028, 2, 29)


def test_it_finds_previous_runs_by_the_same_dst_policy() -> None:
    fixed = parse_cron("30 2 * * *")
    assert previous_run(fixed, NEW_YORK, at_or_before=utc(2026, 3, 8, 7)) == utc(2026, 3, 8, 7)
    assert previous_run(fixed, NEW_YORK, at_or_before=utc(2026, 3, 8, 6, 59)) == utc(
        2026, 3, 7, 7, 30
    )
    repeated = parse_cron("30 1 * * *")
    assert previous_run(repeated, NEW_YORK, at_or_before=utc(2026, 11, 1, 7)) == utc(
        2026, 11, 1, 5, 30
    )
    wildcard = parse_cron("*/30 * * * *")
    assert previous_run(wildcard, NEW_YORK, at_or_before=utc(2026, 11, 1, 6, 45)) == utc(
        2026, 11, 1, 6, 30
    )


def test_it_finds_no_previous_run_before_the_start_of_the_calendar() -> None:
    assert previous_run(parse_cron("0 0 * * *"), "UTC", at_or_before=utc(1, 1, 1)) is None


@pytest.mark.parametrize("expression", [normalized for _, normalized in VALID])
def test_previous_runs_are_the_runs_walked_back_one_by_one(expression: str) -> None:
    parsed = parse_cron(expression)
    at = start = utc(2026, 1, 30, 22, 7, 30)
    walked = []
    for _ in range(12):
        found = previous_run(parsed, NEW_YORK, at_or_before=at)
        assert found is not None
        walked.append(found)
        at = found - timedelta(microseconds=1)
    assert previous_runs(parsed, NEW_YORK, at_or_before=start, count=12) == walked[::-1]


@pytest.mark.parametrize("zone", ["UTC", NEW_YORK, "Pacific/Kiritimati", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("expression", [normalized for _, normalized in VALID])
def test_previous_runs_since_are_the_walked_runs_from_that_moment_on(
    expression: str, zone: str
) -> None:
    parsed = parse_cron(expression)
    start = utc(2026, 3, 9, 3, 7, 30)
    walked = previous_runs(parsed, zone, at_or_before=start, count=40)
    since = walked[len(walked) // 2] if walked else start
    assert previous_runs(parsed, zone, at_or_before=start, count=40, since=since) == [
        run for run in walked if run >= since
    ]


def test_previous_runs_since_does_not_walk_a_sparse_schedule_back_for_years() -> None:
    leap_day = parse_cron("0 0 29 2 *")
    since = utc(2026, 1, 1)
    assert previous_runs(leap_day, "UTC", at_or_before=utc(2026, 12, 1), since=since) == []
    assert previous_runs(leap_day, "UTC", at_or_before=utc(2029, 1, 1), since=since) == [
        utc(2028, 2, 29)
    ]


def test_previous_runs_stop_at_the_start_of_the_calendar() -> None:
    parsed = parse_cron("0 0 * * *")
    assert previous_runs(parsed, "UTC", at_or_before=utc(1, 1, 5), count=100) == [
        utc(1, 1, day) for day in (3, 4, 5)
    ]
    assert previous_runs(parsed, "UTC", at_or_before=utc(2026, 1, 1), count=0) == []
    with pytest.raises(ValueError, match="must not be negative"):
        previous_runs(parsed, "UTC", at_or_before=utc(2026, 1, 1), count=-1)


# --- descriptions ------------------------------------------------------------------------------


@pytest.fixture
def fresh_descriptions() -> None:
    cron.descriptions._description.cache_clear()


@pytest.mark.parametrize(
    ("expression", "description"),
    [
        ("0 9 * * *", "At 09:00 AM"),
        ("30 14 * * *", "At 02:30 PM"),
        ("@daily", "At 12:00 AM"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("0 9 * * mon-fri", "At 09:00 AM, Monday through Friday"),
        ("0 0 13 * *", "At 12:00 AM, on day 13 of the month"),
        ("0 0 13 * 5", "At 12:00 AM, on day 13 of the month, or on Friday"),
        ("0 0 1,15 * 1-5", "At 12:00 AM, on day 1 and 15 of the month, or Monday through Friday"),
    ],
)
def test_it_describes_an_expression_in_plain_english(expression: str, description: str) -> None:
    assert describe(parse_cron(expression)) == description


def test_it_describes_in_english_whatever_the_process_locale(
    monkeypatch: pytest.MonkeyPatch, fresh_descriptions: None
) -> None:
    monkeypatch.setattr(locale, "getlocale", lambda *args: ("de_DE", "UTF-8"))
    assert describe(parse_cron("30 14 * * 1")) == "At 02:30 PM, only on Monday"


def test_it_falls_back_to_the_normalised_text_when_it_cannot_describe(
    monkeypatch: pytest.MonkeyPatch, fresh_descriptions: None
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cron-descriptor failed")

    monkeypatch.setattr(cron.descriptions, "ExpressionDescriptor", broken)
    assert describe(parse_cron("0 9 * * MON")) == "0 9 * * 1"


# --- Celery fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "fields"),
    [
        ("*/15 * * * *", ("*/15", "*", "*", "*", "*")),
        ("0 9 13 * *", ("0", "9", "*", "13", "*")),
        ("0 9 * jan-mar mon-fri", ("0", "9", "1-5", "*", "1-3")),
        ("0 9 13 * 5", ("0", "9", "*", "*", "*")),
        ("0 9 */2 6 sun", ("0", "9", "*", "*", "6")),
        ("5/10 0 * * 5-7", ("5-59/10", "0", "0,5,6", "*", "*")),
    ],
)
def test_it_gives_celery_crontab_fields(expression: str, fields: tuple[str, ...]) -> None:
    keys = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
    assert celery_crontab_fields(parse_cron(expression)) == dict(zip(keys, fields, strict=True))


@pytest.mark.parametrize("expression", [normalized for _, normalized in VALID])
def test_it_gives_fields_that_celery_fires_on_when_filtered_by_the_day_rule(
    expression: str,
) -> None:
    parsed = parse_cron(expression)
    schedule = crontab(**celery_crontab_fields(parsed))
    times = {(min(schedule.hour), min(schedule.minute)), (9, 30), (23, 59), (2, 5)}
    both_days = parsed.day_of_month_restricted and parsed.day_of_week_restricted
    day = date(2028, 1, 1)  # a leap year, so 29 February is covered
    while day.year == 2028:
        beat_fires_on_day = (
            day.month in schedule.month_of_year
            and day.day in schedule.day_of_month
            and (day.weekday() + 1) % 7 in schedule.day_of_week
        )
        # The dispatcher only needs matches_day() when the day fields were widened.
        runs_on_day = beat_fires_on_day and parsed.matches_day(day)
        assert both_days or runs_on_day == beat_fires_on_day
        for hour, minute in times:
            moment = datetime(day.year, day.month, day.day, hour, minute)
            beat_fires = hour in schedule.hour and minute in schedule.minute
            assert (runs_on_day and beat_fires) == parsed.matches(moment)
        day += timedelta(days=1)


# --- time zones --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata"])
def test_it_accepts_an_iana_timezone(name: str) -> None:
    assert validate_timezone(name) == ZoneInfo(name)
    assert validate_timezone(name).key == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Mars/Base", "Unknown timezone 'Mars/Base'."),
        ("", "Unknown timezone ''."),
        (" UTC", "Unknown timezone ' UTC'."),
        ("America", "Unknown timezone 'America'."),
        ("../etc/passwd", "Unknown timezone '../etc/passwd'."),
        ("/etc/localtime", "Unknown timezone '/etc/localtime'."),
        ("Europe/Berlin\x00", "Unknown timezone 'Europe/Berlin\\x00'."),
        ("localtime", "Unknown timezone 'localtime'."),
        (None, "Timezone must be an IANA name such as 'Europe/Berlin', got NoneType."),
        (1, "Timezone must be an IANA name such as 'Europe/Berlin', got int."),
        (UTC, "Timezone must be an IANA name such as 'Europe/Berlin', got timezone."),
    ],
)
def test_it_rejects_an_unknown_timezone(name: object, message: str) -> None:
    with pytest.raises(TimezoneError) as caught:
        validate_timezone(name)
    assert str(caught.value) == message
