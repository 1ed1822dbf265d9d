"""Strict five-field cron expressions: validation, run times, descriptions, Celery fields.

Grammar
    ``minute hour day-of-month month day-of-week`` separated by whitespace. Each field is a
    comma-separated list of ``*``, ``*/step``, ``n``, ``a-b``, ``a-b/step`` or ``a/step`` (which
    means ``a-max/step``). Months take ``jan``..``dec`` and weekdays ``sun``..``sat``
    (case-insensitive, also inside ranges). Day-of-week 7 is Sunday and is normalised to 0;
    ``a/step`` and ``*`` in day-of-week stop at Saturday so Sunday is counted once, and a range
    ending in the name ``sun`` (``mon-sun``, ``sat-sun``) runs through Sunday. The macros
    ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight`` and ``@hourly``
    stand for their five-field forms. Everything else - six or seven fields, ``L``, ``W``, ``#``,
    ``?``, ``H``, ``@reboot``, reversed ranges, step 0, ``*`` mixed into a list, or a
    day-of-month/month pair that never occurs (``0 0 31 2 *``) - is rejected with a
    :class:`CronError` whose message names the problem.

Day rule
    As in cron, when both day-of-month and day-of-week are restricted a day matches if either
    matches; when one is ``*`` only the other applies. A field counts as unrestricted only when it
    is exactly ``*`` (Vixie cron's "starts with ``*``" test would make ``*/2`` unrestricted,
    which surprises users who wrote an explicit step).

Time zones and DST
    Run times are computed on the schedule's local wall clock (zoneinfo) and returned as aware
    UTC datetimes. The policy is classic cron's (Vixie/cronie ``cron(8)``), which treats two
    kinds of schedule differently:

    * Fixed-time schedules (neither the minute nor the hour field starts with ``*``, e.g.
      ``30 2 * * *`` or ``0 9 * * 1-5``): a slot whose wall time is skipped by a spring-forward
      gap runs once at the instant the gap ends (02:30 on 2026-03-08 in America/New_York runs at
      03:00 EDT); a slot whose wall time occurs twice in a fall-back overlap runs once, at the
      first occurrence (fold=0).
    * Wildcard schedules (the minute or hour field starts with ``*``, e.g. ``*/15 * * * *`` or
      ``0 * * * *``): they run at every real instant whose local wall time matches, so nothing
      runs inside a gap and a repeated hour runs twice. This keeps "every 30 minutes" an even
      real-time cadence across both transitions.

    Slots that land on the same instant (a gap-end run coinciding with a regular slot) are
    returned once, and results are always strictly ascending.

Celery
    Celery's ``crontab`` ANDs day-of-month with day-of-week. :func:`celery_crontab_fields`
    therefore widens both day fields to ``*`` when both are restricted; the dispatcher must then
    filter each firing with :meth:`CronExpression.matches_day`.

Why a parser of our own
    croniter and cronsim (Healthchecks' library) were weighed. cronsim comes closest: zoneinfo,
    and the same Vixie DST rule as above with the same fixed-time test. What neither gives:

    * Errors fit for a 400: one sentence naming the field, the entry and the problem
      (``minute value 99 is out of range 0-59``); cronsim says ``Bad minute``, croniter
      ``[99 * * * *] is not acceptable, out of range``.
    * The grammar beat can run, and no more: both accept a seconds field, ``L`` and ``#``;
      croniter also a reversed range (``5-1``), cronsim ``*`` inside a list. cronsim has no
      macros. Expressions are bounded (:data:`MAX_EXPRESSION_LENGTH`), as beat's columns are.
    * Never-fires found when parsing: croniter accepts ``0 0 31 2 *`` and fails only when asked
      for a run; cronsim also rejects ``0 0 31 2 mon``, which fires every Monday.
    * The day rule documented in the API: cronsim takes ``*/2`` as unrestricted (Debian's
      "starts with ``*``"), so ``0 0 */2 * 5`` means odd days *that are* Fridays there.
    * DST: croniter runs a fixed-time slot twice in a repeated hour (``30 1 * * *`` in New York
      on 2026-11-01 at 05:30 and 06:30 UTC).
    * Normalised fields for beat's ``CrontabSchedule`` (names and 7 to numbers, ``a/step`` to
      ``a-max/step``) and the day-field widening above.

    Parsing and run times need only the standard library; cron-descriptor serves
    :func:`describe` alone, which falls back to the normalised text. The tests check run times
    against croniter in UTC, where the two agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cron_descriptor import DescriptionTypeEnum, ExpressionDescriptor, Options

__all__ = [
    "CronError",
    "CronExpression",
    "TimezoneError",
    "celery_crontab_fields",
    "describe",
    "next_run",
    "next_runs",
    "parse_cron",
    "previous_run",
    "validate_timezone",
]


MAX_EXPRESSION_LENGTH = 200


class CronError(ValueError):
    """A cron expression is invalid; ``str(error)`` is one sentence fit to show to a user."""


class TimezoneError(ValueError):
    """A timezone is not a known IANA name; ``str(error)`` is one sentence fit to show."""


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int  # highest value the text may use
    open_end: int  # where `*` and `a/step` stop
    names: Mapping[str, int]
    name_hint: str
    alias_of_low: int | None = None  # a second spelling of `low` (day-of-week 7 = Sunday)
    range_end_names: Mapping[str, int] | None = None  # name values used when ending a range


_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_DAY_NAMES = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}

_MINUTE = _Field("minute", 0, 59, 59, {}, "")
_HOUR = _Field("hour", 0, 23, 23, {}, "")
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, 31, {}, "")
_MONTH = _Field("month", 1, 12, 12, _MONTH_NAMES, " or a month name (jan-dec)")
_DAY_OF_WEEK = _Field(
    "day-of-week",
    0,
    7,
    6,
    _DAY_NAMES,
    " or a day name (sun-sat)",
    alias_of_low=7,
    range_end_names={"sun": 7},
)
_FIELDS = (_MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)
_FIELD_LAYOUT = "minute hour day-of-month month day-of-week"

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# February counts 29 days: a schedule for the 29th still fires in leap years.
_LONGEST_MONTH = dict(enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1))

_ITEM = re.compile(
    r"(?:(?P<star>\*)|(?P<start>[a-z0-9]+)(?:-(?P<end>[a-z0-9]+))?)(?:/(?P<step>[0-9]+))?"
)
# Quartz/Jenkins extensions: `L`, `5L`, `15W`, `LW`, `H`, `H/5`, `H(0-29)`, `5#2`, `?`.
# No weekday or month name consists only of the letters l, w and h, so this cannot hit one.
_NON_STANDARD = re.compile(r"[#?()]|^[0-9lwh/-]*[lwh][0-9lwh/-]*$")


class _FieldProblem(Exception):
    """A sentence fragment about one field, wrapped into a CronError naming the expression."""


class _Values(NamedTuple):
    minute: frozenset[int]
    hour: frozenset[int]
    day_of_month: frozenset[int]
    month: frozenset[int]
    day_of_week: frozenset[int]


@dataclass(frozen=True)
class CronExpression:
    """A validated cron expression; build it with :func:`parse_cron`.

    Constructing it directly validates the field texts as well, but only :func:`parse_cron`
    normalises them (names to numbers, 7 to 0, ``a/step`` to ``a-max/step``).
    """

    source: str
    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str

    def __post_init__(self) -> None:
        values = _values_or_error(self.source, self._fields())
        if self.day_of_month_restricted and not self.day_of_week_restricted:
            _require_reachable_day(self, values)

    @property
    def normalized(self) -> str:
        return " ".join(self._fields())

    @property
    def day_of_month_restricted(self) -> bool:
        # Exactly "*" is the only unrestricted spelling; see "Day rule" in the module docstring.
        return self.day_of_month != "*"

    @property
    def day_of_week_restricted(self) -> bool:
        return self.day_of_week != "*"

    def matches_day(self, local_date: date) -> bool:
        """Whether the day-of-month/day-of-week rule selects ``local_date`` (month not checked)."""
        values = _field_values(*self._fields())
        in_month_days = local_date.day in values.day_of_month
        in_week_days = _cron_weekday(local_date) in values.day_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return in_month_days or in_week_days
        return in_month_days and in_week_days

    def matches(self, local_dt: datetime) -> bool:
        """Whether the wall-clock fields of ``local_dt`` match; convert to local time first."""
        values = _field_values(*self._fields())
        return (
            local_dt.minute in values.minute
            and local_dt.hour in values.hour
            and local_dt.month in values.month
            and self.matches_day(local_dt.date())
        )

    def _fields(self) -> tuple[str, str, str, str, str]:
        return (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)


def parse_cron(value: object) -> CronExpression:
    """Parse and normalise a cron expression, raising :class:`CronError` if it is invalid."""
    if not isinstance(value, str):
        raise CronError(f"Invalid cron expression: expected a string, got {type(value).__name__}.")
    source = value.strip()
    if not source:
        raise CronError("Invalid cron expression: it is empty.")
    # Beat's crontab fields and the agent's column hold no more than this.
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise CronError(f"Invalid cron expression: longer than {MAX_EXPRESSION_LENGTH} characters.")
    texts = _split_fields(source)
    try:
        fields = [_parse_field(text, field)[0] for text, field in zip(texts, _FIELDS, strict=True)]
    except _FieldProblem as problem:
        raise _invalid(source, str(problem)) from None
    return CronExpression(source, *fields)


_KNOWN_ZONES = frozenset(available_timezones()) - {"Factory", "localtime", "posixrules"}


def validate_timezone(name: object) -> ZoneInfo:
    """Return the zone for an IANA name, raising :class:`TimezoneError` otherwise."""
    if not isinstance(name, str):
        raise TimezoneError(
            f"Timezone must be an IANA name such as 'Europe/Berlin', got {type(name).__name__}."
        )
    # Only the IANA names beat's timezone field accepts too; "localtime",
    # "posixrules" and "Factory" load on many hosts but name no real zone.
    if name not in _KNOWN_ZONES:
        raise TimezoneError(f"Unknown timezone {name!r}.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimezoneError(f"Unknown timezone {name!r}.") from None


def next_runs(
    expr: CronExpression,
    tz: str | ZoneInfo,
    *,
    after: datetime,
    count: int = 5,
) -> list[datetime]:
    """The first ``count`` run times strictly after ``after``, as ascending aware UTC datetimes."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}.")
    zone = _zone(tz)
    start = _as_utc(after, "after")
    first_day = _shifted(start.date(), -1)
    return _scan(expr, zone, first_day, 1, lambda instant: instant > start, count)[:count]


