"""Beat's own scheduler, driven through its tick with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from agents.models import AIAgent, ExecutionSession
from observability.heartbeats import BEAT_HEARTBEAT_KEY
from scheduling import beat as beat_module
from scheduling import dispatch, pacing
from scheduling.dispatch import dispatch_due_slots
from scheduling.models import ScheduleSlot
from scheduling.services import remove_schedule, set_schedule
from tests.factories import AgentFactory
from tests.scheduling.conftest import T0, at_once_in_two_threads

pytestmark = pytest.mark.django_db


def scheduled(expression: str, timezone_name: str = "UTC", **fields) -> AIAgent:
    # No worker runs here, so runs stay queued: every slot queues its own
    # (the overlap policies have tests of their own).
    fields.setdefault("overlap_policy", "BUFFER_ALL")
    agent = set_schedule(AgentFactory(**fields), expression=expression, timezone_name=timezone_name)
    stamp(agent, timezone.now() - timedelta(days=30))
    return agent


def stamp(agent: AIAgent, moment: datetime) -> None:
    """Date the agent's last edit, as if it had been made at ``moment``."""
    AIAgent.objects.filter(pk=agent.pk).update(updated_at=moment)
    PeriodicTask.objects.filter(pk=agent.periodic_task_id).update(date_changed=moment)


def slots(agent: AIAgent) -> list[datetime]:
    return list(
        ExecutionSession.objects.filter(agent=agent)
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
    )


def test_an_every_minute_schedule_fires_each_slot_once(clock, make_scheduler):
    agent = scheduled("* * * * *")
    scheduler = make_scheduler(clock)
    for _ in range(6):  # 12:00:01 to 12:01:41
        scheduler.tick_agents()
        clock.advance(seconds=20)
    # Beat starts a second into 12:00 and fires that slot too.
    assert slots(agent) == [T0, T0 + timedelta(minutes=1)]
    session = ExecutionSession.objects.get(agent=agent, scheduled_for=T0)
    assert (session.status, session.trigger, session.attempt) == ("QUEUED", "SCHEDULE", 1)
    agent.refresh_from_db()
    assert agent.status == "QUEUED"
    assert agent.next_run_at == T0 + timedelta(minutes=2)


def test_tick_asks_to_be_woken_at_the_next_slot(clock, make_scheduler, settings):
    settings.SCHEDULER_CHECK_INTERVAL = 60_000
    scheduled("30 12 * * *")
    scheduler = make_scheduler(clock)
    clock.now = T0 + timedelta(minutes=29, seconds=58)
    assert scheduler.tick_agents() == pytest.approx(2.0)


def test_every_agent_due_in_a_slot_is_queued_with_a_constant_number_of_queries(
    clock, make_scheduler
):
    def queries_to_fire(count: int, minute: int) -> int:
        agents = [scheduled(f"{minute} 12 * * *") for _ in range(count)]
        scheduler = make_scheduler(clock)
        scheduler.tick_agents()
        clock.now = T0 + timedelta(minutes=minute)
        with CaptureQueriesContext(connection) as queries:
            scheduler.tick_agents()
        assert all(len(slots(agent)) == 1 for agent in agents)
        return len(queries)

    assert queries_to_fire(3, 5) == queries_to_fire(40, 6)


def test_a_second_beat_does_not_queue_a_slot_twice(clock, make_scheduler):
    agents = [scheduled("*/5 * * * *") for _ in range(5)]
    first, second = make_scheduler(clock), make_scheduler(clock)
    clock.now = T0 + timedelta(minutes=5, seconds=1)
    first.tick_agents()
    second.tick_agents()
    assert all(slots(agent) == [T0 + timedelta(minutes=5)] for agent in agents)
    assert first.agents.stats.runs_queued == 5
    assert second.agents.stats.runs_queued == 0


def test_the_bulk_dispatch_and_the_per_agent_task_share_the_uniqueness_rule():
    from scheduling.dispatch import dispatch_scheduled_run

    agent = scheduled("0 * * * *")
    slot = T0 + timedelta(hours=1)
    assert dispatch_scheduled_run(str(agent.pk), slot) is not None
    [result] = dispatch_due_slots({slot: [agent.pk]})
    assert (result.queued, result.duplicates, result.skipped) == (0, 1, 0)
    [again] = dispatch_due_slots({slot + timedelta(hours=1): [agent.pk]})
    assert again.queued == 1
    assert len(slots(agent)) == 2


