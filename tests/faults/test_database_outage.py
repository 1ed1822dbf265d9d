"""5. The database connection is cut during a run (PostgreSQL)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from agents.models import AIAgent, ExecutionSession
from tests.factories import AgentFactory
from tests.processes import wait_until
from tests.stack import Api

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def terminate_other_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="cuts PostgreSQL connections; SQLite has none"
)
def test_a_run_whose_database_connections_are_cut_is_still_recorded(stack):
    s = stack()
    s.worker()
    s.beat()
    agent = AgentFactory(configuration={"steps": 6, "stepSeconds": 0.5, "output": "survived"})
    api = Api(s.web(), agent.owner)
    session_id = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
    wait_until(
        lambda: ExecutionSession.objects.filter(pk=session_id, progress__gt=0).exists(),
        what="run in progress",
    )
    # Cut every other connection (worker, beat, web) again and again for a
    # couple of seconds, as a failover or a restarting database would.
    terminated = 0
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        terminated += terminate_other_connections()
        time.sleep(0.2)
    assert terminated >= 1

    session = wait_until(
        lambda: ExecutionSession.objects.filter(pk=session_id, completed_at__isnull=False).first(),
        timeout=60,
        what="run recorded",
    )
    print(f"run ended {session.status} after its connections were cut")
    # Recorded correctly, or failed and retried: never left RUNNING.
    if session.status == "FAILED":
        wait_until(
            lambda: agent.sessions.filter(attempt=2, completed_at__isnull=False).exists(),
            timeout=60,
            what="retry recorded",
        )
    else:
        assert session.status == "SUCCEEDED" and session.output_summary == "survived"
    wait_until(
        lambda: not ExecutionSession.objects.filter(status__in=["RUNNING", "QUEUED"]).exists(),
        timeout=60,
        what="nothing left running",
    )
    agent.refresh_from_db()
    assert agent.status in {AIAgent.Status.IDLE, AIAgent.Status.ERROR}