def next_run(expr: CronExpression, tz: str | ZoneInfo, *, after: datetime) -> datetime:
    """The first run time strictly after ``after``, as an aware UTC datetime."""
    runs = next_runs(expr, tz, after=after, count=1)
    if not runs:
        raise CronError(
            f"Cron expression {expr.normalized!r} has no run after {after.isoformat()}."
        )
    return runs[0]


def previous_run(
    expr: CronExpression, tz: str | ZoneInfo, *, at_or_before: datetime
) -> datetime | None:
    """The latest run time at or before ``at_or_before`` (aware UTC), or None if there is none."""
    zone = _zone(tz)
    limit = _as_utc(at_or_before, "at_or_before")
    first_day = _shifted(limit.date(), 1)
    runs = _scan(expr, zone, first_day, -1, lambda instant: instant <= limit, 1)
    return runs[-1] if runs else None


def describe(expr: CronExpression) -> str:
    """Plain-English description of the normalised expression; never raises."""
    both_days = expr.day_of_month_restricted and expr.day_of_week_restricted
    try:
        return _description(expr.normalized, both_days)
    except Exception:  # cron-descriptor has many failure modes; a description is optional.
        return expr.normalized


def celery_crontab_fields(expr: CronExpression) -> dict[str, str]:
    """Fields for a django-celery-beat ``CrontabSchedule`` (see "Celery" in the docstring)."""
    both_days = expr.day_of_month_restricted and expr.day_of_week_restricted
    return {
        "minute": expr.minute,
        "hour": expr.hour,
        "day_of_week": "*" if both_days else expr.day_of_week,
        "day_of_month": "*" if both_days else expr.day_of_month,
        "month_of_year": expr.month_of_year,
    }


