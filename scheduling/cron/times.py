"""Run times of an expression in a zone, with the DST policy of the package docstring."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduling.cron.expressions import (
    CronError,
    CronExpression,
    FieldValues,
    field_values,
    validate_timezone,
)


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


def previous_runs(
    expr: CronExpression,
    tz: str | ZoneInfo,
    *,
    at_or_before: datetime,
    count: int = 5,
    since: datetime | None = None,
) -> list[datetime]:
    """The latest ``count`` run times at or before ``at_or_before`` (and at or after
    ``since``, if given), as ascending aware UTC datetimes (fewer if there are fewer).

    ``since`` also bounds the walk: a sparse schedule is not scanned back for
    years to find runs that would be dropped anyway.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}.")
    if count == 0:
        return []
    zone = _zone(tz)
    limit = _as_utc(at_or_before, "at_or_before")
    first_day = _shifted(limit.date(), 1)
    if since is None:
        return _scan(expr, zone, first_day, -1, lambda instant: instant <= limit, count)[-count:]
    start = _as_utc(since, "since")
    return _scan(
        expr,
        zone,
        first_day,
        -1,
        lambda instant: start <= instant <= limit,
        count,
        # An instant's local day is at most one day before its UTC day.
        stop_day=_shifted(start.date(), -1),
    )[-count:]


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
    stop_day: date | None = None,
) -> list[datetime]:
    """Accepted run instants, sorted, from local days walked from ``first_day`` by ``step``.

    Walking stops ``_SETTLE_DAYS`` after the day on which ``wanted`` instants were collected,
    because later days cannot contribute instants that sort before those, and after
    ``stop_day``, past which the caller knows no instant is accepted.
    """
    values = field_values(*expr._fields())
    fixed_time = expr.fixed_time
    found: set[datetime] = set()
    last_day: date | None = None
    for day in _days(first_day, step):
        if last_day is not None and (day - last_day).days * step > 0:
            break
        if stop_day is not None and (day - stop_day).days * step > 0:
            break
        if day.month in values.month and expr.matches_day(day):
            found.update(filter(accept, _day_instants(day, values, zone, fixed_time)))
        if last_day is None and len(found) >= wanted:
            last_day = _shifted(day, _SETTLE_DAYS * step)
    return sorted(found)


def _day_instants(
    day: date, values: FieldValues, zone: ZoneInfo, fixed_time: bool
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
    """The first instant after ``before_gap`` with another UTC offset, up to ``after_gap``.

    Found by bisection in whole seconds (TZif transitions are); also finds a fall-back change.
    """
    offset_before = before_gap.astimezone(zone).utcoffset()
    low, high = 0, int((after_gap - before_gap) / _ONE_SECOND)
    while high - low > 1:
        middle = (low + high) // 2
        if (before_gap + middle * _ONE_SECOND).astimezone(zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return before_gap + high * _ONE_SECOND
