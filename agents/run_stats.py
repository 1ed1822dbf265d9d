"""Agents' run statistics over a window: counts, success rate, duration percentiles, buckets.

A run counts in the window its ``completed_at`` falls in, whatever became of
it (SUCCEEDED, FAILED or CANCELLED); queued and running sessions do not
count. The success rate leaves cancelled runs out: ``succeeded / (succeeded
+ failed)``, None when neither happened. Durations (ms) are those of the
finished runs that have one (a run cancelled before it started has none).

Percentiles are interpolated linearly between the two nearest ranks as
PostgreSQL's ``percentile_cont`` does. On PostgreSQL the database computes
them from the ``session_finished`` index; on SQLite (development, tests)
they come from the rows, fetched in duration order, by ``percentile_cont``
(``agents.durations``), which repeats PostgreSQL's arithmetic so both give
the same numbers.

Buckets are whole UTC hours (24h) or UTC days (7d, 30d); the window is the
current bucket and the ones before it, so its figures are the sum of its
buckets. Every bucket of the window is listed, empty ones with zeros.

24 hours are read from the rows, exactly: one statement for the window, one
for its buckets. A window of days reads each day that is over from its
rollup (``RunDay``, written the first time the day is asked for, or by
beat's hourly task) and only today from the rows, so its cost no longer
grows with the runs of the month. Its buckets are exact; its percentiles
are exact up to ``agents.durations.WINDOW_EXACT`` runs and within 1 % past
that. Counts of days that are over outlive retention's pruning.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from agents.durations import RATIO, Durations, percentile_cont, stay_exact
from agents.models import AIAgent, ExecutionSession, RunDay
from core.dates import iso

Status = ExecutionSession.Status


@dataclass(frozen=True)
class Window:
    name: str
    unit: str  # "hour" or "day", as date_trunc spells it
    buckets: int

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self.unit == "hour" else timedelta(days=1)

    def starts(self, now: datetime) -> list[datetime]:
        """The buckets' starts, oldest first; the last one holds ``now``."""
        now = now.astimezone(UTC)
        current = now.replace(minute=0, second=0, microsecond=0)
        if self.unit == "day":
            current = current.replace(hour=0)
        return [current - self.step * n for n in range(self.buckets - 1, -1, -1)]


WINDOWS = {
    window.name: window
    for window in (Window("24h", "hour", 24), Window("7d", "day", 7), Window("30d", "day", 30))
}
DEFAULT_WINDOW = "24h"


@dataclass
class Figures:
    """One group's figures: an agent, one of its buckets, or all agents."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    p50: float | None = None
    p95: float | None = None
    max: int | None = None

    @property
    def success_rate(self) -> float | None:
        decided = self.succeeded + self.failed
        return round(self.succeeded / decided, 4) if decided else None


def _ms(value: float | None) -> float | None:
    # A tenth of a millisecond is past what a run's timing means; it also
    # hides the last float digits, which no reader wants to see.
    return None if value is None else round(value, 1)


@dataclass
class Stats:
    """A window's figures and its buckets' figures, for one agent or for several."""

    window: Window
    starts: list[datetime]
    figures: Figures = field(default_factory=Figures)
    buckets: dict[datetime, Figures] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        """The API's shape (snake_case; the renderer writes it in camelCase)."""
        figures = self.figures
        return {
            "window": self.window.name,
            "runs": figures.runs,
            "succeeded": figures.succeeded,
            "failed": figures.failed,
            "cancelled": figures.cancelled,
            "success_rate": figures.success_rate,
            "duration": {"p50": _ms(figures.p50), "p95": _ms(figures.p95), "max": figures.max},
            "buckets": [self._bucket(start) for start in self.starts],
        }

    def _bucket(self, start: datetime) -> dict[str, Any]:
        bucket = self.buckets.get(start, Figures())
        return {
            "start": iso(start),
            "runs": bucket.runs,
            "succeeded": bucket.succeeded,
            "failed": bucket.failed,
            "duration_p95": _ms(bucket.p95),
        }


