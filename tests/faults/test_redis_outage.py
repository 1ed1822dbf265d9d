"""3. Redis stopped for 10 s and started again."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from agents.models import ExecutionSession
from scheduling.services import set_schedule
from tests.factories import AgentFactory
from tests.processes import wait_until
from tests.stack import Api

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_web_worker_and_beat_recover_from_a_redis_outage(stack):
    # Retries wait 15 s: the one below is still waiting when Redis comes back.
    s = stack(SCHEDULER_BACKOFF_BASE="15000", SCHEDULER_BACKOFF_MAX="15000")
    worker = s.worker()
    s.beat()
    agent = AgentFactory(configuration={"steps": 0})
    api = Api(s.web(), agent.owner)
    set_schedule(agent, expression="* * * * *")
    flaky = AgentFactory(owner=agent.owner, configuration={"steps": 0, "failTimes": 1})
    first = api.post(f"/api/agents/{flaky.pk}/run").json()["data"]["sessionId"]
    retry = wait_until(
        lambda: flaky.sessions.filter(attempt=2, status="QUEUED").first(),
        timeout=30,
        what="the flaky agent's retry waiting out its backoff",
    )
    assert ExecutionSession.objects.get(pk=first).status == "FAILED"

    s.stop_redis()
    time.sleep(10)
    # While Redis is away the API still answers; a run asked for now is
    # recorded, and started once the broker is back.
    during = api.post(f"/api/agents/{agent.pk}/run")
    assert during.status_code == 202
    s.start_redis()
    back = timezone.now()
    restarted = time.monotonic()

    wait_until(
        lambda: ExecutionSession.objects.filter(
            pk=during.json()["data"]["sessionId"], status="SUCCEEDED"
        ).exists(),
        timeout=60,
        what="run asked for during the outage",
    )
    print(
        "run asked for during the outage finished "
        f"{time.monotonic() - restarted:.1f} s after Redis came back"
    )
    after = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=after, status="SUCCEEDED").exists(),
        timeout=60,
        what="run after the outage",
    )
    scheduled = wait_until(
        lambda: agent.sessions.filter(trigger="SCHEDULE", scheduled_for__gt=back).first(),
        timeout=90,
        interval=0.5,
        what="a schedule due after the outage",
    )
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=scheduled.pk, status="SUCCEEDED").exists(),
        timeout=30,
        what="scheduled run finished",
    )
    assert api.get("/api/agents/scheduler/status").json()["data"]["isRunning"] is True
    # The worker held the retry through the outage; had it held it as a
    # countdown message, it would have exited when Redis went away (kombu#582).
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=retry.pk, status="SUCCEEDED").exists(),
        timeout=30,
        what="the retry that waited through the outage",
    )
    assert worker.popen.poll() is None, worker.output()[-3000:]
