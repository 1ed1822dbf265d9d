"""GET /api/agents/{id}/stats and /api/agents/stats: run figures over a window, by hand."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta

import pytest

from agents import run_stats
from agents.models import ExecutionSession
from conftest import client_for
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
Status = ExecutionSession.Status


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    monkeypatch.setattr(run_stats, "timezone", types.SimpleNamespace(now=lambda: NOW))


@pytest.fixture
def agent(user):
    return AgentFactory(owner=user, name="Writer")


def finished(agent, at: datetime, status: str = Status.SUCCEEDED, duration: int | None = None):
    return SessionFactory(
        agent=agent, status=status, completed_at=at, duration_ms=duration, scheduled_for=at
    )


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def runs(agent, other_user):
    """A day of runs of ``agent``, around the edges of the 24h window, and others'."""
    finished(agent, at(10, 12, 10), duration=100)
    finished(agent, at(10, 12, 20), duration=200)
    finished(agent, at(10, 12, 25), Status.FAILED, duration=400)
    finished(agent, at(10, 11, 5), Status.CANCELLED)  # cancelled before it started
    finished(agent, at(10, 11, 40), duration=1000)
    finished(agent, at(9, 13, 0), duration=50)  # the 24h window's first moment
    finished(agent, at(9, 12, 59), duration=10)  # just before it; in 7d
    SessionFactory(agent=agent, status=Status.RUNNING, started_at=at(10, 12, 0))
    SessionFactory(agent=agent, status=Status.QUEUED)
    finished(AgentFactory(owner=other_user), at(10, 12, 15), duration=99_999)


def stats_of(client, agent, query: str = ""):
    response = client.get(f"/api/agents/{agent.pk}/stats{query}")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_the_24h_window_counts_finished_runs_in_hourly_buckets(api, agent, runs):
    data = stats_of(api, agent)
    buckets = data.pop("buckets")
    assert data == {
        "window": "24h",
        "runs": 6,
        "succeeded": 4,
        "failed": 1,
        "cancelled": 1,
        "successRate": 0.8,
        # [50, 100, 200, 400, 1000]: p50 the third; p95 at rank 3.8, 400 + 0.8 * 600.
        "duration": {"p50": 200.0, "p95": 880.0, "max": 1000},
    }
    assert [b["start"] for b in buckets] == [
        (at(9, 13) + timedelta(hours=n)).isoformat().replace("+00:00", "Z") for n in range(24)
    ]
    assert buckets[0] == {
        "start": "2026-03-09T13:00:00Z",
        "runs": 1,
        "succeeded": 1,
        "failed": 0,
        "durationP95": 50.0,
    }
    # 11:00: the cancelled run (no duration) and one of 1000 ms.
    assert buckets[22] == {
        "start": "2026-03-10T11:00:00Z",
        "runs": 2,
        "succeeded": 1,
        "failed": 0,
        "durationP95": 1000.0,
    }
    # [100, 200, 400]: rank 1.9, 200 + 0.9 * 200.
    assert buckets[23] == {
        "start": "2026-03-10T12:00:00Z",
        "runs": 3,
        "succeeded": 2,
        "failed": 1,
        "durationP95": 380.0,
    }
    empty = {"runs": 0, "succeeded": 0, "failed": 0, "durationP95": None}
    assert all({k: v for k, v in b.items() if k != "start"} == empty for b in buckets[1:22])


def test_the_7d_window_has_daily_buckets(api, agent, runs):
    data = stats_of(api, agent, "?window=7d")
    assert (data["window"], data["runs"], data["succeeded"]) == ("7d", 7, 5)
    # [10, 50, 100, 200, 400, 1000]: p50 halfway between 100 and 200; p95 at rank 4.75.
    assert data["duration"] == {"p50": 150.0, "p95": 850.0, "max": 1000}
    assert [b["start"] for b in data["buckets"]] == [
        f"2026-03-{d:02}T00:00:00Z" for d in range(4, 11)
    ]
    assert data["buckets"][-2] == {
        "start": "2026-03-09T00:00:00Z",
        "runs": 2,
        "succeeded": 2,
        "failed": 0,
        "durationP95": 48.0,  # [10, 50]: 10 + 0.95 * 40
    }
    # [100, 200, 400, 1000]: rank 2.85, 400 + 0.85 * 600.
    assert data["buckets"][-1]["durationP95"] == 910.0


def test_the_30d_window_starts_29_days_before_today(api, agent):
    finished(agent, datetime(2026, 2, 8, 23, 59, tzinfo=UTC), duration=1)
    finished(agent, datetime(2026, 2, 9, 0, 0, tzinfo=UTC), duration=7)
    data = stats_of(api, agent, "?window=30d")
    assert len(data["buckets"]) == 30
    assert data["buckets"][0]["start"] == "2026-02-09T00:00:00Z"
    assert data["buckets"][0]["runs"] == 1
    assert (data["runs"], data["duration"]) == (1, {"p50": 7.0, "p95": 7.0, "max": 7})


def test_an_agent_without_runs_has_zeros_and_nulls(api, agent):
    data = stats_of(api, agent, "?window=7d")
    assert data["runs"] == data["succeeded"] == data["failed"] == data["cancelled"] == 0
    assert data["successRate"] is None
    assert data["duration"] == {"p50": None, "p95": None, "max": None}
    assert len(data["buckets"]) == 7


