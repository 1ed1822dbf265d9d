"""Warnings for fire times that a zone's clock changes skip or repeat, in plain sentences.

The sentences say what the DST policy of the package docstring does with each such time. The
work is per clock change, not per fire time: a year of ``* * * * *`` has 525,600 fire times but
a zone changes its clock a couple of times a year, and only the wall times inside each change's
gap or repeat are checked against the expression.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduling.cron.expressions import CronExpression, FieldValues, field_values
from scheduling.cron.times import _as_utc, _gap_end, _zone

WARNING_DAYS = 365

_ONE_DAY = timedelta(days=1)
_ONE_MINUTE = timedelta(minutes=1)
# More affected times than this are shown as a span ("02:00 to 02:59 (60 times)").
_LISTED_TIMES = 3


@dataclass(frozen=True)
class _ClockChange:
    instant: datetime  # aware UTC: the first instant with the new offset
    offset_before: timedelta
    offset_after: timedelta

    @property
    def wall_before(self) -> datetime:
        """The local wall time the clock shows when it is changed (naive)."""
        return (self.instant + self.offset_before).replace(tzinfo=None)

    @property
    def wall_after(self) -> datetime:
        """The local wall time the clock is changed to (naive)."""
        return (self.instant + self.offset_after).replace(tzinfo=None)


def dst_warnings(
    expr: CronExpression,
    tz: str | ZoneInfo,
    *,
    after: datetime,
    days: int = WARNING_DAYS,
) -> list[str]:
    """One sentence per clock change in (``after``, ``after`` + ``days``] that skips or repeats
    a fire time of ``expr`` in ``tz``, in the order of the changes."""
    zone = _zone(tz)
    # Whole seconds, as transitions are, so that the bisection lands on them exactly.
    start = _as_utc(after, "after").replace(microsecond=0)
    values = field_values(*expr._fields())
    warnings = []
    for change in _clock_changes(zone, start, start + days * _ONE_DAY):
        if change.offset_after > change.offset_before:
            walls = _fire_walls(expr, values, change.wall_before, change.wall_after)
            if walls:
                warnings.append(_gap_warning(expr, zone, walls, change))
        else:
            walls = _fire_walls(expr, values, change.wall_after, change.wall_before)
            if walls:
                warnings.append(_repeat_warning(expr, zone, walls))
    return warnings


def _clock_changes(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[_ClockChange]:
    """The offset changes of ``zone`` in (start, end], found day by day and then to the second.

    A zone that changed its offset and back within one day would be missed; no zone does
    (changes are weeks apart at the least).
    """
    low = start
    low_offset = _offset(zone, low)
    while low < end:
        high = min(low + _ONE_DAY, end)
        high_offset = _offset(zone, high)
        if high_offset != low_offset:
            instant = _gap_end(low, high, zone)
            yield _ClockChange(instant, low_offset, high_offset)
        low, low_offset = high, high_offset


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    # tzinfo may answer None in general; a ZoneInfo always knows its offset.
    assert offset is not None
    return offset


def _fire_walls(
    expr: CronExpression, values: FieldValues, first: datetime, end: datetime
) -> list[datetime]:
    """The wall times in [first, end) at which ``expr`` fires (naive, local, ascending)."""
    wall = first.replace(second=0, microsecond=0)
    if wall < first:
        wall += _ONE_MINUTE
    walls = []
    while wall < end:
        if (
            wall.minute in values.minute
            and wall.hour in values.hour
            and wall.month in values.month
            and expr.matches_day(wall.date())
        ):
            walls.append(wall)
        wall += _ONE_MINUTE
    return walls


def _gap_warning(
    expr: CronExpression, zone: ZoneInfo, walls: list[datetime], change: _ClockChange
) -> str:
    times, verb = _times(walls, "does", "do")
    subject = f"{times} {verb} not exist in {zone.key}"
    if expr.fixed_time:
        gap_end = _clock(change.wall_after, walls[0].date())
        if len(walls) == 1:
            return f"{subject}; that day's run is at {gap_end}"
        return f"{subject}; those runs happen once, at {gap_end}"
    runs = "that run is" if len(walls) == 1 else "those runs are"
    return f"{subject}; {runs} skipped, as the schedule follows real time"


def _repeat_warning(expr: CronExpression, zone: ZoneInfo, walls: list[datetime]) -> str:
    times, verb = _times(walls, "occurs", "occur")
    subject = f"{times} {verb} twice in {zone.key}"
    first_zone = _zone_name(walls[0], zone, fold=0)
    second_zone = _zone_name(walls[0], zone, fold=1)
    if expr.fixed_time:
        if len(walls) == 1:
            return f"{subject}; it runs once, at the first ({_hhmm(walls[0])} {first_zone})"
        return f"{subject}; each runs once, at its first occurrence ({first_zone})"
    runs = "that run happens" if len(walls) == 1 else "those runs happen"
    return (
        f"{subject}; {runs} twice ({first_zone}, then {second_zone}), "
        "as the schedule follows real time"
    )


def _times(walls: list[datetime], singular: str, plural: str) -> tuple[str, str]:
    """The affected times as text, dated by the first, and the verb that agrees with it."""
    day = walls[0].date()
    first = f"{day.isoformat()} {_hhmm(walls[0])}"
    if len(walls) == 1:
        return first, singular
    rest = [_clock(wall, day) for wall in walls[1:]]
    if len(walls) > _LISTED_TIMES:
        return f"{first} to {rest[-1]} ({len(walls)} times)", plural
    return f"{', '.join([first, *rest[:-1]])} and {rest[-1]}", plural


def _clock(wall: datetime, day: date) -> str:
    """``wall`` as HH:MM, with its date when that is not ``day``."""
    return _hhmm(wall) if wall.date() == day else f"{wall.date().isoformat()} {_hhmm(wall)}"


def _hhmm(wall: datetime) -> str:
    return wall.strftime("%H:%M")


def _zone_name(wall: datetime, zone: ZoneInfo, *, fold: int) -> str:
    return wall.replace(tzinfo=zone, fold=fold).tzname() or zone.key
