"""7. Two web processes and two workers on one Redis and one database."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

from agents.models import ExecutionSession
from tests.factories import AgentFactory, UserFactory
from tests.stack import Api, ask, connect_websocket, events_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_events_caps_and_limits_hold_across_processes(stack):
    s = stack(SCHEDULER_MAX_CONCURRENT="2", WS_MAX_CONNECTIONS_PER_USER="2")
    # One thread each: with two runs at once, both workers must take part
    # (with more, the worker that frees a slot may well run its successor too).
    s.worker(concurrency=1)
    s.worker(concurrency=1)
    first_web = s.web()
    second_web = s.web()
    owner = UserFactory()
    agents = [
        AgentFactory(owner=owner, configuration={"steps": 2, "stepSeconds": 0.3}) for _ in range(6)
    ]
    api_one, api_two = Api(first_web, owner), Api(second_web, owner)

    with (
        connect_websocket(first_web, api_one.token) as on_first,
        connect_websocket(second_web, api_two.token) as on_second,
    ):
        ask(on_first, "monitoring:subscribe", "agents")
        ask(on_second, "monitoring:subscribe", "agents")
        # The per-user cap (2) counts connections on both web processes.
        with (
            connect_websocket(first_web, api_one.token) as third,
            pytest.raises(ConnectionClosed) as closed,
        ):
            third.recv(timeout=5)
        assert closed.value.rcvd.code == 4429

        for index, agent in enumerate(agents):
            (api_one if index % 2 else api_two).post(f"/api/agents/{agent.pk}/run")

        most_running = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            most_running = max(
                most_running, ExecutionSession.objects.filter(status="RUNNING").count()
            )
            if ExecutionSession.objects.filter(status="SUCCEEDED").count() == len(agents):
                break
            time.sleep(0.02)
        assert ExecutionSession.objects.filter(status="SUCCEEDED").count() == len(agents)
        assert most_running == 2

        for socket in (on_first, on_second):
            completed = set()
            while len(completed) < len(agents):
                frame = events_until(socket, {"agent:completed"})[-1]
                completed.add(frame["data"]["agentId"])
            assert completed == {str(agent.pk) for agent in agents}

    # Both workers took part.
    assert len(set(ExecutionSession.objects.values_list("worker", flat=True))) == 2
