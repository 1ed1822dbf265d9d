"""agents.run_stats: windows, buckets, the percentile arithmetic, and both ways of computing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from agents import run_stats
from agents.models import ExecutionSession
from agents.run_stats import WINDOWS, Figures, percentile_cont
from tests.factories import AgentFactory, SessionFactory

NOW = datetime(2026, 3, 10, 12, 30, 15, tzinfo=UTC)
Status = ExecutionSession.Status


def test_the_windows_end_with_the_bucket_that_holds_now():
    hours = WINDOWS["24h"].starts(NOW)
    assert (len(hours), hours[0], hours[-1]) == (
        24,
        datetime(2026, 3, 9, 13, tzinfo=UTC),
        datetime(2026, 3, 10, 12, tzinfo=UTC),
    )
    days = WINDOWS["30d"].starts(NOW)
    assert (len(days), days[0], days[-1]) == (
        30,
        datetime(2026, 2, 9, tzinfo=UTC),
        datetime(2026, 3, 10, tzinfo=UTC),
    )
    assert len(WINDOWS["7d"].starts(NOW)) == 7


def test_buckets_are_utc_whatever_the_offset_of_now():
    berlin = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    assert WINDOWS["7d"].starts(berlin) == WINDOWS["7d"].starts(NOW)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([5], 0.5, 5.0),
        ([1, 3], 0.5, 2.0),
        ([10, 20, 30, 40], 0.5, 25.0),
        ([10, 20, 30, 40], 0.0, 10.0),
        ([10, 20, 30, 40], 1.0, 40.0),
    ],
)
def test_percentile_cont_interpolates_between_the_nearest_ranks(values, fraction, expected):
    assert percentile_cont(values, fraction) == expected


def test_the_success_rate_leaves_cancelled_runs_out():
    assert Figures(runs=4, succeeded=1, failed=2, cancelled=1).success_rate == 0.3333
    assert Figures(runs=2, cancelled=2).success_rate is None


@pytest.mark.django_db
def test_no_agents_need_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        result = run_stats.run_stats([], WINDOWS["24h"], totals=True, now=NOW)
    assert result.per_agent == {}
    assert result.totals is not None and result.totals.figures.runs == 0


@pytest.mark.django_db
@pytest.mark.parametrize("window", list(WINDOWS))
def test_the_database_and_python_give_the_same_figures(window):
    """On PostgreSQL this compares percentile_cont with its Python twin on the same rows."""
    generator = random.Random(7)
    agents = [AgentFactory(), AgentFactory()]
    for _ in range(300):
        at = NOW - timedelta(minutes=generator.randrange(0, 40 * 24 * 60))
        SessionFactory(
            agent=generator.choice(agents),
            status=generator.choice(ExecutionSession.FINISHED),
            completed_at=at,
            duration_ms=generator.choice([None, *range(1, 5000)]),
        )
    w = WINDOWS[window]
    starts = w.starts(NOW)
    ids = [agent.pk for agent in agents]
    python = sorted(
        run_stats._grouped_in_python(ids, w, starts[0], starts[-1] + w.step, True), key=_key
    )
    read = (
        run_stats._grouped_postgresql
        if connection.vendor == "postgresql"
        else run_stats._grouped_in_python
    )
    database = sorted(read(ids, w, starts[0], starts[-1] + w.step, True), key=_key)
    assert [(a, b) for a, b, _ in database] == [(a, b) for a, b, _ in python]
    assert [f for _, _, f in database] == [f for _, _, f in python]


def _key(row):
    agent_id, bucket, _ = row
    return (str(agent_id), bucket or datetime.min.replace(tzinfo=UTC))