@dataclass
class Result:
    per_agent: dict[uuid.UUID, Stats]
    totals: Stats | None


def run_stats(
    agent_ids: Iterable[uuid.UUID],
    window: Window,
    *,
    totals: bool = False,
    now: datetime | None = None,
) -> Result:
    """The window's figures of each agent in ``agent_ids`` (an agent without runs
    gets zeros), and with ``totals`` those of all of them together."""
    ids = list(agent_ids)
    now = now or timezone.now()
    starts = window.starts(now)
    result = Result(
        per_agent={pk: Stats(window, starts) for pk in ids},
        totals=Stats(window, starts) if totals else None,
    )
    if not ids:
        return result
    if window.unit == "day":
        _days_from_rollups(result, ids, window, starts, now)
        return result
    start, end = starts[0], starts[-1] + window.step
    read = _grouped_postgresql if connection.vendor == "postgresql" else _grouped_in_python
    for agent_id, bucket, figures in read(ids, window, start, end, totals):
        stats = result.totals if agent_id is None else result.per_agent[agent_id]
        assert stats is not None
        if bucket is None:
            stats.figures = figures
        else:
            stats.buckets[bucket] = figures
    return result


# --- windows of days: rollups of the days that are over, rows of the rest -------------

DAY = WINDOWS["7d"]
# A day is rolled up this long after it ends: a run that finishes on the
# stroke of midnight commits a moment later, and a worker's clock may lag.
ROLLUP_GRACE = timedelta(minutes=10)
# Rolling up reads the rows of this many agents at a time.
ROLLUP_BATCH = 500

Key = tuple[uuid.UUID | None, datetime | None]  # an agent (None: all), a bucket (None: all)
DayKey = tuple[uuid.UUID, datetime]


def closed_days(starts: list[datetime], now: datetime) -> list[datetime]:
    """The starts of the days among ``starts`` that are over and can be rolled up."""
    return [start for start in starts if start + DAY.step + ROLLUP_GRACE <= now]


def roll_up(agent_ids: Iterable[uuid.UUID], days: list[datetime]) -> list[RunDay]:
    """The rollups of ``days`` (over, ascending) of each agent, writing the
    missing ones from the days' sessions first."""
    return _roll_up(list(agent_ids), days)[0]


def _roll_up(ids: list[uuid.UUID], days: list[datetime]) -> tuple[list[RunDay], int]:
    """The rollups, and how many of them this call wrote."""
    if not ids or not days:
        return [], 0
    found = list(
        RunDay.objects.filter(agent_id__in=ids, day__gte=days[0].date(), day__lte=days[-1].date())
    )
    have = {(row.agent_id, row.day) for row in found}
    missing = [(pk, day) for pk in ids for day in days if (pk, day.date()) not in have]
    for batch in range(0, len(missing), ROLLUP_BATCH * len(days)):
        found += _write_rollups(missing[batch : batch + ROLLUP_BATCH * len(days)])
    return found, len(missing)


def roll_up_every_agent(now: datetime | None = None) -> int:
    """Beat's hourly task: rolls up every agent's days of the longest window
    that are over, so that no request waits for it, and deletes the rollups
    no window reaches any more. Returns how many rollups it wrote."""
    longest = max(WINDOWS.values(), key=lambda window: window.buckets * window.step)
    now = now or timezone.now()
    starts = longest.starts(now)
    days = closed_days(starts, now)
    RunDay.objects.filter(day__lt=starts[0].date()).delete()
    ids = list(AIAgent.objects.order_by("pk").values_list("pk", flat=True))
    return sum(
        _roll_up(ids[batch : batch + ROLLUP_BATCH], days)[1]
        for batch in range(0, len(ids), ROLLUP_BATCH)
    )