def test_only_cancelled_runs_have_no_success_rate(api, agent):
    finished(agent, at(10, 9), Status.CANCELLED, duration=30)
    data = stats_of(api, agent)
    assert (data["runs"], data["cancelled"], data["successRate"]) == (1, 1, None)
    assert data["duration"]["p50"] == 30.0  # a run cancelled while running has a duration


def test_percentiles_match_postgresql_s_interpolation():
    assert run_stats.percentile_cont([], 0.5) is None
    assert run_stats.percentile_cont([7], 0.95) == 7.0
    assert run_stats.percentile_cont([1, 2], 0.5) == 1.5
    assert run_stats.percentile_cont([1, 2, 3, 4], 0.5) == 2.5
    assert round(run_stats.percentile_cont([0, 100], 0.95), 6) == 95.0


@pytest.mark.parametrize("window", ["1h", "24H", "7", "30d ", "all"])
def test_any_other_window_is_a_400_naming_it(api, agent, window):
    for path in (f"/api/agents/{agent.pk}/stats", "/api/agents/stats"):
        response = api.get(path, {"window": window})
        assert response.status_code == 400, response.content
        answer = response.json()
        assert answer["success"] is False
        assert list(answer["details"]) == ["window"]
        assert "window" in answer["error"]


def test_both_paths_answer_with_and_without_a_trailing_slash(api, agent, runs):
    for path in (f"/api/agents/{agent.pk}/stats", "/api/agents/stats"):
        for slash in ("", "/"):
            response = api.get(path + slash)
            assert response.status_code == 200, (path + slash, response.content)
            assert response.json()["data"]["window"] == "24h"


@pytest.mark.parametrize("whose", ["foreign", "unknown", "not an id"])
def test_stats_of_an_agent_the_user_cannot_see_are_not_found(api, other_user, whose):
    ids = {
        "foreign": AgentFactory(owner=other_user).pk,
        "unknown": "8c1b5a4e-0000-4000-8000-000000000000",
        "not an id": "nope",
    }
    response = api.get(f"/api/agents/{ids[whose]}/stats")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Agent not found"}


def test_staff_see_the_stats_of_anyone_s_agent(staff_user, agent, runs):
    assert stats_of(client_for(staff_user), agent)["runs"] == 6


def test_the_list_gives_each_visible_agent_and_their_totals(api, user, agent, runs):
    second = AgentFactory(owner=user, name="Reader")
    finished(second, at(10, 12, 5), Status.FAILED, duration=600)
    response = api.get("/api/agents/stats")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["window"] == "24h"
    # The agent list's order: newest first.
    assert [(row["agentId"], row["name"]) for row in data["agents"]] == [
        (str(second.pk), "Reader"),
        (str(agent.pk), "Writer"),
    ]
    reader, writer = data["agents"]
    assert writer == {"agentId": str(agent.pk), "name": "Writer", **stats_of(api, agent)}
    assert (reader["runs"], reader["failed"], reader["successRate"]) == (1, 1, 0.0)
    totals = data["totals"]
    # The other user's run is not in them; [50, 100, 200, 400, 600, 1000]: rank 4.75.
    assert (totals["runs"], totals["succeeded"], totals["failed"]) == (7, 4, 2)
    assert totals["successRate"] == round(4 / 6, 4)
    assert totals["duration"] == {"p50": 300.0, "p95": 900.0, "max": 1000}
    assert totals["buckets"][-1]["runs"] == 4
    assert data["pagination"] == {"total": 2, "limit": 20, "offset": 0}


def test_the_list_pages_agents_but_totals_cover_them_all(api, user, agent, runs):
    second = AgentFactory(owner=user)
    finished(second, at(10, 12, 5), duration=1)
    data = api.get("/api/agents/stats", {"limit": 1, "offset": 1, "window": "7d"}).json()["data"]
    assert [row["agentId"] for row in data["agents"]] == [str(agent.pk)]
    assert data["totals"]["runs"] == 8
    assert data["pagination"] == {"total": 2, "limit": 1, "offset": 1}


def test_the_list_shows_only_the_user_s_agents_and_staff_all(api, staff_user, agent, runs):
    assert api.get("/api/agents/stats").json()["data"]["totals"]["runs"] == 6
    everyone = client_for(staff_user).get("/api/agents/stats").json()["data"]
    assert everyone["totals"]["runs"] == 7
    assert len(everyone["agents"]) == 2


def test_a_user_without_agents_gets_empty_totals(api):
    data = api.get("/api/agents/stats?window=30d").json()["data"]
    assert data["agents"] == []
    assert data["totals"]["runs"] == 0
    assert len(data["totals"]["buckets"]) == 30


def test_stats_need_a_token(anonymous, agent):
    assert anonymous.get(f"/api/agents/{agent.pk}/stats").status_code == 401
    assert anonymous.get("/api/agents/stats").status_code == 401


def test_stats_take_only_get(api, agent):
    assert api.post(f"/api/agents/{agent.pk}/stats").status_code == 405
    assert api.delete("/api/agents/stats").status_code == 405
