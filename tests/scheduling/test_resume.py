"""Resuming a paused schedule with a policy, and snoozes that end, driven directly."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent, AuditEntry, ExecutionSession
from scheduling import pacing, resume
from scheduling.models import ScheduleSlot
from scheduling.services import NoSchedule, ScheduleFieldError, set_schedule
from scheduling.tasks import tick
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

Outcome = ScheduleSlot.Outcome
PAUSED_AT = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 15, tzinfo=UTC)
MISSED = [datetime(2026, 3, 1, hour, tzinfo=UTC) for hour in (9, 10, 11, 12)]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    asked = []
    monkeypatch.setattr(pacing, "request_admission", lambda: asked.append("admission"))
    return asked


def paused_agent(expression: str = "0 * * * *", paused_at: datetime | None = PAUSED_AT):
    agent = AgentFactory()
    set_schedule(agent, expression=expression)
    set_schedule(agent, enabled=False)
    AIAgent.objects.filter(pk=agent.pk).update(paused_at=paused_at)
    agent.refresh_from_db()
    return agent


def slot_sessions(agent):
    return list(agent.sessions.order_by("created_at"))


@pytest.mark.parametrize(
    ("policy", "runs"),
    [("SKIP_MISSED", []), ("RUN_LATEST", MISSED[-1:]), ("RUN_ALL", MISSED)],
)
def test_each_policy_runs_its_missed_slots_and_enables_the_schedule(policy, runs):
    agent = paused_agent()
    result = resume.resume_schedule(agent, policy=policy, now=NOW)
    assert result == resume.Resumed(runs, True)
    sessions = slot_sessions(agent)
    assert [s.scheduled_for for s in sessions] == runs
    for session in sessions:
        assert (session.trigger, session.attempt, session.rerun) == ("SCHEDULE", 1, 0)
        assert session.status == "QUEUED" and session.owner_id == agent.owner_id
        assert session.priority == agent.priority
    ledger = ScheduleSlot.objects.filter(agent=agent).order_by("scheduled_for")
    assert [(row.scheduled_for, row.outcome, row.session_id) for row in ledger] == [
        (s.scheduled_for, Outcome.QUEUED, s.pk) for s in sessions
    ]
    assert {row.reason for row in ledger} <= {f"Run on resume ({policy})."}
    agent.refresh_from_db()
    assert agent.schedule_enabled and agent.paused_at is None and agent.next_run_at
    assert PeriodicTask.objects.get(pk=agent.periodic_task_id).enabled
    assert agent.status == ("QUEUED" if runs else "IDLE")


def test_runs_are_admitted_oldest_slot_first(django_capture_on_commit_callbacks, no_broker):
    agent = paused_agent()
    with django_capture_on_commit_callbacks(execute=True):
        resume.resume_schedule(agent, policy="RUN_ALL", now=NOW)
    assert no_broker == ["admission"]
    sessions = slot_sessions(agent)
    assert [s.scheduled_for for s in sessions] == MISSED
    created = [s.created_at for s in sessions]
    assert created == sorted(set(created))


def test_run_all_runs_the_most_recent_hundred_slots():
    agent = paused_agent("* * * * *", paused_at=NOW - timedelta(days=3))
    result = resume.resume_schedule(agent, policy="RUN_ALL", now=NOW)
    assert len(result.runs) == 100
    assert result.runs[0] == datetime(2026, 3, 1, 10, 36, tzinfo=UTC)
    assert result.runs[-1] == NOW
    assert agent.sessions.count() == 100


def test_the_missed_slots_are_after_the_pause_and_up_to_now():
    agent = paused_agent(paused_at=MISSED[0])
    assert resume.resume_schedule(agent, policy="RUN_ALL", now=MISSED[-1]).runs == MISSED[1:]


def test_a_pause_of_unknown_start_missed_nothing():
    agent = paused_agent(paused_at=None)
    assert resume.resume_schedule(agent, policy="RUN_ALL", now=NOW) == resume.Resumed([], True)
    assert not agent.sessions.exists()
    agent.refresh_from_db()
    assert agent.schedule_enabled


def test_slots_already_recorded_or_run_are_left_alone():
    agent = paused_agent()
    ScheduleSlot.objects.create(
        agent=agent, scheduled_for=MISSED[0], outcome=Outcome.MISSED, reason="Beat was down."
    )
    earlier = SessionFactory(agent=agent, trigger="SCHEDULE", scheduled_for=MISSED[1])
    manual = SessionFactory(agent=agent, trigger="MANUAL", scheduled_for=MISSED[2])
    result = resume.resume_schedule(agent, policy="RUN_ALL", now=NOW)
    assert result.runs == MISSED[2:]
    assert ScheduleSlot.objects.get(scheduled_for=MISSED[0]).outcome == Outcome.MISSED
    assert set(agent.sessions.filter(scheduled_for=MISSED[1])) == {earlier}
    assert agent.sessions.filter(scheduled_for=MISSED[2]).exclude(pk=manual.pk).count() == 1


def test_run_latest_runs_nothing_when_the_latest_slot_already_ran():
    agent = paused_agent()
    SessionFactory(agent=agent, trigger="BACKFILL", scheduled_for=MISSED[-1])
    assert resume.resume_schedule(agent, policy="RUN_LATEST", now=NOW).runs == []


def test_a_dry_run_says_what_would_run_and_changes_nothing():
    agent = paused_agent()
    before = AIAgent.objects.filter(pk=agent.pk).values().get()
    result = resume.resume_schedule(agent, policy="RUN_ALL", dry_run=True, now=NOW)
    assert result == resume.Resumed(MISSED, False)
    assert AIAgent.objects.filter(pk=agent.pk).values().get() == before
    assert not agent.sessions.exists() and not ScheduleSlot.objects.exists()
    assert resume.resume_schedule(agent, policy="RUN_ALL", now=NOW).runs == result.runs


def test_resuming_an_enabled_schedule_changes_nothing():
    agent = AgentFactory()
    set_schedule(agent, expression="0 * * * *")
    before = AIAgent.objects.filter(pk=agent.pk).values().get()
    for dry_run in (True, False):
        result = resume.resume_schedule(agent, policy="RUN_ALL", dry_run=dry_run, now=NOW)
        assert result == resume.Resumed([], True)
    assert AIAgent.objects.filter(pk=agent.pk).values().get() == before
    assert not agent.sessions.exists()


def test_an_agent_without_a_schedule_cannot_be_resumed():
    agent = AgentFactory()
    with pytest.raises(NoSchedule):
        resume.resume_schedule(agent, policy="RUN_ALL")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"policy": "RUN_SOME"}, "policy"),
        ({"policy": None}, "policy"),
        ({"policy": "run_all"}, "policy"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"dry_run": 1}, "dry_run"),
    ],
)
def test_bad_values_are_refused_naming_the_field(changes, field):
    agent = paused_agent()
    with pytest.raises(ScheduleFieldError) as refused:
        resume.resume_schedule(agent, **{"policy": "RUN_ALL", **changes}, now=NOW)
    assert refused.value.field == field
    agent.refresh_from_db()
    assert not agent.schedule_enabled and not agent.sessions.exists()


def test_enabling_by_patch_runs_no_missed_slot():
    agent = paused_agent()
    set_schedule(agent, enabled=True)
    assert not agent.sessions.exists()
    agent.refresh_from_db()
    assert agent.paused_at is None


# --- snoozes ----------------------------------------------------------------------


def snoozed_agent(until: datetime):
    agent = AgentFactory()
    set_schedule(agent, expression="* * * * *")
    set_schedule(agent, paused_until=timezone.now() + timedelta(hours=1), pause_note="Quiet.")
    AIAgent.objects.filter(pk=agent.pk).update(paused_until=until)
    return agent


def test_a_snooze_that_ended_resumes_the_schedule_and_skips_the_missed_slots(caplog):
    now = timezone.now()
    ended = snoozed_agent(now - timedelta(minutes=5))
    later = snoozed_agent(now + timedelta(minutes=5))
    with caplog.at_level(logging.INFO, logger="scheduling.resume"):
        assert resume.end_snoozes(now=now) == [ended.pk]
    ended.refresh_from_db()
    assert ended.schedule_enabled and ended.next_run_at > now
    assert (ended.paused_until, ended.paused_at, ended.pause_note) == (None, None, "")
    assert PeriodicTask.objects.get(pk=ended.periodic_task_id).enabled
    assert not ended.sessions.exists()
    later.refresh_from_db()
    assert not later.schedule_enabled and later.paused_until
    assert (
        f"Schedule of agent {ended.pk} ({ended.name}) resumed by the system: its snooze ended"
        in caplog.messages
    )


def test_the_end_of_a_snooze_is_the_systems_entry_in_the_audit_trail():
    now = timezone.now()
    agent = snoozed_agent(now - timedelta(minutes=5))
    resume.end_snoozes(now=now)
    entry = AuditEntry.objects.filter(agent_id=agent.pk).order_by("-at", "-id").first()
    assert (entry.source, entry.actor_name, entry.actor_id, entry.action) == (
        "SYSTEM",
        "system",
        None,
        "schedule.snooze_ended",
    )
    assert entry.changes["scheduleEnabled"] == [False, True]
    assert entry.changes["pauseNote"] == ["Quiet.", ""]
    assert entry.changes["pausedUntil"][1] is None


def test_the_beat_tick_ends_snoozes():
    agent = snoozed_agent(timezone.now() - timedelta(seconds=1))
    tick()
    agent.refresh_from_db()
    assert agent.schedule_enabled and agent.paused_until is None


def test_a_snooze_whose_schedule_cannot_run_is_dropped_not_retried(caplog):
    agent = snoozed_agent(timezone.now() - timedelta(seconds=1))
    AIAgent.objects.filter(pk=agent.pk).update(schedule_expression="not cron")
    assert resume.end_snoozes() == []
    agent.refresh_from_db()
    assert agent.paused_until is None and not agent.schedule_enabled
    assert "cannot run" in caplog.text


def test_ending_snoozes_reads_nothing_but_the_snoozed(django_assert_num_queries):
    AgentFactory.create_batch(3)
    with django_assert_num_queries(1):
        assert resume.end_snoozes() == []


def test_runs_of_a_resumed_schedule_keep_their_trigger_through_the_ledger():
    agent = paused_agent()
    resume.resume_schedule(agent, policy="RUN_LATEST", now=NOW)
    session = agent.sessions.get()
    assert session.trigger == ExecutionSession.Trigger.SCHEDULE
    assert ScheduleSlot.objects.get(session=session).outcome == Outcome.QUEUED
