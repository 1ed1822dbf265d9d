"""Alert rules through the run state machine, the tick's check and delivery.

Runs are driven through ``scheduling.runs`` in-process; notifications are
sent for real to a local HTTP receiver (which checks every signature) and a
real SMTP server. The live paths (a worker, beat, a WebSocket client) are in
test_alerts_live.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from agents.models import AIAgent, AuditEntry, ExecutionSession
from scheduling import alerts, incidents, notify, pacing, runs, services
from scheduling.models import AlertChannel, Incident, Notification, ScheduleSlot
from tests.factories import AgentFactory, SessionFactory
from tests.receivers import Receiver, SmtpReceiver
from tests.scheduling.conftest import at_once_in_two_threads

pytestmark = pytest.mark.django_db

Kind = Incident.Kind
Status = ExecutionSession.Status
SECRET = "s3cret"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Tasks asked for are recorded, not sent: delivery is called directly here,
    and no admission is asked for (its coalescing flag would outlive the test)."""
    sent: list[tuple] = []
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)
    monkeypatch.setattr(
        pacing, "send_task", lambda name, *args, **options: sent.append((name, args))
    )
    return sent


@pytest.fixture
def receiver(settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def smtp(settings):
    server = SmtpReceiver()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    yield server
    server.close()


def webhook(agent: AIAgent, port: int, **extra) -> AlertChannel:
    return AlertChannel.objects.create(
        owner=agent.owner,
        name="hook",
        kind=AlertChannel.Kind.WEBHOOK,
        target=f"http://127.0.0.1:{port}/alerts",
        secret=SECRET,
        **extra,
    )


def email_channel(agent: AIAgent) -> AlertChannel:
    return AlertChannel.objects.create(
        owner=agent.owner, name="mail", kind="email", target="ops@example.com", secret="x"
    )


def scheduled_agent(**configuration) -> AIAgent:
    agent = AgentFactory(configuration=configuration or {"steps": 0})
    services.set_schedule(agent, expression="* * * * *")
    agent.refresh_from_db()
    return agent


def running(agent: AIAgent, *, attempt: int = 1, started_ago: float = 1) -> ExecutionSession:
    started = timezone.now() - timedelta(seconds=started_ago)
    return SessionFactory(
        agent=agent,
        status=Status.RUNNING,
        attempt=attempt,
        started_at=started,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )


def fail_a_run(agent: AIAgent, settings) -> ExecutionSession:
    """A run whose last attempt fails: no retry is left."""
    session = running(agent, attempt=settings.SCHEDULER_MAX_RETRIES + 1)
    assert runs.finish_failed(str(session.pk), "Upstream said no.")
    return session


def succeed_a_run(agent: AIAgent) -> ExecutionSession:
    session = running(agent)
    assert runs.finish_succeeded(str(session.pk), "fine")
    return session


def open_ones(agent: AIAgent) -> list[str]:
    return sorted(
        Incident.objects.filter(agent=agent, resolved_at__isnull=True).values_list(
            "kind", flat=True
        )
    )


def verified(received) -> dict:
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-NeonHub-Signature"] == expected
    return json.loads(received.body)


def deliver_all() -> list[bool]:
    return [
        notify.deliver(str(pk))
        for pk in Notification.objects.filter(state="PENDING").values_list("pk", flat=True)
    ]


# --- FAILING and PAUSED ----------------------------------------------------------


def test_failing_opens_after_n_failed_runs_and_resolves_on_a_success(settings, receiver):
    agent = scheduled_agent()
    channel = webhook(agent, receiver.port)
    alerts.set_rules(agent, channels=[channel], failures_in_a_row=2)

    fail_a_run(agent, settings)
    assert open_ones(agent) == []
    # A failed attempt with a retry left is not a failed run.
    retried = running(agent, attempt=1)
    runs.finish_failed(str(retried.pk), "Flaky.")
    assert open_ones(agent) == []
    last = fail_a_run(agent, settings)
    assert open_ones(agent) == ["FAILING"]
    incident = Incident.objects.get(agent=agent)
    assert incident.message == "2 runs in a row failed; the last: Upstream said no."
    assert incident.session_id == last.pk
    # A third failure keeps the one incident open.
    fail_a_run(agent, settings)
    assert Incident.objects.filter(agent=agent).count() == 1

    succeed_a_run(agent)
    incident.refresh_from_db()
    assert incident.resolved_at is not None and incident.resolution == "A run succeeded."
    assert alerts.rules_of(agent).failed_runs_in_a_row == 0

    assert deliver_all() == [True, True]
    documents = [verified(received) for received in receiver.received]
    assert sorted(document["event"] for document in documents) == ["alert.opened", "alert.resolved"]
    assert {document["alert"]["id"] for document in documents} == {str(incident.pk)}
    assert all(r.headers["X-NeonHub-Event"].startswith("alert.") for r in receiver.received)
    channel.refresh_from_db()
    assert channel.last_error == "" and channel.last_sent_at is not None


def test_a_cancelled_run_neither_counts_nor_resets_the_failures(settings):
    agent = scheduled_agent()
    alerts.set_rules(agent, channels=[], failures_in_a_row=2)
    fail_a_run(agent, settings)
    cancelled = running(agent)
    runs.cancel_session(cancelled)
    fail_a_run(agent, settings)
    assert open_ones(agent) == ["FAILING"]


def test_paused_pauses_the_schedule_with_a_note_and_resolves_on_resume(settings):
    agent = scheduled_agent()
    alerts.set_rules(agent, channels=[], pause_after_failures=2, failures_in_a_row=1)
    fail_a_run(agent, settings)
    assert open_ones(agent) == ["FAILING"]
    fail_a_run(agent, settings)

    agent.refresh_from_db()
    assert agent.schedule_enabled is False
    assert agent.pause_note == "Paused after 2 failed runs in a row; the last: Upstream said no."
    assert open_ones(agent) == ["FAILING", "PAUSED"]
    pause = AuditEntry.objects.filter(agent=agent, action="schedule.paused").get()
    assert (pause.source, pause.actor_name) == ("SYSTEM", "system")
    assert pause.changes["scheduleEnabled"] == [True, False]
    # Paused already: a further failure opens nothing new and pauses nothing.
    fail_a_run(agent, settings)
    assert Incident.objects.filter(agent=agent, kind=Kind.PAUSED).count() == 1

    services.set_schedule(agent, enabled=True)
    assert open_ones(agent) == ["FAILING"]
    paused = Incident.objects.get(agent=agent, kind=Kind.PAUSED)
    assert paused.resolution == "The schedule was resumed."


def test_an_agent_without_a_schedule_is_not_paused_but_is_failing(settings):
    agent = AgentFactory()
    alerts.set_rules(agent, channels=[], pause_after_failures=1, failures_in_a_row=1)
    fail_a_run(agent, settings)
    assert open_ones(agent) == ["FAILING"]


def test_an_agent_without_rules_costs_one_read_at_a_run_s_end(
    settings, django_assert_max_num_queries
):
    agent = AgentFactory()
    session = running(agent)
    with django_assert_max_num_queries(20):
        runs.finish_succeeded(str(session.pk), "ok")
    assert Incident.objects.count() == 0


# --- LATE and OVERRUN -------------------------------------------------------------


def late_slot(agent: AIAgent, minutes_ago: int) -> ScheduleSlot:
    slot_time = (timezone.now() - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
    session = runs.queue_run(agent, trigger="SCHEDULE", scheduled_for=slot_time)
    return ScheduleSlot.objects.create(
        agent=agent, scheduled_for=slot_time, outcome="QUEUED", session=session, reason="Queued."
    )


def test_late_opens_once_the_threshold_passes_and_resolves_when_the_run_starts():
    agent = scheduled_agent()
    alerts.set_rules(agent, channels=[], late_after_seconds=90)
    slot = late_slot(agent, minutes_ago=1)
    now = timezone.now()
    assert alerts.check(slot.scheduled_for + timedelta(seconds=89)) == 0
    assert alerts.check(slot.scheduled_for + timedelta(seconds=91)) == 1
    assert open_ones(agent) == ["LATE"]
    incident = Incident.objects.get(agent=agent)
    assert incident.session_id == slot.session_id
    assert "has not started 90 s after it" in incident.message
    # Seen again by the next tick (or another beat's): still one.
    assert alerts.check(now + timedelta(seconds=120)) == 0

    ExecutionSession.objects.filter(pk=slot.session_id).update(status=Status.RUNNING)
    started = runs.start_run(str(slot.session_id), "w1")
    assert started is not None
    incident.refresh_from_db()
    assert incident.resolution == "Its run started."


def test_late_resolves_at_the_tick_when_its_run_was_cancelled():
    agent = scheduled_agent()
    alerts.set_rules(agent, channels=[], late_after_seconds=1)
    slot = late_slot(agent, minutes_ago=2)
    assert alerts.check() == 1
    runs.cancel_session(slot.session)
    assert alerts.check() == 1
    assert Incident.objects.get(agent=agent).resolution == "Its run was cancelled."


def test_overrun_opens_for_a_long_run_and_resolves_when_it_ends():
    agent = scheduled_agent()
    alerts.set_rules(agent, channels=[], max_duration_seconds=30)
    quick = running(agent, started_ago=5)
    assert alerts.check() == 0
    ExecutionSession.objects.filter(pk=quick.pk).update(
        started_at=timezone.now() - timedelta(seconds=31)
    )
    assert alerts.check() == 1
    assert open_ones(agent) == ["OVERRUN"]
    runs.finish_succeeded(str(quick.pk), "done at last")
    assert open_ones(agent) == []
    assert Incident.objects.get(agent=agent).resolution == "The run ended."


def test_turning_a_rule_off_resolves_its_incident_and_is_audited():
    agent = scheduled_agent()
    alerts.set_rules(agent, channels=[], max_duration_seconds=1)
    running(agent, started_ago=10)
    alerts.check()
    alerts.set_rules(agent, channels=[], max_duration_seconds=None)
    assert open_ones(agent) == []
    changes = [e.changes for e in AuditEntry.objects.filter(agent=agent, action="alerts.changed")]
    assert {"maxDurationSeconds": [None, 1]} in changes
    assert {"maxDurationSeconds": [1, None]} in changes


def test_rules_refuse_absurd_values_and_change_nothing():
    agent = AgentFactory()
    for value in (0, -1, 10**9, 1.5, "5", True):
        with pytest.raises(alerts.RuleFieldError) as refused:
            alerts.set_rules(agent, channels=[], late_after_seconds=value)
        assert refused.value.field == "late_after_seconds"
    assert alerts.rules_of(agent) == alerts.Rules()


# --- exactly once ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_open_one_incident_with_one_notification_per_channel(no_broker):
    agent = scheduled_agent()
    channel = email_channel(agent)
    alerts.set_rules(agent, channels=[channel], late_after_seconds=1)
    late_slot(agent, minutes_ago=3)
    assert sorted(at_once_in_two_threads(alerts.check)) == [0, 1]
    assert Incident.objects.filter(agent=agent).count() == 1
    assert Notification.objects.filter(channel=channel).count() == 1
    handed_out = [args for name, args in no_broker if name == incidents.DELIVER_TASK]
    assert len(handed_out) == 1


@pytest.mark.django_db(transaction=True)
def test_two_senders_of_one_notification_send_it_once(receiver):
    agent = scheduled_agent()
    alerts.set_rules(agent, channels=[webhook(agent, receiver.port)], failures_in_a_row=1)
    with transaction.atomic():
        incidents.open_incident(agent, Kind.FAILING, "Broken.")
    (notification,) = Notification.objects.all()
    results = at_once_in_two_threads(lambda: notify.deliver(str(notification.pk)))
    assert sorted(results) == [False, True]
    assert len(receiver.received) == 1


# --- delivery ----------------------------------------------------------------------


def test_a_failing_channel_is_retried_with_backoff_and_shows_its_error(settings, receiver):
    settings.ALERT_MAX_ATTEMPTS = 3
    receiver.status = 503
    agent = scheduled_agent()
    channel = webhook(agent, receiver.port)
    alerts.set_rules(agent, channels=[channel], failures_in_a_row=1)
    incidents.open_incident(agent, Kind.FAILING, "Broken.")
    (notification,) = Notification.objects.all()

    assert notify.deliver(str(notification.pk)) is False
    notification.refresh_from_db()
    channel.refresh_from_db()
    assert channel.last_error == "The Webhook answered HTTP 503."
    assert notification.state == "PENDING" and notification.attempts == 1
    wait = (notification.next_attempt_at - timezone.now()).total_seconds()
    assert 4 < wait <= 5
    # Not due yet: neither a sender nor the sweep takes it.
    assert notify.deliver(str(notification.pk)) is False
    assert notify.send_due() == 0

    later = notification.next_attempt_at + timedelta(seconds=1)
    assert notify.send_due(later) == 1
    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now())
    notify.deliver(str(notification.pk))
    notification.refresh_from_db()
    assert notification.attempts == 2
    assert 9 < (notification.next_attempt_at - timezone.now()).total_seconds() <= 10

    receiver.status = 200
    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now())
    assert notify.deliver(str(notification.pk)) is True
    channel.refresh_from_db()
    assert channel.last_error == "" and channel.last_sent_at is not None
    assert len(receiver.received) == 3
    assert all(verified(received)["alert"]["kind"] == "FAILING" for received in receiver.received)


