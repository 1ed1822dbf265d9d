"""The run lifecycle's rules, driven directly (no worker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession, Priority
from scheduling import admission, dispatch, pacing, runs
from scheduling.services import set_schedule
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

Status = ExecutionSession.Status


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Admission requests would go to the broker; here the tests admit by hand."""
    sent = []
    monkeypatch.setattr(pacing, "request_admission", lambda: sent.append("admission"))
    monkeypatch.setattr(admission, "_send_executions", lambda admitted: sent.extend(admitted))
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)
    monkeypatch.setattr(pacing, "request_status_broadcast", lambda: None)
    return sent


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 1.0, 1.25), (2, 2.0, 2.5), (3, 4.0, 5.0), (10, 300.0, 300.0), (30, 300.0, 300.0)],
)
def test_backoff_doubles_from_the_base_up_to_the_maximum(attempt, low, high):
    for _ in range(50):
        assert low <= runs.backoff_seconds(attempt) <= high


def test_backoff_follows_the_settings(settings):
    settings.SCHEDULER_BACKOFF_BASE = 10
    settings.SCHEDULER_BACKOFF_MAX = 50
    assert 0.01 <= runs.backoff_seconds(1) <= 0.0125
    assert runs.backoff_seconds(5) == pytest.approx(0.05)


def test_a_dispatch_queues_the_slot_once():
    agent = AgentFactory()
    set_schedule(agent, expression="0 9 * * *")
    slot = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    first = dispatch.dispatch_scheduled_run(str(agent.pk), slot)
    second = dispatch.dispatch_scheduled_run(str(agent.pk), slot)
    assert first is not None and second is None
    assert agent.sessions.get().scheduled_for == slot
    agent.refresh_from_db()
    assert agent.status == AIAgent.Status.QUEUED
    assert agent.next_run_at == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_day_of_month_or_day_of_week_fires_on_either():
    agent = AgentFactory(overlap_policy="BUFFER_ALL")
    set_schedule(agent, expression="0 0 13 * 5")
    friday_the_4th = datetime(2026, 12, 4, tzinfo=UTC)
    sunday_the_13th = datetime(2026, 12, 13, tzinfo=UTC)
    monday_the_7th = datetime(2026, 12, 7, tzinfo=UTC)
    assert dispatch.dispatch_scheduled_run(str(agent.pk), friday_the_4th) is not None
    assert dispatch.dispatch_scheduled_run(str(agent.pk), sunday_the_13th) is not None
    assert dispatch.dispatch_scheduled_run(str(agent.pk), monday_the_7th) is None


def test_the_day_rule_is_read_in_the_schedules_timezone():
    agent = AgentFactory()
    set_schedule(agent, expression="0 0 13 * 5", timezone_name="Asia/Tokyo")
    # 15:00 UTC on Thursday the 12th is midnight of Friday the 13th in Tokyo.
    assert dispatch.dispatch_scheduled_run(str(agent.pk), datetime(2026, 11, 12, 15, tzinfo=UTC))


def test_a_paused_or_removed_schedule_does_not_dispatch():
    agent = AgentFactory()
    set_schedule(agent, expression="@hourly", enabled=False)
    assert dispatch.dispatch_scheduled_run(str(agent.pk), timezone.now()) is None
    assert (
        dispatch.dispatch_scheduled_run("00000000-0000-0000-0000-000000000000", timezone.now())
        is None
    )


def test_admission_fills_free_slots_by_priority_then_age(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 2
    low = SessionFactory(priority=Priority.LOW)
    normal_old = SessionFactory(priority=Priority.NORMAL)
    normal_new = SessionFactory(priority=Priority.NORMAL)
    critical = SessionFactory(priority=Priority.CRITICAL)
    admitted = admission.admit_waiting_runs()
    assert admitted == [str(critical.pk), str(normal_old.pk)]
    assert admission.admit_waiting_runs() == []
    assert ExecutionSession.objects.get(pk=low.pk).status == Status.QUEUED
    assert ExecutionSession.objects.get(pk=normal_new.pk).status == Status.QUEUED


def test_admission_never_starts_an_agent_twice():
    agent = AgentFactory()
    first = SessionFactory(agent=agent)
    SessionFactory(agent=agent)
    assert admission.admit_waiting_runs() == [str(first.pk)]
    assert admission.admit_waiting_runs() == []


def test_admission_waits_for_a_retrys_backoff():
    SessionFactory(not_before=timezone.now() + timedelta(minutes=5))
    assert admission.admit_waiting_runs() == []


def test_a_lost_run_is_reclaimed_failed_and_retried(settings):
    session = SessionFactory(
        status=Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=40),
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert admission.reclaim_lost_runs() == 1
    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert "Worker lost" in session.error_message
    retry = ExecutionSession.objects.get(attempt=2)
    assert retry.trigger == "RETRY" and retry.status == Status.QUEUED
    assert admission.reclaim_lost_runs() == 0


def test_a_run_past_its_time_is_reclaimed_as_timed_out(settings):
    settings.SCHEDULER_RUN_TIMEOUT = 10
    session = SessionFactory(
        status=Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=60),
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    admission.reclaim_lost_runs()
    session.refresh_from_db()
    assert "timed out" in session.error_message


def test_a_live_lease_is_left_alone():
    session = SessionFactory(
        status=Status.RUNNING,
        started_at=timezone.now(),
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )
    assert admission.reclaim_lost_runs() == 0
    assert runs.renew_lease(str(session.pk)) is True


def test_a_finished_session_cannot_be_finished_again():
    session = SessionFactory(status=Status.RUNNING, started_at=timezone.now())
    assert runs.finish_succeeded(str(session.pk), "done") is True
    assert runs.finish_succeeded(str(session.pk), "again") is False
    assert runs.finish_failed(str(session.pk), "late") is False
    assert runs.cancel_session(session) is False


def test_start_run_claims_an_admitted_session_once():
    session = SessionFactory(status=Status.RUNNING)
    assert runs.start_run(str(session.pk), "w1") is not None
    assert runs.start_run(str(session.pk), "w2") is None
    assert runs.start_run("00000000-0000-0000-0000-000000000000", "w3") is None


def test_the_last_failure_leaves_the_agent_in_error(settings):
    settings.SCHEDULER_MAX_RETRIES = 0
    session = SessionFactory(status=Status.RUNNING, started_at=timezone.now())
    runs.finish_failed(str(session.pk), "boom")
    session.agent.refresh_from_db()
    assert session.agent.status == AIAgent.Status.ERROR
    assert session.agent.retry_count == 1
    assert not ExecutionSession.objects.filter(attempt=2).exists()


def test_a_success_clears_the_failures_and_settles_the_agent(settings):
    settings.SCHEDULER_MAX_RETRIES = 0
    failed = SessionFactory(status=Status.RUNNING, started_at=timezone.now())
    runs.finish_failed(str(failed.pk), "boom")
    agent = failed.agent
    waiting = SessionFactory(agent=agent, status=Status.QUEUED)
    session = SessionFactory(agent=agent, status=Status.RUNNING, started_at=timezone.now())
    assert runs.finish_succeeded(str(session.pk), "done") is True
    agent.refresh_from_db()
    assert (agent.retry_count, agent.last_error) == (0, "")
    assert agent.status == AIAgent.Status.QUEUED  # its next run still waits
    runs.cancel_session(waiting)
    agent.refresh_from_db()
    assert agent.status == AIAgent.Status.IDLE  # the latest finished run is the cancelled one
