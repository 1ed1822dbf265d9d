"""Agents' run statistics over a window: counts, success rate, duration percentiles, buckets.

A run counts in the window its ``completed_at`` falls in, whatever became of
it (SUCCEEDED, FAILED or CANCELLED); queued and running sessions do not
count. The success rate leaves cancelled runs out: ``succeeded / (succeeded
+ failed)``, None when neither happened. Durations (ms) are those of the
finished runs that have one (a run cancelled before it started has none).

Percentiles are exact, interpolated linearly between the two nearest ranks
as PostgreSQL's ``percentile_cont`` does. On PostgreSQL the database
computes everything, in one transaction, from the ``session_finished``
index: one statement for the window, one for its buckets. On SQLite
(development, tests) the same figures come from the window's rows, fetched
in duration order, by ``percentile_cont`` below, which repeats PostgreSQL's
arithmetic so both give the same numbers.

Buckets are whole UTC hours (24h) or UTC days (7d, 30d); the window is the
current bucket and the ones before it, so its figures are the sum of its
buckets. Every bucket of the window is listed, empty ones with zeros.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from agents.models import ExecutionSession
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


def percentile_cont(ordered: Sequence[int], fraction: float) -> float | None:
    """The ``fraction`` percentile of ascending ``ordered``, as PostgreSQL's
    ``percentile_cont`` computes it (the same float operations, in the same order)."""
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    first = float(ordered[low])
    if low == high:
        return first
    return first + (float(ordered[high]) - first) * (rank - low)


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
    starts = window.starts(now or timezone.now())
    result = Result(
        per_agent={pk: Stats(window, starts) for pk in ids},
        totals=Stats(window, starts) if totals else None,
    )
    if not ids:
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
    ids: list[uuid.UUID], window: Window, start: datetime, end: datetime, totals: bool
) -> Iterable[tuple[uuid.UUID | None, datetime | None, Figures]]:
    # Hours, not days: '1 day' is a calendar day of the connection's timezone (23 or 25 h).
    step = timedelta(hours=1 if window.unit == "hour" else 24)
    parameters: dict[str, Any] = {
        "ids": ids,
        "start": start,
        "end": end,
        "last": end - step,
        "step": step,
    }
    statements = [_WINDOW.format(sets="(agent_id), ()" if totals else "(agent_id)")]
    statements.append(_BUCKETS.format(**_EACH_AGENT))
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
    """The same groups from the rows themselves, read in duration order
    (runs without a duration first), so each group's durations come sorted."""
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
    Key = tuple[uuid.UUID | None, datetime | None]
    counts: dict[Key, Figures] = defaultdict(Figures)
    durations: dict[Key, list[int]] = defaultdict(list)
    for agent_id, completed_at, status, duration_ms in rows:
        assert completed_at is not None  # the filter's range excludes unfinished runs
        bucket = _floor(completed_at, window)
        keys: list[Key] = [(agent_id, bucket), (agent_id, None)]
        if totals:
            keys += [(None, bucket), (None, None)]
        for key in keys:
            figures = counts[key]
            figures.runs += 1
            figures.succeeded += status == Status.SUCCEEDED
            figures.failed += status == Status.FAILED
            figures.cancelled += status == Status.CANCELLED
            if duration_ms is not None:
                durations[key].append(duration_ms)
    for group, figures in counts.items():
        ordered = durations[group]
        figures.p50 = percentile_cont(ordered, 0.5)
        figures.p95 = percentile_cont(ordered, 0.95)
        figures.max = ordered[-1] if ordered else None
        yield group[0], group[1], figures


def _floor(moment: datetime, window: Window) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if window.unit == "day" else moment
