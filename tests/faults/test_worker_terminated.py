"""2. A worker stopped with SIGTERM mid-run, as a deploy does."""

from __future__ import annotations

import signal
import time

import pytest

from agents.models import ExecutionSession
from tests.factories import AgentFactory
from tests.processes import wait_until
from tests.stack import Api

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_terminated_worker_finishes_its_run_before_exiting(stack):
    s = stack()
    leaving = s.worker()
    agent = AgentFactory(configuration={"steps": 4, "stepSeconds": 0.5, "output": "finished"})
    api = Api(s.web(), agent.owner)
    session_id = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=session_id, progress__gt=0).exists(),
        what="run in progress",
    )
    leaving.signal(signal.SIGTERM)
    signalled = time.monotonic()
    leaving.popen.wait(timeout=30)
    print(f"worker finished its run and exited {time.monotonic() - signalled:.1f} s after SIGTERM")

    session = ExecutionSession.objects.get(pk=session_id)
    assert session.status == "SUCCEEDED"
    assert session.output_summary == "finished"

    # Work queued after the deploy is picked up by the next worker.
    s.worker()
    second = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=second, status="SUCCEEDED").exists(),
        what="run on the new worker",
    )
