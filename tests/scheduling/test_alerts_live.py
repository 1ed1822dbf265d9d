"""Alerts through the real parts: workers, beat, daphne, a WebSocket client, a
local HTTP receiver checking every signature and a real SMTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import ExecutionSession
from scheduling import alerts, services
from scheduling.models import AlertChannel, Incident, Notification, ScheduleSlot
from tests.factories import AgentFactory, SessionFactory
from tests.processes import wait_until
from tests.receivers import Receiver, SmtpReceiver
from tests.stack import Api, ask, connect_websocket, stack  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "live-secret"
ALERT_FRAMES = {"agent:alert", "agent:alert_resolved"}


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def smtp():
    server = SmtpReceiver()
    yield server
    server.close()


def hook(owner, port: int) -> AlertChannel:
    return AlertChannel.objects.create(
        owner=owner,
        name="hook",
        kind="webhook",
        target=f"http://127.0.0.1:{port}/alerts",
        secret=SECRET,
    )


def documents(receiver: Receiver) -> list[dict]:
    """Every notification received, each signature checked."""
    found = []
    for received in receiver.received:
        expected = hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
        assert received.headers["X-NeonHub-Signature"] == f"sha256={expected}"
        found.append(json.loads(received.body))
    return found


def frames_of(socket, events: set[str], count: int, timeout: float = 30) -> list[dict]:
    """The next ``count`` frames whose event is in ``events``, skipping the others."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        frame = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame["event"] in events:
            found.append(frame)
    return found


def test_a_slow_run_opens_overrun_live_and_resolves_it_when_it_ends(stack, receiver):  # noqa: F811
    s = stack(AGENT_WEBHOOK_ALLOWED_HOSTS="127.0.0.1")
    s.worker()
    s.beat()
    agent = AgentFactory(configuration={"steps": 1, "stepSeconds": 4})
    alerts.set_rules(agent, channels=[hook(agent.owner, receiver.port)], max_duration_seconds=1)
    api = Api(s.web(), agent.owner)
    with connect_websocket(s.base_url, api.token) as socket:
        ask(socket, "agent:subscribe", str(agent.pk))
        api.post(f"/api/agents/{agent.pk}/run")
        opened, resolved = frames_of(socket, ALERT_FRAMES, 2)

    assert opened["event"] == "agent:alert" and opened["data"]["kind"] == "OVERRUN"
    assert resolved["event"] == "agent:alert_resolved"
    assert resolved["data"]["alertId"] == opened["data"]["alertId"]
    assert resolved["data"]["resolution"] == "The run ended."
    session = ExecutionSession.objects.get(agent=agent)
    assert session.status == "SUCCEEDED"
    incident = Incident.objects.get(agent=agent)
    # Opened by the tick within its interval of the threshold, while the run ran.
    assert session.started_at + timedelta(seconds=1) <= incident.opened_at < session.completed_at
    wait_until(lambda: len(receiver.received) == 2, what="both notifications")
    assert [d["event"] for d in documents(receiver)] == ["alert.opened", "alert.resolved"]
    assert api.get(f"/api/alerts?agentId={agent.pk}").json()["data"]["alerts"][0]["resolvedAt"]


