"""A snooze ends by itself: a real beat ticks, a real worker resumes the schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent
from scheduling.services import set_schedule
from tests.factories import AgentFactory
from tests.processes import start_beat, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_snooze_ends_by_itself_and_the_schedule_runs_again(worker):
    agent = AgentFactory()
    set_schedule(agent, expression="0 9 * * *")
    snoozed_until = timezone.now() + timedelta(seconds=3)
    set_schedule(agent, paused_until=snoozed_until, pause_note="Maintenance window.")
    agent.refresh_from_db()
    assert not agent.schedule_enabled and agent.next_run_at is None
    assert not PeriodicTask.objects.get(pk=agent.periodic_task_id).enabled

    beat = start_beat()
    try:
        resumed = wait_until(
            lambda: AIAgent.objects.filter(pk=agent.pk, schedule_enabled=True).first(),
            timeout=30,
            what="the snooze to end",
        )
    finally:
        beat.stop()
    assert timezone.now() >= snoozed_until
    assert (resumed.paused_until, resumed.paused_at, resumed.pause_note) == (None, None, "")
    assert resumed.next_run_at is not None and resumed.next_run_at > snoozed_until
    assert PeriodicTask.objects.get(pk=agent.periodic_task_id).enabled
    assert not resumed.sessions.exists()
    wait_until(
        lambda: (
            f"Schedule of agent {agent.pk} ({agent.name}) resumed by the system: "
            "its snooze ended" in worker.output()
        ),
        timeout=10,
        what="the log line",
    )
