"""Retention: which finished sessions and ledger rows go, and that nothing else does."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from agents.models import (
    AgentSessionCount,
    AIAgent,
    ExecutionSession,
    RunRequestKey,
    SessionLogLine,
)
from neonhub.settings import daily_at
from scheduling import tasks
from scheduling.models import ScheduleSlot
from scheduling.retention import prune_sessions
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

Status = ExecutionSession.Status
Outcome = ScheduleSlot.Outcome
NOW = timezone.now()


def session(agent: AIAgent, *, days_old: float, status: str = Status.SUCCEEDED, **fields):
    created = NOW - timedelta(days=days_old)
    made = SessionFactory(agent=agent, status=status, scheduled_for=created, **fields)
    # created_at is stamped on insert; the history orders by it.
    ExecutionSession.objects.filter(pk=made.pk).update(created_at=created)
    return made


def slot(agent: AIAgent, *, days_old: float, outcome: str, run=None) -> ScheduleSlot:
    return ScheduleSlot.objects.create(
        agent=agent,
        scheduled_for=(NOW - timedelta(days=days_old)).replace(second=0, microsecond=0),
        outcome=outcome,
        session=run,
        reason="Test.",
    )


def left(agent: AIAgent) -> set:
    return set(agent.sessions.values_list("pk", flat=True))


def assert_counts_exact() -> None:
    for agent in AIAgent.objects.all():
        stored = AgentSessionCount.objects.filter(agent=agent).values_list("total", flat=True)
        assert next(iter(stored), 0) == agent.sessions.count()


def test_finished_sessions_past_the_age_go_and_unfinished_ones_never():
    agent = AgentFactory()
    old_done = [
        session(agent, days_old=100, status=status)
        for status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    ]
    old_queued = session(agent, days_old=100, status=Status.QUEUED)
    old_running = session(
        agent, days_old=100, status=Status.RUNNING, lease_expires_at=NOW + timedelta(seconds=30)
    )
    # Cancelled while running: its runner has not stopped and still holds a slot.
    stopping = session(
        agent, days_old=100, status=Status.CANCELLED, lease_expires_at=NOW + timedelta(seconds=30)
    )
    recent = session(agent, days_old=89)

    result = prune_sessions(now=NOW, days=90, per_agent=0)

    assert (result.by_age, result.by_count, result.agents) == (3, 0, {agent.pk})
    assert left(agent) == {old_queued.pk, old_running.pk, stopping.pk, recent.pk}
    assert not ExecutionSession.objects.filter(pk__in=[s.pk for s in old_done]).exists()
    assert_counts_exact()


def test_an_agent_keeps_its_newest_sessions_whatever_their_status():
    agent = AgentFactory()
    other = AgentFactory()
    runs = [session(agent, days_old=days) for days in (9, 8, 7, 6, 5)]
    waiting = session(agent, days_old=1, status=Status.QUEUED)
    others = {session(other, days_old=days).pk for days in (9, 8)}

    result = prune_sessions(now=NOW, days=0, per_agent=3)

    # The newest three are the queued run and the two newest finished ones.
    assert left(agent) == {waiting.pk, runs[3].pk, runs[4].pk}
    assert (result.by_age, result.by_count) == (0, 3)
    assert left(other) == others
    assert_counts_exact()


def test_sessions_created_in_the_same_instant_are_cut_by_the_history_order():
    agent = AgentFactory()
    made = [session(agent, days_old=3) for _ in range(4)]
    prune_sessions(now=NOW, days=0, per_agent=2)
    newest = sorted(made, key=lambda s: s.pk, reverse=True)[:2]
    assert left(agent) == {s.pk for s in newest}


def test_ledger_rows_go_with_their_sessions_and_unrun_slots_with_age():
    agent = AgentFactory()
    old_run = session(agent, days_old=100, trigger=ExecutionSession.Trigger.SCHEDULE)
    kept_run = session(agent, days_old=10, trigger=ExecutionSession.Trigger.SCHEDULE)
    slot(agent, days_old=100, outcome=Outcome.RAN, run=old_run)
    kept_ran = slot(agent, days_old=10, outcome=Outcome.RAN, run=kept_run)
    slot(agent, days_old=95, outcome=Outcome.SKIPPED)
    slot(agent, days_old=91, outcome=Outcome.MISSED)
    kept_missed = slot(agent, days_old=80, outcome=Outcome.MISSED)

    result = prune_sessions(now=NOW, days=90, per_agent=0)

    assert result.slots == 3
    assert set(ScheduleSlot.objects.values_list("pk", flat=True)) == {
        kept_ran.pk,
        kept_missed.pk,
    }


def test_a_pruned_session_takes_its_log_and_its_request_key_with_it():
    agent = AgentFactory()
    old = session(agent, days_old=100)
    kept = session(agent, days_old=1)
    for run in (old, kept):
        SessionLogLine.objects.create(session=run, seq=1, at=run.created_at, message="hello")
        RunRequestKey.objects.create(agent=agent, key=f"key-{run.pk}", session=run)

    prune_sessions(now=NOW, days=90, per_agent=0)

    assert set(SessionLogLine.objects.values_list("session_id", flat=True)) == {kept.pk}
    assert set(RunRequestKey.objects.values_list("session_id", flat=True)) == {kept.pk}


def test_a_dry_run_changes_nothing_and_says_what_the_real_run_then_does():
    agent = AgentFactory()
    for days in (120, 100, 50, 40, 30, 20, 10):
        run = session(agent, days_old=days, trigger=ExecutionSession.Trigger.SCHEDULE)
        slot(agent, days_old=days, outcome=Outcome.RAN, run=run)
    slot(agent, days_old=200, outcome=Outcome.SKIPPED)
    before = (left(agent), set(ScheduleSlot.objects.values_list("pk", flat=True)))

    planned = prune_sessions(now=NOW, days=90, per_agent=3, dry_run=True)

    assert (left(agent), set(ScheduleSlot.objects.values_list("pk", flat=True))) == before
    done = prune_sessions(now=NOW, days=90, per_agent=3)
    assert (planned.by_age, planned.by_count, planned.slots) == (2, 2, 5)
    assert (done.by_age, done.by_count, done.slots) == (2, 2, 5)
    assert agent.sessions.count() == 3
    assert_counts_exact()


def test_a_backlog_larger_than_a_batch_is_deleted_in_several():
    agent = AgentFactory()
    for days in range(100, 111):
        session(agent, days_old=days)
    result = prune_sessions(now=NOW, days=90, per_agent=0, batch_size=4)
    assert result.by_age == 11 and not agent.sessions.exists()
    assert_counts_exact()


def test_zero_turns_both_rules_off():
    agent = AgentFactory()
    for days in (400, 300, 200):
        session(agent, days_old=days)
    assert prune_sessions(now=NOW, days=0, per_agent=0).sessions == 0
    assert agent.sessions.count() == 3


def test_the_settings_are_the_defaults(settings):
    settings.SESSION_RETENTION_DAYS = 30
    settings.SESSION_RETENTION_PER_AGENT = 1
    agent = AgentFactory()
    session(agent, days_old=31)
    session(agent, days_old=5)
    newest = session(agent, days_old=1)
    assert tasks.prune_sessions() == 2
    assert left(agent) == {newest.pk}


def test_the_command_says_what_it_deleted_or_would_delete():
    agent = AgentFactory()
    for days in (100, 2, 1):
        session(agent, days_old=days)
    out = io.StringIO()
    call_command("prune_sessions", "--dry-run", "--per-agent", "1", stdout=out)
    assert out.getvalue().strip() == (
        "Would delete 2 finished sessions of 1 agents (1 by age, 1 beyond the per-agent cap) "
        "and 0 ledger rows."
    )
    assert agent.sessions.count() == 3
    out = io.StringIO()
    call_command("prune_sessions", "--per-agent", "1", stdout=out)
    assert out.getvalue().startswith("Deleted 2 finished sessions of 1 agents")
    assert agent.sessions.count() == 1


@pytest.mark.parametrize("option", ["--days", "--per-agent"])
def test_the_command_refuses_a_negative_rule(option):
    SessionFactory()
    with pytest.raises(CommandError, match=f"{option} must be 0 or more"):
        call_command("prune_sessions", option, "-1")
    assert ExecutionSession.objects.count() == 1


def test_beat_prunes_daily_at_the_set_time():
    entry = settings.CELERY_BEAT_SCHEDULE["neonhub-prune-sessions"]
    assert entry["task"] == "scheduling.prune_sessions"
    assert entry["schedule"] == crontab(hour=3, minute=30)
    assert daily_at("X", " 7:05 ") == crontab(hour=7, minute=5)


@pytest.mark.parametrize("value", ["", "24:00", "3:60", "03.30", "noon", "3"])
def test_a_prune_time_that_is_not_hh_mm_stops_the_process(value):
    with pytest.raises(ImproperlyConfigured, match="SESSION_RETENTION_AT must be a time of day"):
        daily_at("SESSION_RETENTION_AT", value)