def _write_rollups(missing: list[tuple[uuid.UUID, datetime]]) -> list[RunDay]:
    agents = sorted({pk for pk, _ in missing})
    first = min(day for _, day in missing)
    end = max(day for _, day in missing) + DAY.step
    counts, durations = _collect(agents, DAY, first, end, totals=False, whole=False)
    rows = []
    for pk, day in missing:
        ordered = durations.get((pk, day), [])
        figures = _timed(counts.get((pk, day), Figures()), ordered)
        rows.append(
            RunDay(
                agent_id=pk,
                day=day.date(),
                runs=figures.runs,
                succeeded=figures.succeeded,
                failed=figures.failed,
                cancelled=figures.cancelled,
                p50=figures.p50,
                p95=figures.p95,
                longest=figures.max,
                durations=Durations.of_sorted(ordered).as_json(),
            )
        )
    # Two requests rolling up the same day write the same figures; the first wins.
    RunDay.objects.bulk_create(rows, ignore_conflicts=True)
    return rows


def _days_from_rollups(
    result: Result, ids: list[uuid.UUID], window: Window, starts: list[datetime], now: datetime
) -> None:
    """A window of days: its days that are over from their rollups, the rest
    (today, and yesterday for a few minutes after midnight) from their rows.

    Each bucket's figures are exact. The window's percentiles merge its
    buckets' durations (``agents.durations``): exact while the window holds
    at most ``WINDOW_EXACT`` of them, each day at most ``DAY_EXACT``; within
    1 % past that.
    """
    closed = closed_days(starts, now)
    open_start, end = starts[len(closed)], starts[-1] + window.step
    buckets: dict[DayKey, Figures] = {}
    parts: dict[DayKey, Durations] = {}
    for row in roll_up(ids, closed):
        day = datetime(row.day.year, row.day.month, row.day.day, tzinfo=UTC)
        buckets[row.agent_id, day] = Figures(
            row.runs, row.succeeded, row.failed, row.cancelled, row.p50, row.p95, row.longest
        )
        parts[row.agent_id, day] = Durations.from_json(row.durations, row.longest)
    exact = stay_exact(parts.values())
    if connection.vendor == "postgresql":
        for agent_id, bucket, figures in _grouped_postgresql(
            ids, window, open_start, end, totals=False, whole=False
        ):
            assert agent_id is not None and bucket is not None
            buckets[agent_id, bucket] = figures
        parts.update(_open_durations_postgresql(ids, open_start, end, exact=exact))
    else:
        counts, durations = _collect(ids, window, open_start, end, totals=False, whole=False)
        for (agent_id, bucket), figures in counts.items():
            assert agent_id is not None and bucket is not None  # no totals, no whole range
            ordered = durations.get((agent_id, bucket), [])
            buckets[agent_id, bucket] = _timed(figures, ordered)
            parts[agent_id, bucket] = Durations.exactly(ordered)

    def merged(keys: list[DayKey]) -> Figures:
        return _summed(
            [buckets[key] for key in keys],
            Durations.merged(parts[key] for key in keys if key in parts),
        )

    for agent_id, stats in result.per_agent.items():
        keys = [(agent_id, bucket) for bucket in starts if (agent_id, bucket) in buckets]
        stats.buckets = {bucket: buckets[agent_id, bucket] for _, bucket in keys}
        stats.figures = merged(keys)
    if result.totals is not None:
        for bucket in starts:
            figures = merged([(pk, bucket) for pk in ids if (pk, bucket) in buckets])
            if figures.runs:
                result.totals.buckets[bucket] = figures
        result.totals.figures = merged(list(buckets))


def _summed(groups: list[Figures], durations: Durations) -> Figures:
    return Figures(
        runs=sum(figures.runs for figures in groups),
        succeeded=sum(figures.succeeded for figures in groups),
        failed=sum(figures.failed for figures in groups),
        cancelled=sum(figures.cancelled for figures in groups),
        p50=durations.percentile(0.5),
        p95=durations.percentile(0.95),
        max=durations.longest,
    )