def test_a_notification_is_given_up_after_the_last_attempt(settings, receiver):
    settings.ALERT_MAX_ATTEMPTS = 1
    receiver.status = 500
    agent = scheduled_agent()
    alerts.set_rules(agent, channels=[webhook(agent, receiver.port)], failures_in_a_row=1)
    incidents.open_incident(agent, Kind.FAILING, "Broken.")
    deliver_all()
    assert Notification.objects.get().state == "FAILED"


def test_an_internal_target_is_refused_at_send_time_too(settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = []
    agent = scheduled_agent()
    channel = webhook(agent, 9)
    assert "internal address" in (notify.send_test(channel) or "")
    channel.refresh_from_db()
    assert "internal address" in channel.last_error


def test_slack_gets_its_text_format(receiver):
    agent = scheduled_agent()
    channel = AlertChannel.objects.create(
        owner=agent.owner,
        name="slack",
        kind="slack",
        target=f"http://127.0.0.1:{receiver.port}/services/T/B/X",
        secret="unused",
    )
    alerts.set_rules(agent, channels=[channel], failures_in_a_row=1)
    incidents.open_incident(agent, Kind.FAILING, "Broken since noon.")
    assert deliver_all() == [True]
    (received,) = receiver.received
    text = json.loads(received.body)["text"]
    assert text.startswith(f"*[NeonHub] FAILING: {agent.name}*") and "Broken since noon." in text
    assert "X-NeonHub-Signature" not in received.headers


def test_email_goes_through_the_smtp_server(smtp):
    agent = scheduled_agent()
    channel = email_channel(agent)
    alerts.set_rules(agent, channels=[channel], failures_in_a_row=1)
    incident = incidents.open_incident(agent, Kind.FAILING, "Broken since noon.")
    incidents.resolve(incident, agent, "A run succeeded.")
    assert deliver_all() == [True, True]
    subjects = sorted(message["Subject"] for message in smtp.messages)
    assert subjects == [
        f"[NeonHub] FAILING: {agent.name}",
        f"[NeonHub] Resolved FAILING: {agent.name}",
    ]
    assert all(message["To"] == "ops@example.com" for message in smtp.messages)
    assert notify.send_test(channel) is None
    assert smtp.messages[-1]["Subject"] == "[NeonHub] Test notification"


def test_an_smtp_server_that_is_down_is_the_channel_s_error(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    agent = scheduled_agent()
    channel = email_channel(agent)
    error = notify.send_test(channel)
    assert error and "ConnectionRefusedError" in error
    channel.refresh_from_db()
    assert channel.last_error == error


def test_retention_deletes_alerts_resolved_before_the_age_rule_and_keeps_open_ones():
    from scheduling.retention import prune_sessions

    agent = scheduled_agent()
    channel = email_channel(agent)
    alerts.set_rules(agent, channels=[channel], failures_in_a_row=1)
    old = incidents.open_incident(agent, Kind.FAILING, "Long ago.")
    incidents.resolve(old, agent, "A run succeeded.")
    still_open = incidents.open_incident(agent, Kind.LATE, "Waiting since long ago.")
    long_ago = timezone.now() - timedelta(days=120)
    Incident.objects.update(opened_at=long_ago)
    Incident.objects.filter(pk=old.pk).update(resolved_at=long_ago)

    assert prune_sessions(dry_run=True).incidents == 1
    assert prune_sessions().incidents == 1
    assert list(Incident.objects.values_list("pk", flat=True)) == [still_open.pk]
    assert Notification.objects.filter(incident=still_open).count() == 1


def test_a_failing_alert_check_does_not_hold_up_the_tick_s_admission(monkeypatch):
    from scheduling import admission, tasks

    def broken(now=None):
        raise RuntimeError("database hiccup")

    admitted = []
    monkeypatch.setattr(alerts, "check", broken)
    monkeypatch.setattr(admission, "admit_waiting_runs", lambda: admitted.append(1) or [])
    assert tasks.tick() == []
    assert admitted == [1]