def test_the_bulk_dispatch_leaves_agents_whose_schedule_changed_alone():
    moved = scheduled("0 * * * *")
    paused = scheduled("0 * * * *")
    kept = scheduled("0 * * * *")
    set_schedule(moved, expression="30 * * * *")
    set_schedule(paused, enabled=False)
    [result] = dispatch_due_slots({T0: [moved.pk, paused.pk, kept.pk]})
    assert (result.queued, result.skipped) == (1, 2)
    assert slots(kept) == [T0] and slots(moved) == [] and slots(paused) == []


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_beats_dispatching_the_same_slot_at_once_record_it_once(monkeypatch):
    monkeypatch.setattr("scheduling.pacing.request_admission", lambda: None)
    agents = [scheduled("0 * * * *") for _ in range(30)]
    slot = T0 + timedelta(hours=1)
    both = at_once_in_two_threads(
        lambda: dispatch_due_slots({slot: [agent.pk for agent in agents]})
    )
    results = [result for batch in both for result in batch]
    assert sum(result.queued for result in results) == 30
    assert sum(result.duplicates for result in results) == 30
    assert ExecutionSession.objects.filter(scheduled_for=slot).count() == 30


def test_an_edit_reaches_the_index_without_reading_the_other_rows(clock, make_scheduler, settings):
    agents = [scheduled("0 9 * * *") for _ in range(25)]
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    stats = scheduler.agents.stats
    assert stats.rows_read == 25

    set_schedule(agents[3], expression="15 12 * * *")
    clock.advance(milliseconds=settings.SCHEDULER_CHECK_INTERVAL)
    scheduler.tick_agents()
    assert stats.rows_read == 26
    assert scheduler.agents.index.due(agents[3].periodic_task_id) == T0 + timedelta(minutes=15)
    assert scheduler.agents.index.due(agents[4].periodic_task_id) == T0 + timedelta(hours=21)

    clock.now = T0 + timedelta(minutes=15)
    scheduler.tick_agents()
    assert slots(agents[3]) == [T0 + timedelta(minutes=15)]


def test_an_expression_edit_that_keeps_the_crontab_is_seen_through_the_agent(
    clock, make_scheduler, settings
):
    agent = scheduled("0 9 13 * 5")
    task_before = PeriodicTask.objects.get(pk=agent.periodic_task_id).date_changed
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    # Both expressions widen to the crontab "0 9 * * *": no beat row changes.
    set_schedule(agent, expression="0 9 1 * 1")
    assert PeriodicTask.objects.get(pk=agent.periodic_task_id).date_changed == task_before
    clock.advance(milliseconds=settings.SCHEDULER_CHECK_INTERVAL)
    scheduler.tick_agents()
    spec = scheduler.agents.index.spec(agent.periodic_task_id)
    assert spec.expression == "0 9 1 * 1"
    # 2030-01-15 is a Tuesday: the next match is Monday the 21st.
    assert scheduler.agents.index.due(agent.periodic_task_id) == datetime(
        2030, 1, 21, 9, tzinfo=UTC
    )


def test_a_beat_admin_crontab_edit_reaches_the_index(clock, make_scheduler, settings):
    agent = scheduled("0 9 * * *", "Europe/Berlin")
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    crontab = CrontabSchedule.objects.get(periodictask__id=agent.periodic_task_id)
    crontab.minute, crontab.hour = "45", "13"
    crontab.save()
    clock.advance(milliseconds=settings.SCHEDULER_CHECK_INTERVAL)
    scheduler.tick_agents()
    # 13:45 in Berlin (CET, UTC+1) is 12:45 UTC.
    assert scheduler.agents.index.due(agent.periodic_task_id) == T0 + timedelta(minutes=45)


def test_pausing_removing_and_bulk_toggling_entries_reach_the_index(
    clock, make_scheduler, settings
):
    settings.SCHEDULER_CATCHUP_SECONDS = 60
    paused, removed, toggled, kept = (scheduled("*/10 * * * *") for _ in range(4))
    clock.now = T0 + timedelta(minutes=2)  # the 12:00 slot is too old to catch up
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    set_schedule(paused, enabled=False)
    remove_schedule(AIAgent.objects.get(pk=removed.pk))
    # The beat admin's "disable selected" action: a plain update, then a change stamp.
    PeriodicTask.objects.filter(pk=toggled.periodic_task_id).update(enabled=False)
    PeriodicTasks.update_changed()
    clock.advance(milliseconds=settings.SCHEDULER_CHECK_INTERVAL)
    scheduler.tick_agents()
    assert set(scheduler.agents.index.keys()) == {kept.periodic_task_id}

    PeriodicTask.objects.filter(pk=toggled.periodic_task_id).update(enabled=True)
    PeriodicTasks.update_changed()
    clock.now = T0 + timedelta(minutes=10)
    scheduler.tick_agents()
    assert slots(toggled) == slots(kept) == [T0 + timedelta(minutes=10)]
    assert slots(paused) == slots(removed) == []


