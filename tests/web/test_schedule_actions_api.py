"""POST /api/agents/{id}/schedule/resume and POST /api/agents/{id}/backfill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent, ExecutionSession
from core.dates import iso
from scheduling import pacing
from scheduling.models import ScheduleSlot
from scheduling.services import set_schedule
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(pacing, "request_admission", lambda: None)


def rows() -> dict[str, list[dict]]:
    """Everything a request could change."""
    return {
        "agents": list(AIAgent.objects.order_by("pk").values()),
        "sessions": list(ExecutionSession.objects.order_by("pk").values()),
        "slots": list(ScheduleSlot.objects.order_by("pk").values()),
        "beat": list(PeriodicTask.objects.order_by("pk").values()),
    }


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@pytest.fixture
def daily(user):
    """Paused for 60 hours, daily two hours before now: three missed slots, none
    of them near enough to now for a minute passing between calls to add one."""
    now = timezone.now()
    slot = minute(now - timedelta(hours=2))
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression=f"{slot.minute} {slot.hour} * * *")
    set_schedule(agent, enabled=False)
    AIAgent.objects.filter(pk=agent.pk).update(paused_at=now - timedelta(hours=60))
    agent.missed = [slot - timedelta(days=days) for days in (2, 1, 0)]
    return agent


def resume_path(agent) -> str:
    return f"/api/agents/{agent.pk}/schedule/resume"


def backfill_path(agent) -> str:
    return f"/api/agents/{agent.pk}/backfill"


# --- resume -----------------------------------------------------------------------


def test_a_resume_preview_equals_what_then_runs(api, daily):
    before = rows()
    preview = api.post(resume_path(daily), {"policy": "RUN_ALL", "dryRun": True}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json() == {
        "success": True,
        "data": {"runs": [iso(slot) for slot in daily.missed], "scheduleEnabled": False},
    }
    assert rows() == before

    real = api.post(resume_path(daily), {"policy": "RUN_ALL"}, format="json")
    assert real.status_code == 200
    assert real.json()["data"] == {"runs": preview.json()["data"]["runs"], "scheduleEnabled": True}
    sessions = daily.sessions.order_by("created_at")
    assert [iso(s.scheduled_for) for s in sessions] == preview.json()["data"]["runs"]
    assert {(s.trigger, s.attempt, s.status) for s in sessions} == {("SCHEDULE", 1, "QUEUED")}
    daily.refresh_from_db()
    assert daily.schedule_enabled and daily.paused_at is None


def test_resuming_with_run_latest_runs_the_latest_missed_slot(api, daily):
    response = api.post(resume_path(daily) + "/", {"policy": "RUN_LATEST"}, format="json")
    assert response.json()["data"]["runs"] == [iso(daily.missed[-1])]
    assert daily.sessions.get().scheduled_for == daily.missed[-1]


def test_resuming_with_skip_missed_only_enables(api, daily):
    response = api.post(resume_path(daily), {"policy": "SKIP_MISSED"}, format="json")
    assert response.json()["data"] == {"runs": [], "scheduleEnabled": True}
    assert not daily.sessions.exists()


def test_resuming_an_enabled_schedule_runs_nothing(api, user):
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression="0 * * * *")
    before = rows()
    response = api.post(resume_path(agent), {"policy": "RUN_ALL"}, format="json")
    assert response.status_code == 200
    assert response.json()["data"] == {"runs": [], "scheduleEnabled": True}
    assert rows() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "policy"),
        ({"policy": "RUN_SOME"}, "policy"),
        ({"policy": 1}, "policy"),
        ({"policy": None}, "policy"),
        ({"policy": ["RUN_ALL"]}, "policy"),
        ({"policy": "RUN_ALL", "dryRun": "true"}, "dryRun"),
        ({"policy": "RUN_ALL", "dryRun": 1}, "dryRun"),
        ({"policy": "RUN_ALL", "dryRun": None}, "dryRun"),
    ],
)
def test_bad_resume_requests_are_refused_naming_the_field(api, daily, body, field):
    before = rows()
    response = api.post(resume_path(daily), body, format="json")
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert list(response.json()["details"]) == [field]
    assert rows() == before


@pytest.mark.parametrize("body", ['["RUN_ALL"]', '"RUN_ALL"', "5", "null"])
def test_a_resume_body_must_be_an_object(api, daily, body):
    before = rows()
    response = api.post(resume_path(daily), body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]
    assert rows() == before


def test_an_agent_without_a_schedule_cannot_be_resumed(api, user):
    agent = AgentFactory(owner=user)
    response = api.post(resume_path(agent), {"policy": "RUN_ALL"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "This agent has no schedule to resume."


# --- backfill ---------------------------------------------------------------------


@pytest.fixture
def hourly(user):
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression="0 * * * *")
    return agent


YESTERDAY = (timezone.now() - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def test_a_backfill_queues_the_slots_and_says_what_it_skipped(api, hourly):
    SessionFactory(agent=hourly, trigger="SCHEDULE", scheduled_for=YESTERDAY, status="SUCCEEDED")
    body = {"start": iso(YESTERDAY), "end": iso(YESTERDAY + timedelta(hours=4))}
    response = api.post(backfill_path(hourly), body, format="json")
    assert response.status_code == 202, response.content
    expected = [iso(YESTERDAY + timedelta(hours=hour)) for hour in (1, 2, 3)]
    assert response.json() == {
        "success": True,
        "data": {"queued": 3, "skipped": 1, "slots": expected},
    }
    assert hourly.sessions.filter(trigger="BACKFILL").count() == 3

    again = api.post(backfill_path(hourly) + "/", {**body, "rerun": True}, format="json")
    assert again.json()["data"]["queued"] == 4 and again.json()["data"]["skipped"] == 0


def test_a_backfill_reads_times_with_any_offset(api, hourly):
    start = YESTERDAY.astimezone(UTC).replace(tzinfo=None).isoformat() + "+00:00"
    end = (YESTERDAY + timedelta(hours=2)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    berlin = (YESTERDAY + timedelta(hours=4)).isoformat().replace("+00:00", "+01:00")
    response = api.post(backfill_path(hourly), {"start": start, "end": end}, format="json")
    assert response.json()["data"]["queued"] == 2
    response = api.post(backfill_path(hourly), {"start": end, "end": berlin}, format="json")
    assert response.json()["data"]["slots"] == [iso(YESTERDAY + timedelta(hours=2))]


def test_too_many_slots_are_refused(api, user):
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression="* * * * *")
    start = YESTERDAY
    ok = {"start": iso(start), "end": iso(start + timedelta(minutes=1000))}
    assert api.post(backfill_path(agent), ok, format="json").json()["data"]["queued"] == 1000
    before = rows()
    too_many = {"start": iso(start), "end": iso(start + timedelta(minutes=1001))}
    response = api.post(backfill_path(agent), too_many, format="json")
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["end"]
    assert "more than 1000 slots" in response.json()["error"]
    assert rows() == before


START = iso(YESTERDAY)
END = iso(YESTERDAY + timedelta(hours=3))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"end": END}, "start"),
        ({"start": START}, "end"),
        ({"start": "yesterday", "end": END}, "start"),
        ({"start": START, "end": "2026-13-01T00:00:00Z"}, "end"),
        ({"start": 1700000000, "end": END}, "start"),
        ({"start": START, "end": None}, "end"),
        ({"start": START[:-1], "end": END}, "start"),
        ({"start": START, "end": END[:10]}, "end"),
        ({"start": "0001-01-01T00:00:00+01:00", "end": END}, "start"),
        ({"start": END, "end": START}, "end"),
        ({"start": START, "end": START}, "end"),
        ({"start": START, "end": iso(timezone.now() + timedelta(hours=1))}, "end"),
        ({"start": START, "end": END, "rerun": "true"}, "rerun"),
        ({"start": START, "end": END, "rerun": 0}, "rerun"),
    ],
)
def test_bad_backfill_requests_are_refused_naming_the_field(api, hourly, body, field):
    before = rows()
    response = api.post(backfill_path(hourly), body, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["details"]) == [field]
    assert response.json()["error"].endswith(".")
    assert rows() == before


def test_a_backfill_body_must_be_an_object(api, hourly):
    before = rows()
    response = api.post(backfill_path(hourly), [START, END], format="json")
    assert response.status_code == 400
    assert rows() == before


def test_an_agent_without_a_schedule_cannot_be_backfilled(api, user):
    agent = AgentFactory(owner=user)
    response = api.post(backfill_path(agent), {"start": START, "end": END}, format="json")
    assert response.status_code == 400
    assert "no schedule" in response.json()["error"]
    assert not agent.sessions.exists()


# --- both -------------------------------------------------------------------------

BODIES = {
    "resume": {"policy": "RUN_ALL"},
    "backfill": {"start": START, "end": END},
}


@pytest.mark.parametrize("action", ["resume", "backfill"])
def test_unknown_and_foreign_agents_are_not_found(api, other_user, action):
    foreign = AgentFactory(owner=other_user)
    set_schedule(foreign, expression="0 * * * *")
    set_schedule(foreign, enabled=False)
    before = rows()
    for agent_id in (foreign.pk, "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "not-a-uuid"):
        path = f"/api/agents/{agent_id}/" + ("schedule/resume" if action == "resume" else action)
        response = api.post(path, BODIES[action], format="json")
        assert response.status_code == 404
        assert response.json() == {"success": False, "error": "Agent not found"}
    assert rows() == before


@pytest.mark.parametrize("action", ["resume", "backfill"])
def test_other_methods_are_not_allowed(api, hourly, action):
    path = resume_path(hourly) if action == "resume" else backfill_path(hourly)
    for method in ("get", "put", "patch", "delete"):
        assert getattr(api, method)(path).status_code == 405


@pytest.mark.parametrize("action", ["resume", "backfill"])
def test_both_need_a_token(anonymous, hourly, action):
    path = resume_path(hourly) if action == "resume" else backfill_path(hourly)
    assert anonymous.post(path, BODIES[action], format="json").status_code == 401
