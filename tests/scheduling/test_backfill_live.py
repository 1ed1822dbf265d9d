"""Backfilled runs through a real worker, Redis and the database."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agents.models import ExecutionSession
from conftest import client_for
from core.dates import iso
from scheduling.models import ScheduleSlot
from scheduling.services import set_schedule
from tests.factories import AgentFactory, SessionFactory
from tests.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

Status = ExecutionSession.Status
Outcome = ScheduleSlot.Outcome


def all_finished(agent, count: int):
    def check():
        sessions = list(agent.sessions.order_by("started_at"))
        done = [s for s in sessions if s.is_finished]
        return sessions if len(sessions) >= count and len(done) == len(sessions) else None

    return check


def yesterday():
    return (timezone.now() - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def test_a_day_of_an_hourly_schedule_is_backfilled_oldest_first_keeping_its_runs(worker):
    agent = AgentFactory(configuration={"steps": 1, "stepSeconds": 0})
    set_schedule(agent, expression="0 * * * *")
    day = yesterday()
    hours = [day + timedelta(hours=hour) for hour in range(24)]
    kept = SessionFactory(
        agent=agent,
        trigger="SCHEDULE",
        scheduled_for=hours[7],
        status=Status.SUCCEEDED,
        started_at=hours[7],
        completed_at=hours[7],
    )
    ScheduleSlot.objects.create(
        agent=agent, scheduled_for=hours[7], outcome=Outcome.RAN, session=kept, reason="Ran."
    )
    ScheduleSlot.objects.create(
        agent=agent, scheduled_for=hours[8], outcome=Outcome.MISSED, reason="No beat ran."
    )

    response = client_for(agent.owner).post(
        f"/api/agents/{agent.pk}/backfill",
        {"start": iso(day), "end": iso(day + timedelta(days=1))},
        format="json",
    )
    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert (data["queued"], data["skipped"]) == (23, 1)
    assert data["slots"] == [iso(hour) for hour in hours if hour != hours[7]]

    sessions = wait_until(all_finished(agent, 24), timeout=120, what="the backfilled runs")
    backfilled = [s for s in sessions if s.trigger == "BACKFILL"]
    assert len(sessions) == 24 and len(backfilled) == 23
    assert {s.status for s in sessions} == {Status.SUCCEEDED}
    # One run of an agent at a time, admitted oldest slot first.
    assert [s.scheduled_for for s in backfilled] == [parse_datetime(t) for t in data["slots"]]
    for earlier, later in pairwise(backfilled):
        assert earlier.completed_at <= later.started_at
    kept.refresh_from_db()
    assert kept.status == Status.SUCCEEDED
    ledger = {row.scheduled_for: row for row in ScheduleSlot.objects.filter(agent=agent)}
    assert sorted(ledger) == hours
    assert ledger[hours[7]].session_id == kept.pk and ledger[hours[7]].outcome == Outcome.RAN
    assert {ledger[s.scheduled_for].session_id for s in backfilled} == {s.pk for s in backfilled}
    assert {ledger[s.scheduled_for].outcome for s in backfilled} == {Outcome.BACKFILL}


def test_a_rerun_runs_the_slots_again_beside_the_earlier_runs_and_their_retries(worker):
    # Each run fails its first attempt: every slot leaves a failure and a retry.
    agent = AgentFactory(configuration={"steps": 1, "stepSeconds": 0, "failTimes": 1})
    set_schedule(agent, expression="0 */6 * * *")
    day = yesterday()
    body = {"start": iso(day), "end": iso(day + timedelta(hours=12))}
    api = client_for(agent.owner)
    assert api.post(f"/api/agents/{agent.pk}/backfill", body, format="json").json()["data"] == {
        "queued": 2,
        "skipped": 0,
        "slots": [iso(day), iso(day + timedelta(hours=6))],
    }
    wait_until(all_finished(agent, 4), timeout=60, what="the first runs and their retries")
    again = api.post(f"/api/agents/{agent.pk}/backfill", {**body, "rerun": True}, format="json")
    assert again.json()["data"]["queued"] == 2
    sessions = wait_until(all_finished(agent, 8), timeout=60, what="the reruns")

    runs = sorted((s.scheduled_for, s.rerun, s.attempt, s.trigger, s.status) for s in sessions)
    assert runs == [
        (slot, rerun, attempt, trigger, status)
        for slot in (day, day + timedelta(hours=6))
        for rerun in (0, 1)
        for attempt, trigger, status in ((1, "BACKFILL", "FAILED"), (2, "RETRY", "SUCCEEDED"))
    ]
    for row in ScheduleSlot.objects.filter(agent=agent):
        session = ExecutionSession.objects.get(pk=row.session_id)
        assert (row.outcome, session.rerun, session.attempt) == (Outcome.BACKFILL, 1, 1)