def test_a_schedule_created_just_before_its_slot_fires_that_slot(clock, make_scheduler):
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    clock.now = T0 + timedelta(minutes=4, seconds=58)
    agent = set_schedule(AgentFactory(), expression="5 12 * * *")
    stamp(agent, clock.now)
    # Beat only looks again after the slot has begun.
    clock.now = T0 + timedelta(minutes=5, seconds=1)
    scheduler.tick_agents()
    assert slots(agent) == [T0 + timedelta(minutes=5)]


def test_a_schedule_created_after_its_slot_waits_for_the_next_one(clock, make_scheduler):
    agent = set_schedule(AgentFactory(), expression="0 12 * * *")
    stamp(agent, T0 + timedelta(seconds=20))
    clock.now = T0 + timedelta(seconds=30)
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    assert slots(agent) == []
    assert scheduler.agents.index.due(agent.periodic_task_id) == T0 + timedelta(days=1)


def test_after_downtime_the_latest_missed_slot_fires_once_if_recent(
    clock, make_scheduler, settings
):
    settings.SCHEDULER_CATCHUP_SECONDS = 300
    every_minute = scheduled("* * * * *")
    hourly = scheduled("0 * * * *")
    daily = scheduled("0 11 * * *")
    # Beat comes back at 12:03:30: 12:03 is 30 s old, 12:00 is 3.5 min old,
    # 11:00 an hour old.
    clock.now = T0 + timedelta(minutes=3, seconds=30)
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    assert slots(every_minute) == [T0 + timedelta(minutes=3)]
    assert slots(hourly) == [T0]
    assert slots(daily) == []
    assert scheduler.agents.index.due(daily.periodic_task_id) == T0 + timedelta(hours=23)


def test_a_beat_stalled_past_the_window_skips_the_missed_slots(clock, make_scheduler, settings):
    settings.SCHEDULER_CATCHUP_SECONDS = 120
    agent = scheduled("*/5 * * * *")
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    assert slots(agent) == [T0]  # 1 s old at start-up
    # Stuck from 12:00:01 to 12:13:00: 12:10 is 3 min old, beyond the window.
    clock.now = T0 + timedelta(minutes=13)
    scheduler.tick_agents()
    assert slots(agent) == [T0]
    # 12:05 and 12:10, each recorded in the ledger with why.
    assert scheduler.agents.stats.runs_skipped == 2
    missed = ScheduleSlot.objects.filter(agent=agent, outcome="MISSED").order_by("scheduled_for")
    assert [row.scheduled_for for row in missed] == [T0 + timedelta(minutes=5 * n) for n in (1, 2)]
    assert all("beyond the catch-up window of 120 s" in row.reason for row in missed)
    clock.now = T0 + timedelta(minutes=15)
    scheduler.tick_agents()
    assert slots(agent) == [T0, T0 + timedelta(minutes=15)]


def test_a_database_error_costs_a_tick_and_the_slot_fires_on_the_next(
    clock, make_scheduler, monkeypatch
):
    agent = scheduled("5 12 * * *")
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    real = beat_module.dispatch_due_slots
    calls = []

    def failing_once(due, missed=None):
        calls.append(due)
        if len(calls) == 1:
            raise OperationalError("connection lost")
        return real(due, missed)

    monkeypatch.setattr(beat_module, "dispatch_due_slots", failing_once)
    clock.now = T0 + timedelta(minutes=5)
    assert scheduler.tick_agents() == beat_module.RETRY_AFTER_ERROR
    assert slots(agent) == []
    clock.advance(seconds=1)
    scheduler.tick()
    assert slots(agent) == [T0 + timedelta(minutes=5)]


def test_a_failing_refresh_does_not_stop_beat(clock, make_scheduler, monkeypatch):
    scheduler = make_scheduler(clock)

    def broken(now):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(scheduler.agents, "refresh", broken)
    assert scheduler.tick_agents() == beat_module.RETRY_AFTER_ERROR
    assert scheduler.tick() <= beat_module.RETRY_AFTER_ERROR


