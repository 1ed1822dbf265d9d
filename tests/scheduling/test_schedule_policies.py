"""Overlap and catch-up policies, jitter and the slot ledger, as beat applies them.

Beat's own scheduler runs in-process on an injected clock (see conftest.py),
so a test can step through minutes; the integration tests run the queued
runs on a real worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent, ExecutionSession
from scheduling import admission, runs
from scheduling.dispatch import ActiveRun, dispatch_due_slots, overlap_decision
from scheduling.models import ScheduleSlot
from scheduling.services import set_schedule
from scheduling.slots import jitter_delay
from tests.factories import AgentFactory
from tests.processes import wait_until
from tests.scheduling.conftest import T0, Clock, at_once_in_two_threads

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def scheduled(expression: str = "* * * * *", *, since=T0, **fields) -> AIAgent:
    """An agent scheduled half an hour before ``since``."""
    agent = set_schedule(AgentFactory(), expression=expression, **fields)
    edited = since - MINUTE * 30
    PeriodicTask.objects.filter(pk=agent.periodic_task_id).update(date_changed=edited)
    AIAgent.objects.filter(pk=agent.pk).update(updated_at=edited)
    return agent


def ledger(agent: AIAgent) -> list[tuple]:
    return list(
        ScheduleSlot.objects.filter(agent=agent)
        .order_by("scheduled_for")
        .values_list("scheduled_for", "outcome")
    )


def sessions(agent: AIAgent, **filters) -> list[ExecutionSession]:
    return list(ExecutionSession.objects.filter(agent=agent, **filters).order_by("scheduled_for"))


# --- the overlap decision ------------------------------------------------------------------


def active(minutes: int, status: str = "QUEUED", attempt: int = 1) -> ActiveRun:
    import uuid

    return ActiveRun(uuid.uuid4(), T0 + MINUTE * minutes, status, attempt)


@pytest.mark.parametrize(
    ("policy", "runs_before", "queues"),
    [
        ("SKIP", [], True),
        ("SKIP", [active(0, "RUNNING")], False),
        ("SKIP", [active(0)], False),
        ("BUFFER_ONE", [active(0, "RUNNING")], True),
        # A retry in its backoff is the earlier slot's run still going.
        ("BUFFER_ONE", [active(0, "QUEUED", attempt=2)], True),
        ("BUFFER_ONE", [active(0, "RUNNING"), active(1)], False),
        ("BUFFER_ONE", [active(0)], False),
        ("BUFFER_ALL", [active(0, "RUNNING"), active(1), active(2)], True),
        ("CANCEL_OTHER", [active(0, "RUNNING"), active(1)], True),
    ],
)
def test_each_overlap_policy_decides_from_the_runs_still_queued_or_running(
    policy, runs_before, queues
):
    decision = overlap_decision(policy, T0 + MINUTE * 5, runs_before)
    assert decision.queue is queues
    assert decision.reason.endswith(".")
    if runs_before and policy != "BUFFER_ALL":
        assert policy in decision.reason
    expected_cancels = (
        {run.session_id for run in runs_before} if policy == "CANCEL_OTHER" else set()
    )
    assert set(decision.cancel) == expected_cancels


# --- overlap through the bulk dispatch -----------------------------------------------------


def test_skip_records_the_slot_skipped_while_the_previous_run_is_running():
    agent = scheduled(overlap_policy="SKIP")
    [first] = dispatch_due_slots({T0: [agent.pk]})
    assert first.queued == 1
    ExecutionSession.objects.filter(agent=agent).update(status="RUNNING")
    [second] = dispatch_due_slots({T0 + MINUTE: [agent.pk]})
    assert (second.queued, second.overlapped) == (0, 1)
    assert ledger(agent) == [(T0, "QUEUED"), (T0 + MINUTE, "SKIPPED")]
    skipped = ScheduleSlot.objects.get(agent=agent, scheduled_for=T0 + MINUTE)
    assert skipped.session_id is None
    assert "still running" in skipped.reason and "2030-01-15 12:00 UTC" in skipped.reason


def test_buffer_one_keeps_one_slot_waiting_and_drops_the_next():
    agent = scheduled()  # BUFFER_ONE is the default
    dispatch_due_slots({T0: [agent.pk]})
    ExecutionSession.objects.filter(agent=agent).update(status="RUNNING")
    dispatch_due_slots({T0 + MINUTE: [agent.pk]})
    dispatch_due_slots({T0 + MINUTE * 2: [agent.pk]})
    assert ledger(agent) == [
        (T0, "QUEUED"),
        (T0 + MINUTE, "QUEUED"),
        (T0 + MINUTE * 2, "SKIPPED"),
    ]
    assert len(sessions(agent)) == 2


def test_buffer_all_queues_every_slot():
    agent = scheduled(overlap_policy="BUFFER_ALL")
    for minute in range(4):
        dispatch_due_slots({T0 + MINUTE * minute: [agent.pk]})
    assert [outcome for _, outcome in ledger(agent)] == ["QUEUED"] * 4
    assert len(sessions(agent, status="QUEUED")) == 4


def test_cancel_other_cancels_the_waiting_run_and_queues_the_new_slot(
    django_capture_on_commit_callbacks,
):
    agent = scheduled(overlap_policy="CANCEL_OTHER")
    dispatch_due_slots({T0: [agent.pk]})
    with django_capture_on_commit_callbacks():
        dispatch_due_slots({T0 + MINUTE: [agent.pk]})
    old, new = sessions(agent)
    assert old.status == "CANCELLED"
    assert "CANCEL_OTHER" in old.error_message
    assert new.status == "QUEUED"
    assert ledger(agent) == [(T0, "CANCELLED"), (T0 + MINUTE, "QUEUED")]


def test_a_retry_in_its_backoff_counts_as_its_slots_run_under_skip():
    agent = scheduled(overlap_policy="SKIP")
    dispatch_due_slots({T0: [agent.pk]})
    ExecutionSession.objects.filter(agent=agent).update(status="FAILED")
    runs.queue_run(agent, trigger="RETRY", scheduled_for=T0, attempt=2)
    dispatch_due_slots({T0 + MINUTE: [agent.pk]})
    assert ledger(agent)[-1] == (T0 + MINUTE, "SKIPPED")


def test_manual_runs_ignore_the_policy_but_count_as_running_for_the_next_slot():
    agent = scheduled(overlap_policy="SKIP")
    runs.run_now(agent)
    runs.run_now(agent)
    assert len(sessions(agent, trigger="MANUAL")) == 2
    dispatch_due_slots({T0: [agent.pk]})
    assert ledger(agent) == [(T0, "SKIPPED")]


def test_the_slot_becomes_ran_when_its_run_starts_and_cancelled_if_cancelled_before():
    ran = scheduled()
    cancelled = scheduled()
    dispatch_due_slots({T0: [ran.pk, cancelled.pk]})
    [admitted] = ExecutionSession.objects.filter(agent=ran)
    ExecutionSession.objects.filter(pk=admitted.pk).update(status="RUNNING")
    runs.start_run(str(admitted.pk), "worker")
    runs.cancel_session(ExecutionSession.objects.get(agent=cancelled))
    assert ledger(ran) == [(T0, "RAN")]
    assert ledger(cancelled) == [(T0, "CANCELLED")]
    row = ScheduleSlot.objects.get(agent=cancelled)
    assert row.reason == "Cancelled before its run started."


# --- a cancelled run holds its slot until its runner stops ---------------------------------


def test_a_cancelled_run_keeps_its_agent_busy_until_its_runner_has_stopped(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 5
    agent = scheduled(overlap_policy="CANCEL_OTHER")
    # Slots that have passed: a run never starts before its slot.
    slot = timezone.now().replace(second=0, microsecond=0) - MINUTE * 5
    dispatch_due_slots({slot: [agent.pk]})
    [first] = sessions(agent)
    assert admission.admit_waiting_runs() == [str(first.pk)]
    assert runs.start_run(str(first.pk), "worker") is not None
    dispatch_due_slots({slot + MINUTE: [agent.pk]})
    first.refresh_from_db()
    assert first.status == "CANCELLED" and first.lease_expires_at is not None
    # The runner has not noticed yet: the new slot waits.
    assert admission.admit_waiting_runs() == []
    runs.runner_stopped(str(first.pk))
    [second] = sessions(agent, status="QUEUED")
    assert admission.admit_waiting_runs() == [str(second.pk)]


# --- catch-up ------------------------------------------------------------------------------


def restart_after_downtime(make_scheduler, agent: AIAgent, minutes_down: int) -> Clock:
    """Beat fires 12:00, stops, and a new beat starts ``minutes_down`` minutes later."""
    clock = Clock(T0 + timedelta(seconds=1))
    make_scheduler(clock).tick_agents()
    assert ledger(agent)[0] == (T0, "QUEUED")
    ExecutionSession.objects.filter(agent=agent).update(status="SUCCEEDED")
    clock.now = T0 + MINUTE * minutes_down + timedelta(seconds=1)
    make_scheduler(clock).tick_agents()
    return clock


def test_catchup_latest_runs_the_most_recent_missed_slot_and_records_the_rest(make_scheduler):
    agent = scheduled("*/2 * * * *")
    restart_after_downtime(make_scheduler, agent, minutes_down=9)
    # 12:02 to 12:08 were missed; 12:08 is a minute old, within the default window.
    assert ledger(agent) == [
        (T0, "QUEUED"),
        *((T0 + MINUTE * m, "MISSED") for m in (2, 4, 6)),
        (T0 + MINUTE * 8, "QUEUED"),
    ]
    reasons = dict(
        ScheduleSlot.objects.filter(agent=agent, outcome="MISSED").values_list(
            "scheduled_for", "reason"
        )
    )
    # 12:02 is seven minutes old, beyond the 300 s window; 12:04 and 12:06 lost to the policy.
    assert "beyond the catch-up window of 300 s" in reasons[T0 + MINUTE * 2]
    assert (
        "LATEST" in reasons[T0 + MINUTE * 6] and "2030-01-15 12:08 UTC" in reasons[T0 + MINUTE * 6]
    )


def test_catchup_all_runs_each_missed_slot_in_the_window_oldest_first(make_scheduler):
    agent = scheduled(
        "* * * * *", catchup_policy="ALL", catchup_window=240, overlap_policy="BUFFER_ALL"
    )
    restart_after_downtime(make_scheduler, agent, minutes_down=10)
    outcomes = dict(ledger(agent))
    fired = [T0 + MINUTE * m for m in range(7, 11)]  # at most 240 s old at 12:10:01
    assert [s.scheduled_for for s in sessions(agent)] == [T0, *fired]
    assert all(outcomes[slot] == "QUEUED" for slot in fired)
    assert [outcomes[T0 + MINUTE * m] for m in range(1, 7)] == ["MISSED"] * 6
    reason = ScheduleSlot.objects.get(agent=agent, scheduled_for=T0 + MINUTE).reason
    assert "catch-up window of 240 s" in reason
    # Oldest first: admission takes them in the order they were queued.
    created = [s.created_at for s in sessions(agent)]
    assert created == sorted(created)


def test_catchup_all_runs_at_most_a_hundred_slots(make_scheduler):
    agent = scheduled(
        "* * * * *", catchup_policy="ALL", catchup_window=86_400, overlap_policy="BUFFER_ALL"
    )
    restart_after_downtime(make_scheduler, agent, minutes_down=150)
    assert ExecutionSession.objects.filter(agent=agent).count() == 1 + 100
    missed = ScheduleSlot.objects.filter(agent=agent, outcome="MISSED")
    assert missed.count() > 0
    assert all("at most 100" in row.reason for row in missed)


def test_catchup_none_runs_only_the_slot_that_is_on_time(make_scheduler):
    agent = scheduled("* * * * *", catchup_policy="NONE")
    restart_after_downtime(make_scheduler, agent, minutes_down=5)
    assert ledger(agent) == [
        (T0, "QUEUED"),
        *((T0 + MINUTE * m, "MISSED") for m in range(1, 5)),
        (T0 + MINUTE * 5, "QUEUED"),  # due a second ago: on time, not missed
    ]
    assert all(
        "NONE" in row.reason for row in ScheduleSlot.objects.filter(agent=agent, outcome="MISSED")
    )


def test_a_long_stall_of_a_running_beat_follows_the_policy_too(make_scheduler):
    agent = scheduled("* * * * *", catchup_policy="NONE")
    clock = Clock(T0 + timedelta(seconds=1))
    scheduler = make_scheduler(clock)
    scheduler.tick_agents()
    ExecutionSession.objects.filter(agent=agent).update(status="SUCCEEDED")
    clock.now = T0 + MINUTE * 3 + timedelta(seconds=30)  # stuck for three and a half minutes
    scheduler.tick_agents()
    assert ledger(agent) == [
        (T0, "QUEUED"),
        *((T0 + MINUTE * m, "MISSED") for m in (1, 2)),
        (T0 + MINUTE * 3, "QUEUED"),
    ]
    assert agent.periodic_task_id is not None
    task = PeriodicTask.objects.get(pk=agent.periodic_task_id)
    assert task.last_run_at == T0 + MINUTE * 3


def test_a_restarted_beat_without_a_last_run_only_looks_back_over_the_window(make_scheduler):
    agent = scheduled("* * * * *")
    clock = Clock(T0 + MINUTE * 20 + timedelta(seconds=1))
    make_scheduler(clock).tick_agents()
    # Nothing says what happened before this beat: nothing is invented.
    assert ledger(agent) == [(T0 + MINUTE * 20, "QUEUED")]


def test_slots_of_a_beat_restart_are_recorded_once(make_scheduler):
    agent = scheduled("* * * * *")
    clock = restart_after_downtime(make_scheduler, agent, minutes_down=4)
    before = ledger(agent)
    # A second beat, started at the same moment, finds every slot decided.
    make_scheduler(clock).tick_agents()
    assert ledger(agent) == before
    assert len(sessions(agent)) == 2


# --- jitter --------------------------------------------------------------------------------


def test_jitter_is_a_pure_function_of_agent_and_slot_within_its_range():
    agent_id = "2b1f5c1e-1111-4a0b-9d0c-2f7d1c0e9a01"
    delays = [jitter_delay(agent_id, T0 + MINUTE * m, 30) for m in range(200)]
    assert all(timedelta(0) <= delay < timedelta(seconds=30) for delay in delays)
    assert len(set(delays)) > 100  # spread, not one fixed offset
    assert delays == [jitter_delay(agent_id, T0 + MINUTE * m, 30) for m in range(200)]
    assert jitter_delay(agent_id, T0, 0) == timedelta(0)


def test_jitter_delays_the_start_not_the_slot(make_scheduler):
    agent = scheduled("* * * * *", jitter_seconds=600)
    make_scheduler(Clock(T0 + timedelta(seconds=1))).tick_agents()
    [session] = sessions(agent)
    assert session.scheduled_for == T0
    assert session.not_before == T0 + jitter_delay(agent.pk, T0, 600)
    assert ledger(agent) == [(T0, "QUEUED")]
    agent.refresh_from_db()
    assert agent.next_run_at == T0 + MINUTE  # the planned slot, not the delayed start


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_beats_dispatching_a_jittered_slot_at_once_agree_and_record_it_once(monkeypatch):
    monkeypatch.setattr("scheduling.pacing.request_admission", lambda: None)
    agents = [scheduled("0 * * * *", jitter_seconds=300) for _ in range(20)]
    slot = T0 + timedelta(hours=1)
    at_once_in_two_threads(lambda: dispatch_due_slots({slot: [agent.pk for agent in agents]}))
    for agent in agents:
        [session] = sessions(agent)
        assert session.not_before == slot + jitter_delay(agent.pk, slot, 300)
        assert ledger(agent) == [(slot, "QUEUED")]
        assert ScheduleSlot.objects.get(agent=agent).session_id == session.pk


# --- on a real worker ----------------------------------------------------------------------


def slow_agent(policy: str, since) -> AIAgent:
    agent = scheduled("* * * * *", since=since, overlap_policy=policy)
    # Twenty half-second steps: long enough to still be running a minute of
    # beat's clock later, short enough for a test.
    AIAgent.objects.filter(pk=agent.pk).update(configuration={"steps": 20, "stepSeconds": 0.5})
    return agent


def past_minute():
    """Beat's clock for tests on a worker: slots that have passed, so their runs may start."""
    return timezone.now().replace(second=0, microsecond=0) - MINUTE * 10


