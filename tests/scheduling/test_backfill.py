"""Backfill of a schedule's past slots, driven directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession
from scheduling import pacing
from scheduling.backfill import MAX_BACKFILL_SLOTS, Backfilled, backfill
from scheduling.models import ScheduleSlot
from scheduling.services import NoSchedule, ScheduleFieldError, set_schedule
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

Outcome = ScheduleSlot.Outcome
Status = ExecutionSession.Status
NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
DAY = datetime(2026, 3, 1, tzinfo=UTC)
HOURS = [DAY + timedelta(hours=hour) for hour in range(24)]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    asked = []
    monkeypatch.setattr(pacing, "request_admission", lambda: asked.append("admission"))
    return asked


@pytest.fixture
def agent():
    agent = AgentFactory()
    set_schedule(agent, expression="0 * * * *")
    return agent


def run_day(agent, **options):
    return backfill(agent, start=DAY, end=DAY + timedelta(days=1), now=NOW, **options)


def ledger(agent):
    return {
        row.scheduled_for: row for row in ScheduleSlot.objects.filter(agent=agent).order_by("pk")
    }


def test_every_slot_in_the_range_gets_a_backfill_run_oldest_first(
    agent, django_capture_on_commit_callbacks, no_broker
):
    with django_capture_on_commit_callbacks(execute=True):
        result = run_day(agent)
    assert result == Backfilled(HOURS, 0)
    assert no_broker == ["admission"]
    sessions = list(agent.sessions.order_by("created_at"))
    assert [s.scheduled_for for s in sessions] == HOURS
    assert len({s.created_at for s in sessions}) == 24
    for session in sessions:
        assert (session.trigger, session.attempt, session.rerun) == ("BACKFILL", 1, 0)
        assert (session.status, session.not_before) == (Status.QUEUED, NOW)
        assert (session.owner_id, session.priority) == (agent.owner_id, agent.priority)
    rows = ledger(agent)
    assert sorted(rows) == HOURS
    for session in sessions:
        row = rows[session.scheduled_for]
        assert (row.outcome, row.session_id) == (Outcome.BACKFILL, session.pk)
        assert row.reason == "Backfilled on request."
    agent.refresh_from_db()
    assert agent.status == AIAgent.Status.QUEUED


def test_the_range_includes_its_start_and_excludes_its_end(agent):
    result = backfill(agent, start=HOURS[3], end=HOURS[6], now=NOW)
    assert result.slots == HOURS[3:6]
    inner = backfill(agent, start=HOURS[6] + timedelta(seconds=1), end=HOURS[8], now=NOW)
    assert inner.slots == [HOURS[7]]


def test_slots_in_the_schedules_own_zone_and_dst_policy():
    agent = AgentFactory()
    set_schedule(agent, expression="30 2 * * *", timezone_name="Europe/Berlin")
    start = datetime(2026, 3, 28, tzinfo=UTC)
    result = backfill(agent, start=start, end=start + timedelta(days=3), now=NOW + timedelta(30))
    # 02:30 does not exist on 29 March in Berlin: that day's run is at the gap's end.
    assert result.slots == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]


def test_slots_that_already_had_a_run_are_skipped(agent):
    ran = SessionFactory(agent=agent, trigger="SCHEDULE", scheduled_for=HOURS[0])
    ScheduleSlot.objects.create(
        agent=agent, scheduled_for=HOURS[0], outcome=Outcome.RAN, session=ran, reason="Ran."
    )
    # A run queued before the ledger was kept counts as well.
    SessionFactory(agent=agent, trigger="SCHEDULE", scheduled_for=HOURS[1], status="SUCCEEDED")
    failed = SessionFactory(agent=agent, trigger="BACKFILL", scheduled_for=HOURS[2])
    SessionFactory(agent=agent, trigger="RETRY", attempt=2, scheduled_for=HOURS[2])
    failed.status = "FAILED"
    failed.save()
    # A manual run is no run of the slot, even at the same moment.
    SessionFactory(agent=agent, trigger="MANUAL", scheduled_for=HOURS[3])
    result = run_day(agent)
    assert result.skipped == 3
    assert result.slots == HOURS[3:]
    rows = ledger(agent)
    assert (rows[HOURS[0]].outcome, rows[HOURS[0]].session_id) == (Outcome.RAN, ran.pk)
    assert HOURS[1] not in rows and HOURS[2] not in rows


def test_ledger_rows_without_a_run_become_backfill_rows(agent):
    for hour, outcome in [(0, Outcome.MISSED), (1, Outcome.SKIPPED)]:
        ScheduleSlot.objects.create(
            agent=agent, scheduled_for=HOURS[hour], outcome=outcome, reason="Earlier."
        )
    cancelled = SessionFactory(
        agent=agent, trigger="SCHEDULE", scheduled_for=HOURS[2], status="CANCELLED"
    )
    ScheduleSlot.objects.create(
        agent=agent,
        scheduled_for=HOURS[2],
        outcome=Outcome.CANCELLED,
        session=cancelled,
        reason="Cancelled before it started.",
    )
    result = run_day(agent)
    assert result == Backfilled(HOURS, 0)
    rows = ledger(agent)
    for hour in range(3):
        row = rows[HOURS[hour]]
        session = ExecutionSession.objects.get(pk=row.session_id)
        assert (row.outcome, row.reason) == (Outcome.BACKFILL, "Backfilled on request.")
        assert (session.trigger, session.scheduled_for) == ("BACKFILL", HOURS[hour])
    # The cancelled run keeps its (slot, rerun, attempt): the new one takes the next rerun.
    assert ExecutionSession.objects.get(pk=rows[HOURS[2]].session_id).rerun == 1
    assert ScheduleSlot.objects.filter(agent=agent).count() == 24


def test_a_rerun_runs_the_slots_again_clear_of_the_earlier_runs_and_their_retries(agent):
    first = SessionFactory(agent=agent, trigger="SCHEDULE", scheduled_for=HOURS[0], status="FAILED")
    SessionFactory(
        agent=agent, trigger="RETRY", attempt=2, scheduled_for=HOURS[0], status="SUCCEEDED"
    )
    ScheduleSlot.objects.create(
        agent=agent, scheduled_for=HOURS[0], outcome=Outcome.RAN, session=first, reason="Ran."
    )
    result = backfill(agent, start=HOURS[0], end=HOURS[2], rerun=True, now=NOW)
    assert result == Backfilled(HOURS[:2], 0)
    again = agent.sessions.get(trigger="BACKFILL", scheduled_for=HOURS[0])
    assert (again.rerun, again.attempt) == (1, 1)
    assert agent.sessions.get(trigger="BACKFILL", scheduled_for=HOURS[1]).rerun == 0
    row = ledger(agent)[HOURS[0]]
    assert (row.outcome, row.session_id) == (Outcome.BACKFILL, again.pk)
    assert row.reason == "Run again on request (rerun 1)."

    # The rerun's own retry shares its number; the next rerun goes past it.
    SessionFactory(agent=agent, trigger="RETRY", attempt=2, rerun=1, scheduled_for=HOURS[0])
    backfill(agent, start=HOURS[0], end=HOURS[1], rerun=True, now=NOW)
    assert agent.sessions.filter(scheduled_for=HOURS[0]).order_by("-rerun")[0].rerun == 2
    assert agent.sessions.filter(scheduled_for=HOURS[0]).count() == 5


def test_a_backfill_without_rerun_twice_queues_once(agent):
    assert len(run_day(agent).slots) == 24
    assert run_day(agent) == Backfilled([], 24)
    assert agent.sessions.count() == 24


def test_a_paused_schedule_can_be_backfilled(agent):
    set_schedule(agent, enabled=False)
    assert len(run_day(agent).slots) == 24


def test_at_most_a_thousand_slots():
    agent = AgentFactory()
    set_schedule(agent, expression="* * * * *")
    end = DAY + timedelta(minutes=MAX_BACKFILL_SLOTS)
    with pytest.raises(ScheduleFieldError) as refused:
        backfill(agent, start=DAY, end=end + timedelta(minutes=1), now=NOW)
    assert refused.value.field == "end" and "more than 1000 slots" in str(refused.value)
    assert not agent.sessions.exists()
    assert len(backfill(agent, start=DAY, end=end, now=NOW).slots) == MAX_BACKFILL_SLOTS


def test_a_long_range_of_a_sparse_schedule_is_walked_to_its_end():
    agent = AgentFactory()
    set_schedule(agent, expression="0 0 29 2 *")
    result = backfill(agent, start=datetime(1, 1, 3, tzinfo=UTC), end=timezone.now())
    assert len(result.slots) == 491 and result.slots[0].year == 4


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"start": datetime(2026, 3, 1)}, "start"),
        ({"end": datetime(2026, 3, 2)}, "end"),
        ({"start": "2026-03-01T00:00:00Z"}, "start"),
        ({"end": DAY}, "end"),
        ({"end": DAY - timedelta(hours=1)}, "end"),
        ({"end": NOW + timedelta(seconds=1)}, "end"),
        ({"rerun": "yes"}, "rerun"),
        ({"rerun": 1}, "rerun"),
    ],
)
def test_bad_values_are_refused_naming_the_field(agent, values, field):
    with pytest.raises(ScheduleFieldError) as refused:
        backfill(agent, **{"start": DAY, "end": DAY + timedelta(days=1), **values}, now=NOW)
    assert refused.value.field == field
    assert not agent.sessions.exists() and not ScheduleSlot.objects.exists()


def test_an_agent_without_a_schedule_cannot_be_backfilled():
    with pytest.raises(NoSchedule):
        run_day(AgentFactory())