def test_a_broker_outage_does_not_stop_the_dispatch(
    clock, make_scheduler, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError as BrokerError

    from scheduling import pacing

    def refuse(*args, **kwargs):
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(pacing, "send_task", refuse)
    agent = scheduled("5 12 * * *")
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    clock.now = T0 + timedelta(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        scheduler.tick()
    assert slots(agent) == [T0 + timedelta(minutes=5)]


def test_every_tick_records_the_heartbeat(clock, make_scheduler):
    from core.redis import get_redis

    get_redis().delete(BEAT_HEARTBEAT_KEY)
    make_scheduler(clock).tick()
    assert get_redis().get(BEAT_HEARTBEAT_KEY) is not None


def test_other_entries_are_left_to_database_scheduler(clock, make_scheduler):
    agent = scheduled("* * * * *")
    operator_entry = PeriodicTask.objects.create(
        name="operator: cleanup",
        task="scheduling.tick",
        crontab=CrontabSchedule.objects.create(minute="*"),
    )
    scheduler = make_scheduler(clock)
    names = set(scheduler.schedule)
    assert {"neonhub-scheduler-tick", "neonhub-scheduler-status", operator_entry.name} <= names
    assert f"agent:{agent.pk}" not in names
    scheduler.tick()
    assert scheduler.agents.index.spec(agent.periodic_task_id) is not None


def test_an_agent_entry_without_an_agent_is_left_to_database_scheduler(clock, make_scheduler):
    orphan = PeriodicTask.objects.create(
        name="agent:00000000-0000-0000-0000-000000000000",
        task="scheduling.dispatch_scheduled_run",
        crontab=CrontabSchedule.objects.create(minute="*"),
        args='["00000000-0000-0000-0000-000000000000"]',
    )
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    assert orphan.name in scheduler.schedule
    assert orphan.pk not in scheduler.agents.index


def test_cron_day_rule_is_followed_natively(clock, make_scheduler):
    # The 13th or a Friday, 09:00 UTC; beat's crontab row says every day.
    agent = scheduled("0 9 13 * 5")
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    end = datetime(2030, 2, 20, tzinfo=UTC)
    for _ in range(100):
        due = scheduler.agents.index.next_due() or end
        if due >= end:
            break
        clock.now = due
        scheduler.tick_agents()
    fired = slots(agent)
    assert [moment.day for moment in fired] == [18, 25, 1, 8, 13, 15]
    assert all(moment.hour == 9 for moment in fired)


def test_a_schedule_agents_cannot_use_is_skipped_not_fatal(clock, make_scheduler):
    agent = scheduled("0 9 * * *")
    CrontabSchedule.objects.filter(periodictask__id=agent.periodic_task_id).update(minute="L")
    AIAgent.objects.filter(pk=agent.pk).update(schedule_expression=None)
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    assert agent.periodic_task_id not in scheduler.agents.index


def test_the_full_check_catches_writes_that_bypass_the_change_stamps(clock, make_scheduler):
    agent = scheduled("0 9 * * *")
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    CrontabSchedule.objects.filter(periodictask__id=agent.periodic_task_id).update(hour="10")
    AIAgent.objects.filter(pk=agent.pk).update(schedule_expression="0 10 * * *")
    clock.advance(minutes=6)
    scheduler.tick_agents()
    assert scheduler.agents.index.spec(agent.periodic_task_id).expression == "0 10 * * *"
    assert scheduler.agents.stats.full_checks == 2


def test_a_large_slot_is_written_in_batches_highest_priority_first(
    monkeypatch, django_capture_on_commit_callbacks
):

    monkeypatch.setattr(dispatch, "_dispatch_batch", lambda: 2)
    asked = []
    monkeypatch.setattr(pacing, "request_admission", lambda: asked.append(1))
    agents = [scheduled("0 * * * *", priority=priority) for priority in (1, 2, 4, 3, 2)]
    with django_capture_on_commit_callbacks(execute=True):
        [result] = dispatch_due_slots({T0: [agent.pk for agent in agents]})
    assert (result.queued, result.duplicates, result.skipped) == (5, 0, 0)
    assert asked == [1]
    first_batch = ExecutionSession.objects.order_by("created_at")[:2]
    assert sorted(session.priority for session in first_batch) == [3, 4]
    assert AIAgent.objects.filter(status="QUEUED").count() == 5
