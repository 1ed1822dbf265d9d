"""The grammar: parsing and normalising expressions, zone names, beat's fields.

The rules are in the package docstring (``scheduling.cron``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

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


class FieldValues(NamedTuple):
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
    def fixed_time(self) -> bool:
        """Whether DST moves or merges slots (see "Time zones and DST" in the package docstring)."""
        return not self.minute.startswith("*") and not self.hour.startswith("*")

    @property
    def day_of_month_restricted(self) -> bool:
        # Exactly "*" is the only unrestricted spelling; see "Day rule" in the module docstring.
        return self.day_of_month != "*"

    @property
    def day_of_week_restricted(self) -> bool:
        return self.day_of_week != "*"

    def matches_day(self, local_date: date) -> bool:
        """Whether the day-of-month/day-of-week rule selects ``local_date`` (month not checked)."""
        values = field_values(*self._fields())
        in_month_days = local_date.day in values.day_of_month
        in_week_days = cron_weekday(local_date) in values.day_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return in_month_days or in_week_days
        return in_month_days and in_week_days

    def matches(self, local_dt: datetime) -> bool:
        """Whether the wall-clock fields of ``local_dt`` match; convert to local time first."""
        values = field_values(*self._fields())
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


KNOWN_ZONES = frozenset(available_timezones()) - {"Factory", "localtime", "posixrules"}


def validate_timezone(name: object) -> ZoneInfo:
    """Return the zone for an IANA name, raising :class:`TimezoneError` otherwise."""
    if not isinstance(name, str):
        raise TimezoneError(
            f"Timezone must be an IANA name such as 'Europe/Berlin', got {type(name).__name__}."
        )
    # Only the IANA names beat's timezone field accepts too; "localtime",
    # "posixrules" and "Factory" load on many hosts but name no real zone.
    if name not in KNOWN_ZONES:
        raise TimezoneError(f"Unknown timezone {name!r}.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimezoneError(f"Unknown timezone {name!r}.") from None


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


def _values_or_error(source: str, texts: tuple[object, ...]) -> FieldValues:
    checked: list[str] = []
    for text, field in zip(texts, _FIELDS, strict=True):
        if not isinstance(text, str):
            raise _invalid(source, f"{field.label} must be text, got {type(text).__name__}")
        checked.append(text)
    try:
        return field_values(*checked)
    except _FieldProblem as problem:
        raise _invalid(source, str(problem)) from None


@lru_cache(maxsize=1024)
def field_values(*texts: str) -> FieldValues:
    return FieldValues(
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


def _require_reachable_day(expr: CronExpression, values: FieldValues) -> None:
    longest = max(_LONGEST_MONTH[month] for month in values.month)
    if min(values.day_of_month) > longest:
        raise _invalid(
            expr.source,
            f"it can never fire, because day-of-month {expr.day_of_month} "
            f"never occurs in month {expr.month_of_year}",
        )


def cron_weekday(day: date) -> int:
    # date.weekday() counts from Monday = 0; cron counts from Sunday = 0.
    return (day.weekday() + 1) % 7
