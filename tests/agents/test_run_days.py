"""Windows of days from daily rollups: the same figures as the rows, written once, kept."""

from __future__ import annotations

import random
import types
from datetime import UTC, datetime, timedelta

import pytest

from agents import durations, run_stats
from agents.durations import Durations, bin_of, percentile_cont
from agents.models import ExecutionSession, RunDay
from agents.run_stats import WINDOWS
from tests.factories import AgentFactory, SessionFactory

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
Status = ExecutionSession.Status


def test_bins_are_two_percent_wide_and_start_at_one_millisecond():
    assert bin_of(0) == bin_of(1) == 0
    assert bin_of(2) == 35  # 1.02**35 = 1.9999
    for ms in (3, 500, 10_000, 86_400_000):
        assert 1.02 ** bin_of(ms) <= ms < 1.02 ** (bin_of(ms) + 1)


def test_a_histogram_s_percentiles_are_within_one_percent_of_the_exact_ones():
    generator = random.Random(3)
    values = sorted(generator.randrange(500, 10_500) for _ in range(20_000))
    days = [Durations.of_sorted(values[n::4], keep_exact=0) for n in range(4)]
    window = Durations.merged(days)
    assert window.exact is None and window.count == 20_000 and window.longest == values[-1]
    for fraction in (0.5, 0.95, 0.99):
        exact = percentile_cont(values, fraction)
        assert exact is not None
        assert abs(window.percentile(fraction) - exact) / exact < 0.01  # type: ignore[operator]


def test_exact_days_merge_exactly_and_survive_json():
    first, second = [5, 9, 120], [1, 7]
    stored = [Durations.from_json(Durations.of_sorted(v).as_json(), v[-1]) for v in (first, second)]
    window = Durations.merged(stored)
    assert window.exact == [1, 5, 7, 9, 120]
    assert window.percentile(0.5) == 7.0 and window.longest == 120


def test_a_histogram_never_estimates_past_the_longest_run():
    part = Durations.of_sorted([1004] * 10, keep_exact=0)
    assert 1.02 ** (bin_of(1004) + 0.5) > 1004  # the bin's middle is past every run in it
    assert part.percentile(0.95) == 1004.0


def history(agents, runs: int = 400, days: int = 40):
    generator = random.Random(11)
    for _ in range(runs):
        at = NOW - timedelta(minutes=generator.randrange(0, days * 24 * 60))
        SessionFactory(
            agent=generator.choice(agents),
            status=generator.choice(ExecutionSession.FINISHED),
            completed_at=at,
            duration_ms=generator.choice([None, *range(1, 5000)]),
        )


def from_rows(ids, window, totals=True):
    """The window's figures straight from the rows, the way 24 hours are read."""
    starts = window.starts(NOW)
    rows = run_stats._grouped_in_python(ids, window, starts[0], starts[-1] + window.step, totals)
    return {(agent, bucket): figures for agent, bucket, figures in rows}


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["7d", "30d"])
def test_rollups_give_the_figures_of_the_rows(name):
    agents = [AgentFactory(), AgentFactory(), AgentFactory()]
    history(agents[:2])
    ids = [agent.pk for agent in agents]
    window = WINDOWS[name]
    expected = from_rows(ids, window)
    for _ in range(2):  # first writing the rollups, then reading them
        result = run_stats.run_stats(ids, window, totals=True, now=NOW)
        for pk, stats in [*result.per_agent.items(), (None, result.totals)]:
            assert stats is not None
            assert stats.figures == expected.get((pk, None), run_stats.Figures())
            for bucket in stats.starts:
                got = stats.buckets.get(bucket, run_stats.Figures())
                assert got == expected.get((pk, bucket), run_stats.Figures())
    # Every agent-day that is over has one row, the agent without runs too.
    assert RunDay.objects.count() == len(ids) * (window.buckets - 1)