# --- parsing ---------------------------------------------------------------------------------


def _invalid(source: str, problem: str) -> CronError:
    return CronError(f"Invalid cron expression {source!r}: {problem}.")


def _split_fields(source: str) -> list[str]:
    tokens = source.split()
    if tokens[0].startswith("@"):
        return _expand_macro(source, tokens)
    if len(tokens) != len(_FIELDS):
        raise _invalid(source, f"expected 5 fields ({_FIELD_LAYOUT}), got {len(tokens)}")
    return tokens


def _expand_macro(source: str, tokens: list[str]) -> list[str]:
    expansion = _MACROS.get(tokens[0].lower())
    if expansion is None:
        supported = ", ".join(_MACROS)
        raise _invalid(source, f"unknown macro {tokens[0]!r} (supported: {supported})")
    if len(tokens) > 1:
        raise _invalid(source, f"the macro {tokens[0]} must be the whole expression")
    return expansion.split()


def _values_or_error(source: str, texts: tuple[object, ...]) -> _Values:
    checked: list[str] = []
    for text, field in zip(texts, _FIELDS, strict=True):
        if not isinstance(text, str):
            raise _invalid(source, f"{field.label} must be text, got {type(text).__name__}")
        checked.append(text)
    try:
        return _field_values(*checked)
    except _FieldProblem as problem:
        raise _invalid(source, str(problem)) from None