# The durations of today's runs, as a sorted array per agent and day while
# the window stays exact, else as histogram bins (agents.durations.bin_of).
_OPEN_EXACT = """
SELECT agent_id, floor(extract(epoch FROM completed_at - %(start)s) / 86400)::int,
       array_agg(duration_ms ORDER BY duration_ms)
FROM agents_executionsession
WHERE agent_id = ANY(%(ids)s) AND {finished}
  AND completed_at >= %(start)s AND completed_at < %(end)s AND duration_ms IS NOT NULL
GROUP BY 1, 2
"""
_OPEN_BINS = """
SELECT agent_id, floor(extract(epoch FROM completed_at - %(start)s) / 86400)::int,
       CASE WHEN duration_ms > 1 THEN floor(ln(duration_ms) / ln(%(ratio)s))::int ELSE 0 END,
       count(*), max(duration_ms)
FROM agents_executionsession
WHERE agent_id = ANY(%(ids)s) AND {finished}
  AND completed_at >= %(start)s AND completed_at < %(end)s AND duration_ms IS NOT NULL
GROUP BY 1, 2, 3
"""


def _open_durations_postgresql(
    ids: list[uuid.UUID], start: datetime, end: datetime, *, exact: bool
) -> dict[DayKey, Durations]:
    parameters: dict[str, Any] = {"ids": ids, "start": start, "end": end, "ratio": RATIO}
    statement = _OPEN_EXACT if exact else _OPEN_BINS
    with connection.cursor() as cursor:
        cursor.execute(statement.format(finished=_FINISHED), parameters)
        rows = cursor.fetchall()
    parts: dict[DayKey, Durations] = {}
    if exact:
        for agent_id, day, ordered in rows:
            parts[agent_id, start + DAY.step * day] = Durations.exactly(ordered)
        return parts
    for agent_id, day, bin_, n, longest in rows:
        part = parts.setdefault((agent_id, start + DAY.step * day), Durations(exact=None))
        part.bins[bin_] += n
        part.count += n
        part.longest = max(part.longest or 0, longest)
    return parts


_FIGURES = """
    count(*) AS runs,
    count(*) FILTER (WHERE status = 'SUCCEEDED') AS succeeded,
    count(*) FILTER (WHERE status = 'FAILED') AS failed,
    count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled,
    percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY duration_ms) AS percentiles,
    max(duration_ms) AS longest
"""
_FINISHED = "status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"

# The window: each agent, and for totals all of them (GROUPING() tells the
# total's empty agent column from an agent).
_WINDOW = f"""
SELECT CASE WHEN GROUPING(agent_id) = 0 THEN agent_id END, NULL::timestamptz, {_FIGURES}
FROM agents_executionsession
WHERE agent_id = ANY(%(ids)s) AND {_FINISHED}
  AND completed_at >= %(start)s AND completed_at < %(end)s
GROUP BY GROUPING SETS ({{sets}})
"""

# Each bucket on its own: a range of the index whose durations are sorted
# apart. Grouping the window by bucket instead sorts all of it by bucket
# first and then each bucket again: twice the time for a month of runs.
_BUCKETS = f"""
SELECT {{key}}, bucket, figures.*
FROM {{groups}}
CROSS JOIN generate_series(%(start)s, %(last)s, %(step)s) AS bucket
CROSS JOIN LATERAL (
    SELECT {_FIGURES}
    FROM agents_executionsession
    WHERE {{agents}} AND {_FINISHED}
      AND completed_at >= bucket AND completed_at < bucket + %(step)s
) AS figures
WHERE figures.runs > 0
"""
_EACH_AGENT = {
    "key": "agent.id",
    "groups": "unnest(%(ids)s) AS agent(id)",
    "agents": "agent_id = agent.id",
}
_ALL_AGENTS = {
    "key": "NULL::uuid",
    "groups": "(VALUES (1)) AS everyone(one)",
    "agents": "agent_id = ANY(%(ids)s)",
}


