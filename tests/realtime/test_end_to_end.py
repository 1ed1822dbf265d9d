"""Lifecycle events from a real worker to a real WebSocket client through daphne."""

from __future__ import annotations

import pytest

from tests.factories import AgentFactory
from tests.stack import Api, ask, connect_websocket, events_until, stack  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINAL = {"agent:completed", "agent:failed"}


def test_a_run_is_seen_started_progressing_logging_and_completed_in_order(stack):  # noqa: F811
    s = stack()
    s.worker()
    agent = AgentFactory(configuration={"steps": 3, "stepSeconds": 0.4, "output": "all done"})
    api = Api(s.web(), agent.owner)
    with connect_websocket(s.base_url, api.token) as socket:
        assert ask(socket, "agent:subscribe", str(agent.pk)) == {
            "event": "subscribed",
            "data": {"room": f"agent:{agent.pk}"},
        }
        session_id = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
        frames = events_until(socket, FINAL)

    logs = [frame["data"] for frame in frames if frame["event"] == "agent:log"]
    frames = [frame for frame in frames if frame["event"] != "agent:log"]
    names = [frame["event"] for frame in frames]
    assert names == [
        "agent:started",
        "agent:progress",
        "agent:progress",
        "agent:progress",
        "agent:completed",
    ]
    assert {frame["data"]["sessionId"] for frame in frames} == {session_id}
    assert all(frame["data"]["agentId"] == str(agent.pk) for frame in frames)
    assert [frame["data"]["progress"] for frame in frames[1:4]] == [33, 67, 100]
    # The log came live too, whole before the run's end was announced.
    assert [(line["seq"], line["level"], line["message"]) for line in logs] == [
        (1, "INFO", "Attempt 1: 3 steps of 0.4 s."),
        (2, "INFO", "Step 1 of 3 done."),
        (3, "INFO", "Step 2 of 3 done."),
        (4, "INFO", "Step 3 of 3 done."),
    ]
    assert {line["sessionId"] for line in logs} == {session_id}
    stored = api.get(f"/api/sessions/{session_id}/logs").json()["data"]
    assert [line["message"] for line in stored["lines"]] == [line["message"] for line in logs]
    assert stored["truncated"] is False
    started, completed = frames[0]["data"], frames[-1]["data"]
    assert (started["priority"], started["agentType"], started["attempt"]) == ("NORMAL", "demo", 1)
    assert completed["outputSummary"] == "all done" and completed["duration"] >= 1200


def test_a_failing_run_is_seen_failed_with_its_retry_and_no_log_lines(stack):  # noqa: F811
    s = stack(SCHEDULER_MAX_RETRIES="1")
    s.worker()
    agent = AgentFactory(configuration={"steps": 0, "failTimes": 5})
    api = Api(s.web(), agent.owner)
    with connect_websocket(s.base_url, api.token) as socket:
        ask(socket, "monitoring:subscribe", "agents")
        api.post(f"/api/agents/{agent.pk}/run")
        first = events_until(socket, FINAL)
        second = events_until(socket, FINAL)

    # The monitoring room hears the lifecycle, not the log lines of every run.
    assert [f["event"] for f in first] == ["agent:started", "agent:failed"]
    failed = first[-1]["data"]
    assert failed["willRetry"] is True and failed["retryCount"] == 1
    assert "Demo failure" in failed["error"]
    assert second[0]["data"]["attempt"] == 2
    assert second[-1]["data"]["willRetry"] is False and second[-1]["data"]["retryCount"] == 2


def test_the_scheduler_room_hears_status_after_a_run(stack):  # noqa: F811
    s = stack()
    s.worker()
    agent = AgentFactory(configuration={"steps": 0})
    api = Api(s.web(), agent.owner)
    with connect_websocket(s.base_url, api.token) as socket:
        ask(socket, "monitoring:subscribe", "scheduler")
        api.post(f"/api/agents/{agent.pk}/run")
        (status,) = events_until(socket, {"scheduler:status"})
    assert set(status["data"]) == {
        "isRunning",
        "scheduledTasksCount",
        "runningAgentsCount",
        "queuedTasksCount",
        "maxConcurrentAgents",
        "timestamp",
    }
