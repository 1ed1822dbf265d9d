"""1. A worker killed with SIGKILL mid-run."""

from __future__ import annotations

import signal
import time

import pytest

from agents.models import AIAgent, ExecutionSession
from tests.factories import AgentFactory
from tests.processes import wait_until
from tests.stack import Api

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_killed_worker_loses_no_run_and_frees_its_slot(stack):
    s = stack(SCHEDULER_MAX_CONCURRENT="1")
    doomed = s.worker()
    s.beat()
    agent = AgentFactory(configuration={"steps": 4, "stepSeconds": 0.5})
    api = Api(s.web(), agent.owner)

    session_id = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=session_id, progress__gt=0).exists(),
        what="run in progress",
    )
    doomed.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    s.worker()

    lost = wait_until(
        lambda: ExecutionSession.objects.filter(pk=session_id, status="FAILED").first(),
        timeout=30,
        what="lost run recorded",
    )
    recovered_after = time.monotonic() - killed_at
    assert "Worker lost" in lost.error_message
    retry = wait_until(
        lambda: agent.sessions.filter(attempt=2, status="SUCCEEDED").first(),
        timeout=30,
        what="retry succeeded",
    )
    assert retry.trigger == "RETRY"
    agent.refresh_from_db()
    assert agent.status == AIAgent.Status.IDLE
    # The cap is 1: the retry could only start because the dead run's slot was freed.
    assert not ExecutionSession.objects.filter(status="RUNNING").exists()
    print(f"killed run recorded as lost after {recovered_after:.1f} s")