@lru_cache(maxsize=1024)
def _field_values(*texts: str) -> _Values:
    return _Values(
        *(_parse_field(text, field)[1] for text, field in zip(texts, _FIELDS, strict=True))
    )


def _parse_field(text: str, field: _Field) -> tuple[str, frozenset[int]]:
    """The normalised text and the value set of one field."""
    items = text.split(",")
    if len(items) > 1 and "*" in items:
        raise _FieldProblem(f"{field.label} cannot combine '*' with other entries")
    parsed = [_parse_item(item, field) for item in items]
    values = frozenset().union(*(item_values for _, item_values in parsed))
    return ",".join(item_text for item_text, _ in parsed), values


def _parse_item(item: str, field: _Field) -> tuple[str, frozenset[int]]:
    lowered = item.lower()
    if not lowered:
        raise _FieldProblem(f"{field.label} has an empty entry in its list")
    if _NON_STANDARD.search(lowered):
        raise _FieldProblem(
            f"{field.label} entry {item!r} uses non-standard syntax "
            "(L, W, #, ? and H are not supported)"
        )
    match = _ITEM.fullmatch(lowered)
    if match is None:
        raise _FieldProblem(f"{field.label} entry {item!r} is not a number, range or step")
    step = _parse_step(match["step"], field)
    if match["star"]:
        text = "*" if step is None else f"*/{step}"
        return text, _span(field.low, field.open_end, step, field)
    start = _parse_value(match["start"], field)
    end = _parse_range_end(match["end"], start, step, field)
    if end < start:
        raise _FieldProblem(f"{field.label} range {item!r} is reversed (start is after end)")
    return _item_text(start, end, step, field), _span(start, end, step, field)


def _parse_step(token: str | None, field: _Field) -> int | None:
    if token is None:
        return None
    step = int(token)
    largest = field.open_end - field.low + 1
    if not 1 <= step <= largest:
        raise _FieldProblem(f"{field.label} step {step} is out of range 1-{largest}")
    return step


def _parse_value(token: str, field: _Field) -> int:
    if token.isdigit():
        value = int(token)
        if not field.low <= value <= field.high:
            raise _FieldProblem(
                f"{field.label} value {value} is out of range {field.low}-{field.high}"
            )
        return value
    if token in field.names:
        return field.names[token]
    raise _FieldProblem(f"{field.label} value {token!r} is not a number{field.name_hint}")


def _parse_range_end(token: str | None, start: int, step: int | None, field: _Field) -> int:
    if token is None:
        # A lone value is just itself; with a step (`5/10`) it runs to the end of the field.
        return start if step is None else max(start, field.open_end)
    end = _parse_value(token, field)
    if end < start and field.range_end_names and token in field.range_end_names:
        return field.range_end_names[token]
    return end


def _item_text(start: int, end: int, step: int | None, field: _Field) -> str:
    values = range(start, end + 1, step or 1)
    if field.alias_of_low is not None and field.alias_of_low in values:
        # Celery rejects 7 in day-of-week, so spell the days out with Sunday as 0.
        return _compact(sorted(_span(start, end, step, field)))
    if step is not None:
        return f"{start}-{end}/{step}"
    return str(start) if start == end else f"{start}-{end}"


def _span(start: int, end: int, step: int | None, field: _Field) -> frozenset[int]:
    values = range(start, end + 1, step or 1)
    if field.alias_of_low is None:
        return frozenset(values)
    return frozenset(field.low if value == field.alias_of_low else value for value in values)