def test_a_waiting_slot_opens_late_and_resolves_when_its_run_starts(stack):  # noqa: F811
    s = stack(SCHEDULER_MAX_CONCURRENT="1")
    s.worker()
    s.beat()
    blocker = AgentFactory(configuration={"steps": 1, "stepSeconds": 30})
    agent = AgentFactory(owner=blocker.owner, configuration={"steps": 0})
    alerts.set_rules(agent, channels=[], late_after_seconds=2)
    api = Api(s.web(), agent.owner)
    api.post(f"/api/agents/{blocker.pk}/run")
    wait_until(lambda: blocker.sessions.filter(started_at__isnull=False).exists(), what="blocker")
    with connect_websocket(s.base_url, api.token) as socket:
        # Listening before the slot exists: its alert cannot go out unheard.
        ask(socket, "monitoring:subscribe", "agents")
        # A slot beat has recorded, waiting behind the full cap.
        slot_time = timezone.now().replace(second=0, microsecond=0)
        waiting = SessionFactory(agent=agent, trigger="SCHEDULE", scheduled_for=slot_time)
        ScheduleSlot.objects.create(
            agent=agent,
            scheduled_for=slot_time,
            outcome="QUEUED",
            session=waiting,
            reason="Queued.",
        )
        (opened,) = frames_of(socket, ALERT_FRAMES, 1)
        assert opened["event"] == "agent:alert" and opened["data"]["kind"] == "LATE", opened
        assert opened["data"]["agentId"] == str(agent.pk)
        running = blocker.sessions.get()
        api.post(f"/api/sessions/{running.pk}/cancel")
        (resolved,) = frames_of(socket, ALERT_FRAMES, 1)
    assert resolved["event"] == "agent:alert_resolved"
    assert resolved["data"]["resolution"] == "Its run started."
    waiting.refresh_from_db()
    assert waiting.started_at is not None


def test_failing_and_paused_notify_once_each_with_two_workers(stack, receiver, smtp):  # noqa: F811
    s = stack(
        SCHEDULER_MAX_RETRIES="0",
        AGENT_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        EMAIL_URL=smtp.url,
    )
    s.worker(concurrency=2)
    s.worker(concurrency=2)
    s.beat()
    agent = AgentFactory(configuration={"steps": 0, "failTimes": 5})
    services.set_schedule(agent, expression="0 9 * * *")
    mail = AlertChannel.objects.create(
        owner=agent.owner, name="mail", kind="email", target="ops@example.com", secret="-"
    )
    alerts.set_rules(
        agent,
        channels=[hook(agent.owner, receiver.port), mail],
        failures_in_a_row=1,
        pause_after_failures=2,
    )
    api = Api(s.web(), agent.owner)
    with connect_websocket(s.base_url, api.token) as socket:
        ask(socket, "agent:subscribe", str(agent.pk))
        api.post(f"/api/agents/{agent.pk}/run")
        (failing,) = frames_of(socket, ALERT_FRAMES, 1)
        wait_until(lambda: agent.sessions.filter(completed_at__isnull=False).count() == 1)
        api.post(f"/api/agents/{agent.pk}/run")
        (paused,) = frames_of(socket, ALERT_FRAMES, 1)
        schedule = api.get(f"/api/agents/{agent.pk}/schedule").json()["data"]
        assert schedule["scheduleEnabled"] is False
        assert schedule["pauseNote"].startswith("Paused after 2 failed runs in a row")
        resumed = api.session.patch(
            f"{s.base_url}/api/agents/{agent.pk}/schedule", json={"enabled": True}, timeout=10
        )
        assert resumed.status_code == 200, resumed.text
        (unpaused,) = frames_of(socket, ALERT_FRAMES, 1)

    assert failing["data"]["kind"] == "FAILING" and paused["data"]["kind"] == "PAUSED"
    assert unpaused["event"] == "agent:alert_resolved" and unpaused["data"]["kind"] == "PAUSED"
    wait_until(
        lambda: (
            not Notification.objects.exclude(state="SENT").exists()
            and Notification.objects.count() == 6
        ),
        what="every notification sent",
    )
    # One of each to each channel, whichever worker sent it.
    sent = sorted((d["event"], d["alert"]["kind"]) for d in documents(receiver))
    assert sent == [
        ("alert.opened", "FAILING"),
        ("alert.opened", "PAUSED"),
        ("alert.resolved", "PAUSED"),
    ]
    assert sorted(message["Subject"].split(":")[0] for message in smtp.messages) == [
        "[NeonHub] FAILING",
        "[NeonHub] PAUSED",
        "[NeonHub] Resolved PAUSED",
    ]
    entries = api.get(f"/api/agents/{agent.pk}/audit").json()["data"]["entries"]
    assert ("schedule.paused", "SYSTEM") in {(e["action"], e["source"]) for e in entries}
