"""Runs through the real parts: a Celery worker, Redis and the database."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession, Priority
from conftest import client_for
from scheduling.tasks import dispatch_scheduled_run
from tests.factories import AgentFactory, UserFactory
from tests.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

Status = ExecutionSession.Status


def finished(agent: AIAgent, count: int = 1):
    def check():
        sessions = list(agent.sessions.order_by("created_at"))
        done = [s for s in sessions if s.is_finished]
        return sessions if len(done) >= count and len(done) == len(sessions) else None

    return check


def test_run_now_succeeds_with_progress(worker):
    user = UserFactory()
    agent = AgentFactory(
        owner=user, configuration={"steps": 3, "stepSeconds": 0.1, "output": "three steps"}
    )
    api = client_for(user)
    response = api.post(f"/api/agents/{agent.pk}/run")
    assert response.status_code == 202
    data = response.json()["data"]
    assert data["status"] == "QUEUED"

    (session,) = wait_until(finished(agent), what="run finished")
    assert str(session.pk) == data["sessionId"]
    assert session.status == Status.SUCCEEDED
    assert session.success is True
    assert session.progress == 100
    assert session.output_summary == "three steps"
    assert session.trigger == "MANUAL" and session.attempt == 1
    assert session.duration_ms >= 250
    assert session.started_at and session.completed_at
    agent.refresh_from_db()
    assert agent.status == AIAgent.Status.IDLE
    assert agent.last_run_at == session.started_at

    detail = api.get(f"/api/sessions/{session.pk}").json()["data"]
    assert detail["status"] == "SUCCEEDED" and detail["duration"] == session.duration_ms
    history = api.get(f"/api/agents/{agent.pk}/sessions").json()["data"]
    assert history["pagination"]["total"] == 1
    assert history["sessions"][0]["outputSummary"] == "three steps"


def test_a_run_that_fails_once_is_retried_with_its_input_and_succeeds(worker):
    agent = AgentFactory(configuration={"steps": 1, "stepSeconds": 0, "failTimes": 1})
    run_input = {"echo": "spring launch", "topic_id": 7}
    client_for(agent.owner).post(f"/api/agents/{agent.pk}/run", {"input": run_input}, format="json")

    first, second = wait_until(finished(agent, 2), what="retry finished")
    assert (first.status, first.attempt, first.trigger) == (Status.FAILED, 1, "MANUAL")
    assert "failure" in first.error_message
    assert (second.status, second.attempt, second.trigger) == (Status.SUCCEEDED, 2, "RETRY")
    assert first.input == second.input == run_input
    assert second.output_summary == "Demo run finished 1 steps. Echo: spring launch"
    assert second.scheduled_for == first.scheduled_for
    # The backoff (100 ms in this worker) passed between the two attempts.
    assert (second.started_at - first.completed_at).total_seconds() >= 0.1
    agent.refresh_from_db()
    assert agent.retry_count == 0 and agent.last_error == ""
    assert agent.status == AIAgent.Status.IDLE


def test_a_run_that_keeps_failing_stops_after_the_retries_and_marks_the_agent(worker, settings):
    agent = AgentFactory(configuration={"steps": 0, "failTimes": 99})
    client_for(agent.owner).post(f"/api/agents/{agent.pk}/run")

    attempts = 1 + settings.SCHEDULER_MAX_RETRIES
    sessions = wait_until(finished(agent, attempts), what="all attempts")
    time.sleep(0.5)
    sessions = list(agent.sessions.order_by("attempt"))
    assert [s.attempt for s in sessions] == list(range(1, attempts + 1))
    assert all(s.status == Status.FAILED for s in sessions)
    agent.refresh_from_db()
    assert agent.status == AIAgent.Status.ERROR
    assert agent.retry_count == attempts
    assert "Demo failure" in agent.last_error


def test_never_more_than_the_cap_run_at_once_and_all_finish(worker, settings):
    # Runs long enough that all eight are queued before the first ends, on a busy machine too.
    agents = [AgentFactory(configuration={"steps": 2, "stepSeconds": 1.5}) for _ in range(8)]
    for agent in agents:
        client_for(agent.owner).post(f"/api/agents/{agent.pk}/run")

    most_running = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = ExecutionSession.objects.filter(status=Status.RUNNING).count()
        most_running = max(most_running, running)
        if ExecutionSession.objects.filter(status=Status.SUCCEEDED).count() == 8:
            break
        time.sleep(0.02)
    assert ExecutionSession.objects.filter(status=Status.SUCCEEDED).count() == 8
    assert most_running == settings.SCHEDULER_MAX_CONCURRENT


def test_when_saturated_a_critical_run_starts_before_earlier_low_ones(worker, settings):
    blockers = [
        AgentFactory(configuration={"steps": 100, "stepSeconds": 0.1})
        for _ in range(settings.SCHEDULER_MAX_CONCURRENT)
    ]
    blocking_sessions = [
        client_for(agent.owner).post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
        for agent in blockers
    ]
    wait_until(
        lambda: (
            ExecutionSession.objects.filter(status=Status.RUNNING).count()
            == settings.SCHEDULER_MAX_CONCURRENT
        ),
        what="all slots taken",
    )
    low = [AgentFactory(priority=Priority.LOW, configuration={"steps": 0}) for _ in range(3)]
    for agent in low:
        client_for(agent.owner).post(f"/api/agents/{agent.pk}/run")
    critical = AgentFactory(priority=Priority.CRITICAL, configuration={"steps": 0})
    client_for(critical.owner).post(f"/api/agents/{critical.pk}/run")
    # Nothing waiting could start while every slot was held.
    assert not ExecutionSession.objects.filter(started_at__isnull=False, agent__in=low).exists()

    # Free the slots: the waiting runs start in priority order.
    for agent, session_id in zip(blockers, blocking_sessions, strict=True):
        client_for(agent.owner).post(f"/api/sessions/{session_id}/cancel")
    wait_until(
        lambda: ExecutionSession.objects.filter(status=Status.SUCCEEDED).count() == 4,
        what="every waiting run finished",
    )
    critical_start = critical.sessions.get().started_at
    low_starts = [agent.sessions.get().started_at for agent in low]
    assert all(critical_start < start for start in low_starts)


def test_the_same_slot_dispatched_twice_makes_one_session(worker):
    agent = AgentFactory(configuration={"steps": 0})
    from scheduling.services import set_schedule

    set_schedule(agent, expression="* * * * *")
    slot = timezone.now().replace(second=0, microsecond=0).isoformat()
    dispatch_scheduled_run.delay(str(agent.pk), slot)
    dispatch_scheduled_run.delay(str(agent.pk), slot)
    (session,) = wait_until(finished(agent), what="scheduled run finished")
    time.sleep(0.5)
    assert agent.sessions.count() == 1
    assert session.trigger == "SCHEDULE"
    assert session.scheduled_for.isoformat() == slot


def test_cancelling_a_queued_session(worker, settings):
    blockers = [
        AgentFactory(configuration={"steps": 100, "stepSeconds": 0.1})
        for _ in range(settings.SCHEDULER_MAX_CONCURRENT)
    ]
    blocking_sessions = [
        client_for(agent.owner).post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
        for agent in blockers
    ]
    wait_until(
        lambda: (
            ExecutionSession.objects.filter(status=Status.RUNNING).count()
            == settings.SCHEDULER_MAX_CONCURRENT
        ),
        what="all slots taken",
    )
    waiting = AgentFactory(configuration={"steps": 0})
    api = client_for(waiting.owner)
    session_id = api.post(f"/api/agents/{waiting.pk}/run").json()["data"]["sessionId"]
    response = api.post(f"/api/sessions/{session_id}/cancel")
    assert response.status_code == 200
    assert response.json()["data"]["status"] in {"CANCELLED"}
    for agent, blocking in zip(blockers, blocking_sessions, strict=True):
        client_for(agent.owner).post(f"/api/sessions/{blocking}/cancel")
    time.sleep(1)
    session = ExecutionSession.objects.get(pk=session_id)
    assert session.status == Status.CANCELLED and session.started_at is None


def test_cancelling_a_running_session_stops_it(worker):
    agent = AgentFactory(configuration={"steps": 10, "stepSeconds": 1})
    api = client_for(agent.owner)
    session_id = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=session_id, started_at__isnull=False).exists(),
        what="run started",
    )
    response = api.post(f"/api/sessions/{session_id}/cancel")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "CANCELLED"
    session = ExecutionSession.objects.get(pk=session_id)
    assert session.status == Status.CANCELLED
    assert session.progress < 100
    # The slot is free again: the agent can run at once.
    second = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=second, started_at__isnull=False).exists(),
        what="second run started",
    )
    api.post(f"/api/sessions/{second}/cancel")
    agent.refresh_from_db()
    assert agent.status == AIAgent.Status.IDLE