@pytest.mark.django_db
def test_a_day_is_read_from_its_rows_until_it_is_well_over():
    agent = AgentFactory()
    midnight = datetime(2026, 3, 10, tzinfo=UTC)
    SessionFactory(
        agent=agent, status=Status.SUCCEEDED, completed_at=midnight - timedelta(seconds=1)
    )
    run_stats.run_stats([agent.pk], WINDOWS["7d"], now=midnight + timedelta(minutes=5))
    assert not RunDay.objects.filter(day=midnight.date() - timedelta(days=1)).exists()
    # A run committed late, stamped with the day before: still counted.
    SessionFactory(agent=agent, status=Status.FAILED, completed_at=midnight - timedelta(seconds=2))
    later = run_stats.run_stats([agent.pk], WINDOWS["7d"], now=midnight + timedelta(minutes=11))
    assert later.per_agent[agent.pk].figures.runs == 2
    assert RunDay.objects.get(day=midnight.date() - timedelta(days=1)).runs == 2


@pytest.mark.django_db
def test_today_s_runs_count_at_once_beside_the_rollups():
    agent = AgentFactory()
    SessionFactory(agent=agent, status=Status.SUCCEEDED, completed_at=NOW - timedelta(days=2))
    run_stats.run_stats([agent.pk], WINDOWS["7d"], now=NOW)
    SessionFactory(agent=agent, status=Status.FAILED, completed_at=NOW - timedelta(minutes=1))
    figures = run_stats.run_stats([agent.pk], WINDOWS["7d"], now=NOW).per_agent[agent.pk].figures
    assert (figures.runs, figures.succeeded, figures.failed) == (2, 1, 1)


@pytest.mark.django_db
def test_counts_of_days_that_are_over_outlive_pruned_sessions():
    agent = AgentFactory()
    history([agent], runs=50, days=20)
    before = run_stats.run_stats([agent.pk], WINDOWS["30d"], now=NOW).per_agent[agent.pk]
    ExecutionSession.objects.filter(completed_at__lt=NOW - timedelta(days=1)).delete()
    after = run_stats.run_stats([agent.pk], WINDOWS["30d"], now=NOW).per_agent[agent.pk]
    assert after.figures == before.figures and after.buckets == before.buckets


@pytest.mark.django_db
def test_past_the_exact_bound_buckets_stay_exact_and_the_window_is_within_one_percent(
    monkeypatch,
):
    monkeypatch.setattr(durations, "DAY_EXACT", 10)
    monkeypatch.setattr(durations, "WINDOW_EXACT", 30)
    agent = AgentFactory()
    history([agent], runs=300, days=6)
    window = WINDOWS["7d"]
    expected = from_rows([agent.pk], window, totals=False)
    stats = run_stats.run_stats([agent.pk], window, now=NOW).per_agent[agent.pk]
    assert stats.buckets == {
        bucket: figures for (_, bucket), figures in expected.items() if bucket is not None
    }
    exact = expected[agent.pk, None]
    assert (stats.figures.runs, stats.figures.failed, stats.figures.max) == (
        exact.runs,
        exact.failed,
        exact.max,
    )
    for got, want in [(stats.figures.p50, exact.p50), (stats.figures.p95, exact.p95)]:
        assert got is not None and want is not None
        assert abs(got - want) / want < 0.01


@pytest.mark.django_db
def test_the_hourly_task_rolls_up_every_agent_and_forgets_what_no_window_reaches():
    agents = [AgentFactory(), AgentFactory()]
    old = RunDay.objects.create(agent=agents[0], day=(NOW - timedelta(days=45)).date())
    written = run_stats.roll_up_every_agent(now=NOW)
    assert written == 2 * 29
    assert not RunDay.objects.filter(pk=old.pk).exists()
    assert run_stats.roll_up_every_agent(now=NOW) == 0


@pytest.mark.django_db
def test_beat_rolls_up_every_hour(settings, monkeypatch):
    from scheduling import tasks

    monkeypatch.setattr(run_stats, "timezone", types.SimpleNamespace(now=lambda: NOW))
    entry = settings.CELERY_BEAT_SCHEDULE["neonhub-roll-up-run-days"]
    assert entry["task"] == tasks.roll_up_run_days.name and entry["schedule"] == 3600.0
    AgentFactory()
    assert tasks.roll_up_run_days() == 29