def tick_at(scheduler_clock: Clock, scheduler, base, minutes: int) -> None:
    scheduler_clock.now = base + MINUTE * minutes + timedelta(seconds=1)
    scheduler.tick_agents()


def running(agent: AIAgent) -> ExecutionSession:
    return wait_until(
        lambda: (
            ExecutionSession.objects.filter(agent=agent, status="RUNNING")
            .exclude(started_at=None)
            .first()
        ),
        timeout=30,
        what="a running session",
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("policy", "outcomes"),
    [
        ("SKIP", ["RAN", "SKIPPED", "SKIPPED"]),
        ("BUFFER_ONE", ["RAN", "QUEUED", "SKIPPED"]),
        ("BUFFER_ALL", ["RAN", "QUEUED", "QUEUED"]),
    ],
)
def test_overlap_policies_with_a_slow_run_on_a_real_worker(
    worker, make_scheduler, policy, outcomes
):
    base = past_minute()
    agent = slow_agent(policy, base)
    clock = Clock(base)
    scheduler = make_scheduler(clock)
    tick_at(clock, scheduler, base, 0)
    first = running(agent)
    tick_at(clock, scheduler, base, 1)
    tick_at(clock, scheduler, base, 2)
    assert [outcome for _, outcome in ledger(agent)] == outcomes
    runs.cancel_session(first)  # the rest of the test is not about finishing


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cancel_other_stops_the_running_run_and_starts_the_new_slot_after_it(
    worker, make_scheduler
):
    base = past_minute()
    agent = slow_agent("CANCEL_OTHER", base)
    clock = Clock(base)
    scheduler = make_scheduler(clock)
    tick_at(clock, scheduler, base, 0)
    first = running(agent)
    tick_at(clock, scheduler, base, 1)
    second = wait_until(
        lambda: (
            ExecutionSession.objects.filter(agent=agent, scheduled_for=base + MINUTE)
            .exclude(started_at=None)
            .first()
        ),
        timeout=30,
        what="the new slot's run",
    )
    first.refresh_from_db()
    assert first.status == "CANCELLED"
    assert first.error_message.startswith("Cancelled by the slot of ")
    # The runner saw the cancellation and stopped (it released its lease) before
    # the new run was admitted, and the runner stopped well before its twenty steps.
    assert first.lease_expires_at is None
    assert second.started_at >= first.completed_at
    assert first.progress < 100
    assert ledger(agent) == [(base, "RAN"), (base + MINUTE, "RAN")]
    runs.cancel_session(second)
