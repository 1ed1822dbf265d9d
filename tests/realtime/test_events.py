"""Every event payload has its exact schema, and the emitter delivers after commit."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from agents.models import Priority
from realtime import events
from realtime.groups import SCHEDULER_GROUP, STAFF_AGENTS_GROUP, agent_group, owner_agents_group
from realtime.publisher import event_message, send_now
from tests.factories import AgentFactory, SessionFactory

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def session(db):
    agent = AgentFactory(name="Writer", agent_type="demo", priority=Priority.HIGH)
    return SessionFactory(
        agent=agent,
        attempt=2,
        priority=Priority.HIGH,
        started_at=timezone.now(),
        duration_ms=1234,
        output_summary="done",
        error_message="boom",
    )


def check_base(data, session):
    assert data["agentId"] == str(session.agent_id)
    assert ISO_UTC.match(data["timestamp"])
    assert data["sessionId"] == str(session.pk)


def test_started_payload(session):
    data = events.started_payload(session, session.agent)
    assert set(data) == {
        "agentId",
        "timestamp",
        "sessionId",
        "priority",
        "agentName",
        "agentType",
        "attempt",
    }
    check_base(data, session)
    assert (data["priority"], data["agentName"], data["agentType"], data["attempt"]) == (
        "HIGH",
        "Writer",
        "demo",
        2,
    )


def test_progress_payload(session):
    data = events.progress_payload(session, session.agent, 40, "Step 2 of 5")
    assert set(data) == {"agentId", "timestamp", "sessionId", "progress", "message"}
    check_base(data, session)
    assert (data["progress"], data["message"]) == (40, "Step 2 of 5")


def test_completed_payload(session):
    data = events.completed_payload(session, session.agent)
    assert set(data) == {
        "agentId",
        "timestamp",
        "sessionId",
        "duration",
        "agentName",
        "agentType",
        "outputSummary",
    }
    check_base(data, session)
    assert (data["duration"], data["outputSummary"]) == (1234, "done")


def test_failed_payload(session):
    session.agent.retry_count = 2
    data = events.failed_payload(session, session.agent, will_retry=True)
    assert set(data) == {
        "agentId",
        "timestamp",
        "sessionId",
        "error",
        "retryCount",
        "willRetry",
        "agentName",
        "agentType",
    }
    check_base(data, session)
    assert (data["error"], data["retryCount"], data["willRetry"]) == ("boom", 2, True)


def test_scheduler_status_payload():
    stats = {
        "isRunning": True,
        "scheduledTasksCount": 1,
        "runningAgentsCount": 0,
        "queuedTasksCount": 0,
        "maxConcurrentAgents": 5,
    }
    data = events.scheduler_status_payload(stats)
    assert set(data) == {*stats, "timestamp"}
    assert "agentId" not in data


def test_iso_keeps_offsets_utc_and_none():
    assert events.iso(None) is None
    assert events.iso(timezone.datetime(2026, 1, 2, 9, tzinfo=timezone.get_fixed_timezone(60))) == (
        "2026-01-02T08:00:00Z"
    )


def test_agent_events_go_to_the_agent_the_owner_and_staff_groups(session):
    assert events.agent_groups(session.agent) == [
        agent_group(session.agent_id),
        owner_agents_group(session.agent.owner_id),
        STAFF_AGENTS_GROUP,
    ]


@pytest.mark.django_db(transaction=True)
def test_an_event_is_sent_only_after_the_transaction_commits(monkeypatch):
    agent = AgentFactory()
    session = SessionFactory(agent=agent, started_at=timezone.now())
    sent = []
    monkeypatch.setattr(events, "send_now", lambda groups, frame: sent.append(frame))
    with transaction.atomic():
        events.emit_started(session, agent)
        assert sent == []
    assert len(sent) == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        events.emit_started(session, agent)
        raise RuntimeError("rolled back")
    assert len(sent) == 1


def test_send_now_reaches_a_group_on_the_real_redis_layer():
    group = f"test.{uuid.uuid4().hex}"
    frame = {"event": "scheduler:status", "data": {"isRunning": True}}

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            # From a thread without a loop, as a Celery worker calls it.
            from asgiref.sync import sync_to_async

            await sync_to_async(send_now, thread_sensitive=False)([group], frame)
            return await layer.receive(channel)
        finally:
            await layer.group_discard(group, channel)

    message = async_to_sync(scenario)()
    # Encoded once, by the emitter; consumers forward the text unchanged.
    assert message == {"type": "neonhub.event", "text": json.dumps(frame)}
    assert json.loads(message["text"]) == frame


def test_the_encoded_frame_keeps_text_that_cannot_be_utf_8():
    # A lone surrogate (from a runner's message) must not make the send fail:
    # it travels escaped, as the consumer used to encode it.
    frame = {"event": "agent:progress", "data": {"message": "half \ud800 done"}}
    text = event_message(frame)["text"]
    assert "\\ud800" in text
    text.encode("utf-8")
    assert json.loads(text) == frame


@pytest.mark.django_db
def test_scheduler_status_goes_to_the_scheduler_group(
    monkeypatch, django_capture_on_commit_callbacks
):
    captured = []
    monkeypatch.setattr(events, "send_now", lambda groups, frame: captured.append((groups, frame)))
    with django_capture_on_commit_callbacks(execute=True):
        events.emit_scheduler_status({"isRunning": False})
    assert captured[0][0] == [SCHEDULER_GROUP]
    assert captured[0][1]["event"] == "scheduler:status"
