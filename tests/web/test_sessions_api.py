from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from agents.models import ExecutionSession
from scheduling import pacing, runs
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)


def test_run_now_queues_a_manual_session(api, user):
    agent = AgentFactory(owner=user)
    response = api.post(f"/api/agents/{agent.pk}/run")
    assert response.status_code == 202
    data = response.json()["data"]
    assert data["status"] == "QUEUED"
    session = ExecutionSession.objects.get(pk=data["sessionId"])
    assert session.trigger == "MANUAL" and session.attempt == 1
    assert api.post(f"/api/agents/{agent.pk}/run/").status_code == 202


def test_run_now_of_a_foreign_agent_is_not_found(api, other_user):
    agent = AgentFactory(owner=other_user)
    assert api.post(f"/api/agents/{agent.pk}/run").status_code == 404
    assert not ExecutionSession.objects.exists()


def test_run_now_rejects_get(api, user):
    agent = AgentFactory(owner=user)
    assert api.get(f"/api/agents/{agent.pk}/run").status_code == 405


def test_history_lists_newest_first_with_all_fields(api, user):
    agent = AgentFactory(owner=user)
    older = SessionFactory(agent=agent)
    newer = SessionFactory(agent=agent)
    response = api.get(f"/api/agents/{agent.pk}/sessions")
    assert response.status_code == 200
    data = response.json()["data"]
    assert [s["id"] for s in data["sessions"]] == [str(newer.pk), str(older.pk)]
    assert data["pagination"] == {"total": 2, "limit": 20, "offset": 0, "next": None}
    assert set(data["sessions"][0]) >= {
        "id",
        "agentId",
        "status",
        "trigger",
        "attempt",
        "scheduledFor",
        "startedAt",
        "completedAt",
        "success",
        "duration",
        "outputSummary",
        "errorMessage",
        "progress",
    }


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "offset=-3", "offset=1.5"])
def test_history_rejects_bad_pagination(api, user, query):
    agent = AgentFactory(owner=user)
    response = api.get(f"/api/agents/{agent.pk}/sessions?{query}")
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_history_pages(api, user):
    agent = AgentFactory(owner=user)
    for _ in range(3):
        SessionFactory(agent=agent)
    data = api.get(f"/api/agents/{agent.pk}/sessions/?limit=2&offset=2").json()["data"]
    assert len(data["sessions"]) == 1 and data["pagination"]["limit"] == 2


def test_history_of_a_foreign_agent_is_not_found(api, other_user):
    agent = AgentFactory(owner=other_user)
    SessionFactory(agent=agent)
    assert api.get(f"/api/agents/{agent.pk}/sessions").status_code == 404


def test_session_detail(api, user):
    session = SessionFactory(agent=AgentFactory(owner=user))
    response = api.get(f"/api/sessions/{session.pk}")
    assert response.status_code == 200
    assert response.json()["data"]["agentId"] == str(session.agent_id)
    assert api.get(f"/api/sessions/{session.pk}/").status_code == 200


@pytest.mark.parametrize("session_id", ["nope", str(uuid.uuid4())])
def test_unknown_sessions_are_not_found(api, session_id):
    response = api.get(f"/api/sessions/{session_id}")
    assert response.status_code == 404
    assert response.json()["error"] == "Session not found"


def test_a_foreign_session_is_not_found(api, other_user):
    session = SessionFactory(agent=AgentFactory(owner=other_user))
    assert api.get(f"/api/sessions/{session.pk}").status_code == 404
    assert api.post(f"/api/sessions/{session.pk}/cancel").status_code == 404
    assert ExecutionSession.objects.get(pk=session.pk).status == "QUEUED"


def test_cancelling_a_queued_session(api, user):
    session = SessionFactory(agent=AgentFactory(owner=user))
    response = api.post(f"/api/sessions/{session.pk}/cancel")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "CANCELLED" and data["success"] is False
    assert api.post(f"/api/sessions/{session.pk}/cancel/").status_code == 400


def test_cancelling_a_running_session_records_its_duration(api, user):
    session = SessionFactory(
        agent=AgentFactory(owner=user), status="RUNNING", started_at=timezone.now()
    )
    data = api.post(f"/api/sessions/{session.pk}/cancel").json()["data"]
    assert data["status"] == "CANCELLED" and data["duration"] is not None


def test_cancel_rejects_get(api, user):
    session = SessionFactory(agent=AgentFactory(owner=user))
    assert api.get(f"/api/sessions/{session.pk}/cancel").status_code == 405


def test_staff_see_any_session(staff_user, other_user):
    from conftest import client_for

    session = SessionFactory(agent=AgentFactory(owner=other_user))
    assert client_for(staff_user).get(f"/api/sessions/{session.pk}").status_code == 200
