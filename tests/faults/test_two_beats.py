"""4. Two beat processes firing the same every-minute schedule."""

from __future__ import annotations

import time

import pytest
from django.db.models import Count
from django.utils import timezone

from scheduling.models import ScheduleSlot
from scheduling.services import set_schedule
from tests.factories import AgentFactory
from tests.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MINUTES = 3


def test_two_beats_record_each_slot_exactly_once(stack):
    s = stack()
    s.worker()
    agent = AgentFactory(configuration={"steps": 0})
    set_schedule(agent, expression="* * * * *")
    s.beat()
    s.beat()
    started = timezone.now()
    # Until three slots after both beats were up have fired.
    wait_until(
        lambda: agent.sessions.filter(scheduled_for__gt=started).count() >= MINUTES,
        timeout=MINUTES * 60 + 30,
        interval=1,
        what=f"{MINUTES} slots",
    )
    time.sleep(2)
    per_slot = list(agent.sessions.values("scheduled_for").annotate(n=Count("id")))
    assert len(per_slot) >= MINUTES
    assert all(row["n"] == 1 for row in per_slot), per_slot
    assert set(agent.sessions.values_list("status", flat=True)) == {"SUCCEEDED"}
    # One ledger row per slot, each pointing at that slot's one session.
    ledger = list(ScheduleSlot.objects.filter(agent=agent).values_list("scheduled_for", "outcome"))
    assert sorted(ledger) == sorted((row["scheduled_for"], "RAN") for row in per_slot)
    assert not ScheduleSlot.objects.filter(agent=agent, session=None).exists()