def _grouped_postgresql(
    ids: list[uuid.UUID],
    window: Window,
    start: datetime,
    end: datetime,
    totals: bool,
    *,
    whole: bool = True,
) -> Iterable[tuple[uuid.UUID | None, datetime | None, Figures]]:
    """Each agent's figures (and with ``totals`` everyone's) over the range,
    and for each bucket; without ``whole`` only the buckets'."""
    # Hours, not days: '1 day' is a calendar day of the connection's timezone (23 or 25 h).
    step = timedelta(hours=1 if window.unit == "hour" else 24)
    parameters: dict[str, Any] = {
        "ids": ids,
        "start": start,
        "end": end,
        "last": end - step,
        "step": step,
    }
    statements = [_BUCKETS.format(**_EACH_AGENT)]
    if whole:
        statements.append(_WINDOW.format(sets="(agent_id), ()" if totals else "(agent_id)"))
    if totals:
        statements.append(_BUCKETS.format(**_ALL_AGENTS))
    rows = []
    with transaction.atomic(), connection.cursor() as cursor:
        # The sorts of a month of a busy agent stay in memory rather than
        # spill to disk; compiling the query just in time costs more than it
        # saves at this size.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL jit = off")
        for statement in statements:
            cursor.execute(statement, parameters)
            rows += cursor.fetchall()
    for agent_id, bucket, runs, succeeded, failed, cancelled, percentiles, longest in rows:
        p50, p95 = percentiles or (None, None)
        yield (
            agent_id,
            bucket.astimezone(UTC) if bucket is not None else None,
            Figures(runs, succeeded, failed, cancelled, p50, p95, longest),
        )


def _grouped_in_python(
    ids: list[uuid.UUID], window: Window, start: datetime, end: datetime, totals: bool
) -> Iterable[tuple[uuid.UUID | None, datetime | None, Figures]]:
    """The same groups from the rows themselves."""
    counts, durations = _collect(ids, window, start, end, totals)
    for group, figures in counts.items():
        yield group[0], group[1], _timed(figures, durations[group])


def _timed(figures: Figures, ordered: list[int]) -> Figures:
    """``figures`` with the percentiles and maximum of its sorted durations."""
    figures.p50 = percentile_cont(ordered, 0.5)
    figures.p95 = percentile_cont(ordered, 0.95)
    figures.max = ordered[-1] if ordered else None
    return figures


def _collect(
    ids: list[uuid.UUID],
    window: Window,
    start: datetime,
    end: datetime,
    totals: bool,
    *,
    whole: bool = True,
) -> tuple[dict[Key, Figures], dict[Key, list[int]]]:
    """Each group's counts and sorted durations, from the rows read in
    duration order (runs without a duration first); without ``whole`` only
    the buckets', not the range's."""
    rows = (
        ExecutionSession.objects.filter(
            agent_id__in=ids,
            status__in=ExecutionSession.FINISHED,
            completed_at__gte=start,
            completed_at__lt=end,
        )
        .order_by("duration_ms")
        .values_list("agent_id", "completed_at", "status", "duration_ms")
        .iterator()
    )
    counts: dict[Key, Figures] = defaultdict(Figures)
    durations: dict[Key, list[int]] = defaultdict(list)
    for agent_id, completed_at, status, duration_ms in rows:
        assert completed_at is not None  # the filter's range excludes unfinished runs
        bucket = _floor(completed_at, window)
        keys: list[Key] = [(agent_id, bucket)]
        if whole:
            keys.append((agent_id, None))
        if totals:
            keys += [(None, bucket), (None, None)] if whole else [(None, bucket)]
        for key in keys:
            figures = counts[key]
            figures.runs += 1
            figures.succeeded += status == Status.SUCCEEDED
            figures.failed += status == Status.FAILED
            figures.cancelled += status == Status.CANCELLED
            if duration_ms is not None:
                durations[key].append(duration_ms)
    return counts, durations


def _floor(moment: datetime, window: Window) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if window.unit == "day" else moment
