"""A real beat process fires a real schedule."""

from __future__ import annotations

import pytest

from conftest import client_for
from observability.heartbeats import beat_is_running
from scheduling.services import set_schedule
from tests.factories import AgentFactory
from tests.processes import start_beat, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_beat_fires_an_every_minute_schedule_and_reports_in(worker):
    agent = AgentFactory(configuration={"steps": 1, "stepSeconds": 0})
    set_schedule(agent, expression="* * * * *")
    beat = start_beat()
    try:
        wait_until(beat_is_running, timeout=30, what="beat heartbeat")
        status = client_for(agent.owner).get("/api/agents/scheduler/status").json()["data"]
        assert status["isRunning"] is True
        assert status["tasks"][0]["agentId"] == str(agent.pk)

        session = wait_until(
            lambda: agent.sessions.filter(status="SUCCEEDED").first(),
            timeout=75,
            what="a scheduled run",
        )
    finally:
        beat.stop()
    assert session.trigger == "SCHEDULE"
    assert session.scheduled_for.second == 0 and session.scheduled_for.microsecond == 0
    assert 0 <= (session.started_at - session.scheduled_for).total_seconds() < 10
    agent.refresh_from_db()
    assert agent.next_run_at > session.scheduled_for
    assert agent.last_run_at == session.started_at
