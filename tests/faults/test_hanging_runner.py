"""6. A runner that hangs and never looks at its context."""

from __future__ import annotations

import signal
import time

import pytest

from agents.models import AIAgent, ExecutionSession
from tests.factories import AgentFactory
from tests.processes import wait_until
from tests.stack import Api

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HANG = "tests.faults.test_hanging_runner.hang"


def hang(context) -> str:
    time.sleep(600)
    return "never"


def test_a_hanging_run_times_out_as_failed_and_frees_its_slot(stack):
    s = stack(
        SCHEDULER_RUN_TIMEOUT="2",
        SCHEDULER_MAX_RETRIES="0",
        SCHEDULER_MAX_CONCURRENT="1",
        AGENT_PYTHON_CALLABLES=HANG,
    )
    s.worker()
    s.beat()
    hung = AgentFactory(agent_type="python", configuration={"callable": HANG})
    api = Api(s.web(), hung.owner)
    started = time.monotonic()
    session_id = api.post(f"/api/agents/{hung.pk}/run").json()["data"]["sessionId"]

    failed = wait_until(
        lambda: ExecutionSession.objects.filter(pk=session_id, status="FAILED").first(),
        timeout=30,
        what="timed-out run",
    )
    assert "timed out" in failed.error_message
    print(f"hung run failed after {time.monotonic() - started:.1f} s")
    hung.refresh_from_db()
    assert hung.status == AIAgent.Status.ERROR

    # The single slot is free again for another agent.
    other = AgentFactory(owner=hung.owner, configuration={"steps": 0})
    second = api.post(f"/api/agents/{other.pk}/run").json()["data"]["sessionId"]
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=second, status="SUCCEEDED").exists(),
        what="next run",
    )
    # A thread stuck in a call cannot be interrupted; a deploy would kill its
    # worker after the grace period, as this does now.
    for process in s.processes:
        process.signal(signal.SIGKILL)