def _compact(values: list[int]) -> str:
    """``[0, 1, 2, 3, 5, 6]`` -> ``"0-3,5,6"``: runs of three or more become ranges."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs
    )


def _require_reachable_day(expr: CronExpression, values: _Values) -> None:
    longest = max(_LONGEST_MONTH[month] for month in values.month)
    if min(values.day_of_month) > longest:
        raise _invalid(
            expr.source,
            f"it can never fire, because day-of-month {expr.day_of_month} "
            f"never occurs in month {expr.month_of_year}",
        )


def _cron_weekday(day: date) -> int:
    # date.weekday() counts from Monday = 0; cron counts from Sunday = 0.
    return (day.weekday() + 1) % 7


# --- run times -------------------------------------------------------------------------------

# UTC offsets are strictly within +-24h, so an instant's local day is at most one day away from
# its UTC day, and slots on local days more than two days apart can never swap order.
_SETTLE_DAYS = 2
# Scanning stays this far inside date.min..date.max so that UTC conversion cannot overflow.
_FIRST_ORDINAL = date.min.toordinal() + _SETTLE_DAYS
_LAST_ORDINAL = date.max.toordinal() - _SETTLE_DAYS
_ONE_SECOND = timedelta(seconds=1)


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else validate_timezone(tz)


def _as_utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}.")
    return moment.astimezone(UTC)


def _shifted(day: date, days: int) -> date:
    ordinal = min(max(day.toordinal() + days, _FIRST_ORDINAL), _LAST_ORDINAL)
    return date.fromordinal(ordinal)


def _days(first: date, step: int) -> Iterator[date]:
    stop = _LAST_ORDINAL + 1 if step > 0 else _FIRST_ORDINAL - 1
    return map(date.fromordinal, range(first.toordinal(), stop, step))


def _scan(
    expr: CronExpression,
    zone: ZoneInfo,
    first_day: date,
    step: int,
    accept: Callable[[datetime], bool],
    wanted: int,
) -> list[datetime]:
    """Accepted run instants, sorted, from local days walked from ``first_day`` by ``step``.

    Walking stops ``_SETTLE_DAYS`` after the day on which ``wanted`` instants were collected,
    because later days cannot contribute instants that sort before those.
    """
    values = _field_values(*expr._fields())
    fixed_time = not expr.minute.startswith("*") and not expr.hour.startswith("*")
    found: set[datetime] = set()
    last_day: date | None = None
    for day in _days(first_day, step):
        if last_day is not None and (day - last_day).days * step > 0:
            break
        if day.month in values.month and expr.matches_day(day):
            found.update(filter(accept, _day_instants(day, values, zone, fixed_time)))
        if last_day is None and len(found) >= wanted:
            last_day = _shifted(day, _SETTLE_DAYS * step)
    return sorted(found)


def _day_instants(
    day: date, values: _Values, zone: ZoneInfo, fixed_time: bool
) -> Iterable[datetime]:
    for hour in values.hour:
        for minute in values.minute:
            wall = datetime(day.year, day.month, day.day, hour, minute)
            yield from _instants_for(wall, zone, fixed_time)


def _utc_offset(zone: ZoneInfo, wall: datetime) -> timedelta:
    offset = zone.utcoffset(wall)
    # tzinfo may answer None in general; a ZoneInfo always knows its offset.
    assert offset is not None
    return offset


def _instants_for(wall: datetime, zone: ZoneInfo, fixed_time: bool) -> tuple[datetime, ...]:
    """The UTC instants at which a slot with local wall time ``wall`` runs (DST policy)."""
    first_offset = _utc_offset(zone, wall)
    second_offset = _utc_offset(zone, wall.replace(fold=1))
    first = (wall - first_offset).replace(tzinfo=UTC)
    if first_offset == second_offset:
        return (first,)
    second = (wall - second_offset).replace(tzinfo=UTC)
    if _wall_time(first, zone) == wall:
        # The wall time repeats (fall back): `first` is the earlier occurrence.
        return (first,) if fixed_time else (first, second)
    # The wall time is skipped (spring forward).
    return (_gap_end(second, first, zone),) if fixed_time else ()


def _wall_time(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _gap_end(before_gap: datetime, after_gap: datetime, zone: ZoneInfo) -> datetime:
    """The transition instant, found by bisection in whole seconds (TZif transitions are)."""
    offset_before = before_gap.astimezone(zone).utcoffset()
    low, high = 0, int((after_gap - before_gap) / _ONE_SECOND)
    while high - low > 1:
        middle = (low + high) // 2
        if (before_gap + middle * _ONE_SECOND).astimezone(zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return before_gap + high * _ONE_SECOND


# --- descriptions ----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _description(normalized: str, both_days: bool) -> str:
    options = Options()
    # Options() follows the process locale; the product speaks English with a 12-hour clock.
    options.locale_code = "en_US"
    options.use_24hour_time_format = False
    # The normalised text counts Sunday as 0.
    options.day_of_week_start_index_zero = True
    descriptor = ExpressionDescriptor(normalized, options)
    text: str = descriptor.get_description()
    if not both_days:
        return text
    # cron-descriptor words the two day fields as if both had to hold; cron needs only one.
    # No option of the library words them as "either" (its Options hold only casing,
    # verbosity, locale, the clock and the weekday base), so its day-of-week segment is
    # reworded: ", only on Friday" becomes ", or on Friday".
    weekdays: str = descriptor.get_description(DescriptionTypeEnum.DAYOFWEEK)
    either = ", or " + weekdays.removeprefix(", ").removeprefix("only ")
    return text.replace(weekdays, either, 1)
