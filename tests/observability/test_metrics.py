"""/metrics: counters kept in Redis by the run lifecycle, gauges counted at scrape time."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
import requests
from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents.models import AIAgent, ExecutionSession
from conftest import client_for
from core.redis import get_redis
from observability import heartbeats, metrics
from observability.heartbeats import BEAT_HEARTBEAT_KEY, record_beat_heartbeat
from realtime import connections
from realtime.publisher import send_now
from scheduling import admission, incidents, notify, pacing, retention, runs
from scheduling.models import AlertChannel
from scheduling.services import set_schedule
from tests.factories import AgentFactory, SessionFactory
from tests.processes import free_port, start_daphne, wait_until

pytestmark = pytest.mark.django_db

Status = ExecutionSession.Status
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

DOCUMENTED = {
    "neonhub_runs",
    "neonhub_run_duration_seconds",
    "neonhub_dispatch_lag_seconds",
    "neonhub_run_retries",
    "neonhub_sessions_pruned",
    "neonhub_log_lines_dropped",
    "neonhub_events_sent",
    "neonhub_alerts_opened",
    "neonhub_notifications",
    "neonhub_schedule_slots",
    "neonhub_runs_queued",
    "neonhub_runs_running",
    "neonhub_runs_max_concurrent",
    "neonhub_agents_scheduled",
    "neonhub_websocket_connections",
    "neonhub_workers_alive",
    "neonhub_beat_heartbeat_age_seconds",
    "neonhub_metrics_source_up",
}


def delete_metric_keys() -> None:
    keys = list(get_redis().scan_iter(f"{metrics.KEY_PREFIX}*"))
    if keys:
        get_redis().delete(*keys)


@pytest.fixture(autouse=True)
def clean_metrics(monkeypatch):
    delete_metric_keys()
    monkeypatch.setattr(metrics, "_paused_until", 0.0)
    yield
    delete_metric_keys()


@pytest.fixture
def no_broker(monkeypatch):
    """Admission requests would go to the broker; here the tests admit by hand."""
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(admission, "_send_executions", lambda admitted: None)
    monkeypatch.setattr(pacing, "request_status_broadcast", lambda: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)


@pytest.fixture
def own_workers_key(monkeypatch):
    key = f"neonhub:test:{uuid.uuid4().hex[:12]}:workers"
    monkeypatch.setattr(heartbeats, "WORKERS_KEY", key)
    yield key
    get_redis().delete(key)


def scrape(path: str = "/metrics") -> Samples:
    response = Client().get(path)
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def bucket(samples: Samples, name: str, le: str, **labels: str) -> float:
    return value(samples, f"{name}_bucket", le=le, **labels)


def run_through(session: ExecutionSession, *, took: float = 0.0) -> None:
    """Admit and start ``session`` as a worker would, backdating its start by ``took`` s."""
    assert str(session.pk) in admission.admit_waiting_runs()
    assert runs.start_run(str(session.pk), "worker@test") is not None
    if took:
        ExecutionSession.objects.filter(pk=session.pk).update(
            started_at=F("started_at") - timedelta(seconds=took)
        )


# --- counters and histograms ---------------------------------------------------------------


def test_a_run_that_succeeds_is_counted_with_its_duration_and_dispatch_lag(
    no_broker, django_capture_on_commit_callbacks
):
    session = SessionFactory(scheduled_for=timezone.now() - timedelta(seconds=3))
    with django_capture_on_commit_callbacks(execute=True):
        run_through(session, took=7)
        assert runs.finish_succeeded(str(session.pk), "done")

    samples = scrape()

    assert value(samples, "neonhub_runs_total", outcome="succeeded", trigger="manual") == 1
    others = [v for (name, labels), v in samples.items() if name == "neonhub_runs_total" and v != 0]
    assert others == [1]
    duration = "neonhub_run_duration_seconds"
    assert bucket(samples, duration, "5.0", outcome="succeeded") == 0
    assert bucket(samples, duration, "10.0", outcome="succeeded") == 1
    assert bucket(samples, duration, "+Inf", outcome="succeeded") == 1
    assert value(samples, f"{duration}_count", outcome="succeeded") == 1
    assert 7 <= value(samples, f"{duration}_sum", outcome="succeeded") < 9
    lag = "neonhub_dispatch_lag_seconds"
    assert bucket(samples, lag, "2.5", trigger="manual") == 0
    assert bucket(samples, lag, "5.0", trigger="manual") == 1
    assert value(samples, f"{lag}_count", trigger="manual") == 1
    assert 3 <= value(samples, f"{lag}_sum", trigger="manual") < 5
    assert value(samples, "neonhub_run_retries_total") == 0


def test_a_failed_attempt_counts_a_failure_and_a_retry_whose_lag_starts_after_its_backoff(
    no_broker, django_capture_on_commit_callbacks
):
    an_hour_ago = timezone.now() - timedelta(hours=1)
    first = SessionFactory(trigger="SCHEDULE", scheduled_for=an_hour_ago, not_before=an_hour_ago)
    with django_capture_on_commit_callbacks(execute=True):
        run_through(first)
        assert runs.finish_failed(str(first.pk), "boom")
    retry = ExecutionSession.objects.get(trigger="RETRY")
    assert retry.scheduled_for == an_hour_ago
    # Its backoff ended 0.1 s ago.
    ExecutionSession.objects.filter(pk=retry.pk).update(
        not_before=timezone.now() - timedelta(seconds=0.1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_through(retry)
        assert runs.finish_succeeded(str(retry.pk), "ok")

    samples = scrape()

    assert value(samples, "neonhub_runs_total", outcome="failed", trigger="schedule") == 1
    assert value(samples, "neonhub_runs_total", outcome="succeeded", trigger="retry") == 1
    assert value(samples, "neonhub_run_retries_total") == 1
    lag = "neonhub_dispatch_lag_seconds"
    # The first attempt waited an hour past its slot; the retry only since its backoff ended.
    assert bucket(samples, lag, "300.0", trigger="schedule") == 0
    assert bucket(samples, lag, "+Inf", trigger="schedule") == 1
    assert bucket(samples, lag, "5.0", trigger="retry") == 1
    assert value(samples, f"{lag}_count", trigger="retry") == 1


def test_the_last_attempt_fails_without_counting_a_retry(
    no_broker, django_capture_on_commit_callbacks, settings
):
    settings.SCHEDULER_MAX_RETRIES = 0
    session = SessionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run_through(session)
        assert runs.finish_failed(str(session.pk), "boom")

    samples = scrape()

    assert value(samples, "neonhub_runs_total", outcome="failed", trigger="manual") == 1
    assert value(samples, "neonhub_run_retries_total") == 0
    assert value(samples, "neonhub_run_duration_seconds_count", outcome="failed") == 1


def test_a_cancelled_run_has_a_duration_only_if_it_had_started(
    no_broker, django_capture_on_commit_callbacks
):
    waiting = SessionFactory()
    started = SessionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run_through(started)
        assert runs.cancel_session(waiting)
        assert runs.cancel_session(ExecutionSession.objects.get(pk=started.pk))

    samples = scrape()

    assert value(samples, "neonhub_runs_total", outcome="cancelled", trigger="manual") == 2
    assert value(samples, "neonhub_run_duration_seconds_count", outcome="cancelled") == 1


def test_a_transition_that_rolls_back_is_not_counted(no_broker, django_capture_on_commit_callbacks):
    session = SessionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run_through(session)
        with pytest.raises(RuntimeError), transaction.atomic():
            assert runs.finish_succeeded(str(session.pk), "done")
            raise RuntimeError("rolled back")

    samples = scrape()

    assert value(samples, "neonhub_runs_total", outcome="succeeded", trigger="manual") == 0
    assert value(samples, "neonhub_dispatch_lag_seconds_count", trigger="manual") == 1


def test_sessions_deleted_by_retention_are_counted(django_capture_on_commit_callbacks):
    old = SessionFactory(status=Status.SUCCEEDED)
    ExecutionSession.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=100)
    )
    assert value(scrape(), "neonhub_sessions_pruned_total") == 0
    with django_capture_on_commit_callbacks(execute=True):
        retention.prune_sessions(dry_run=True, days=90)
    assert value(scrape(), "neonhub_sessions_pruned_total") == 0
    with django_capture_on_commit_callbacks(execute=True):
        retention.prune_sessions(days=90)
    assert value(scrape(), "neonhub_sessions_pruned_total") == 1


def test_alerts_opened_and_notifications_tried_are_counted(
    django_capture_on_commit_callbacks, monkeypatch, settings
):
    monkeypatch.setattr(pacing, "send_task", lambda *args, **kwargs: None)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    agent = AgentFactory()
    channel = AlertChannel.objects.create(
        owner=agent.owner, name="mail", kind="email", target="ops@example.com", secret="-"
    )
    assert value(scrape(), "neonhub_alerts_opened_total", kind="LATE") == 0
    with django_capture_on_commit_callbacks(execute=True):
        incidents.open_incident(agent, "LATE", "Late.")
        incidents.open_incident(agent, "LATE", "Late again, but one is open.")
    notify.send_test(channel)
    settings.EMAIL_BACKEND = "no.such.Backend"
    notify.send_test(channel)
    samples = scrape()
    assert value(samples, "neonhub_alerts_opened_total", kind="LATE") == 1
    assert value(samples, "neonhub_alerts_opened_total", kind="PAUSED") == 0
    sent = {
        outcome: value(
            samples, "neonhub_notifications_total", channel_kind="email", outcome=outcome
        )
        for outcome in ("sent", "failed")
    }
    assert sent == {"sent": 1, "failed": 1}
    assert value(samples, "neonhub_notifications_total", channel_kind="slack", outcome="sent") == 0


def test_events_sent_are_counted_by_event():
    frame = {"event": "agent:progress", "data": {}}
    send_now(["neonhub-test-nobody"], frame)
    send_now(["neonhub-test-nobody", "neonhub-test-nobody-2"], frame)
    send_now(["neonhub-test-nobody"], {"event": "scheduler:status", "data": {}})

    def counted() -> Samples | None:
        samples = scrape()
        key = ("neonhub_events_sent_total", (("event", "scheduler:status"),))
        return samples if key in samples else None

    samples = wait_until(counted, timeout=5, what="events counted")
    # One count per frame, however many groups it went to.
    assert value(samples, "neonhub_events_sent_total", event="agent:progress") == 2
    assert value(samples, "neonhub_events_sent_total", event="scheduler:status") == 1


# --- gauges ----------------------------------------------------------------------------------


def test_the_run_gauges_count_the_database_now(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 7
    SessionFactory()
    SessionFactory(not_before=timezone.now() + timedelta(minutes=5))
    SessionFactory(status=Status.RUNNING, started_at=timezone.now())
    SessionFactory(status=Status.SUCCEEDED)
    scheduled = AgentFactory()
    set_schedule(scheduled, expression="0 9 * * *")
    paused = AgentFactory()
    set_schedule(paused, expression="0 9 * * *", enabled=False)

    samples = scrape()

    assert value(samples, "neonhub_runs_queued") == 2
    assert value(samples, "neonhub_runs_running") == 1
    assert value(samples, "neonhub_agents_scheduled") == 1
    assert value(samples, "neonhub_runs_max_concurrent") == 7
    assert value(samples, "neonhub_metrics_source_up", source="database") == 1
    assert value(samples, "neonhub_metrics_source_up", source="redis") == 1


def test_beat_age_and_live_workers_are_read_from_their_heartbeats(own_workers_key):
    get_redis().delete(BEAT_HEARTBEAT_KEY)
    samples = scrape()
    assert value(samples, "neonhub_beat_heartbeat_age_seconds") == float("inf")
    assert value(samples, "neonhub_workers_alive") == 0

    record_beat_heartbeat()
    heartbeats.report_worker("one@host")
    heartbeats.report_worker("two@host")
    get_redis().zadd(own_workers_key, {"gone@host": time.time() - 120})
    samples = scrape()
    get_redis().delete(BEAT_HEARTBEAT_KEY)

    assert 0 <= value(samples, "neonhub_beat_heartbeat_age_seconds") < 5
    assert value(samples, "neonhub_workers_alive") == 2


def test_websocket_connections_are_counted_across_users_and_processes(monkeypatch):
    prefix = f"neonhub:test:{uuid.uuid4().hex[:12]}:ws:connections:"
    monkeypatch.setattr(connections, "KEY_PREFIX", prefix)

    async def open_connections() -> None:
        # As the consumers of two web processes would, through the real lease script.
        try:
            assert await connections.claim_connection(1001, "daphne-a.channel-1")
            assert await connections.claim_connection(1001, "daphne-b.channel-2")
            assert await connections.claim_connection(1002, "daphne-a.channel-3")
        finally:
            await connections.close_redis()

    try:
        async_to_sync(open_connections)()
        # A connection whose process died: its lease ran out a minute ago.
        get_redis().zadd(connections.connections_key(1003), {"dead.channel": time.time() - 60})
        assert value(scrape(), "neonhub_websocket_connections") == 3

        get_redis().zrem(connections.connections_key(1001), "daphne-b.channel-2")
        assert value(scrape(), "neonhub_websocket_connections") == 2
    finally:
        keys = list(get_redis().scan_iter(f"{prefix}*"))
        if keys:
            get_redis().delete(*keys)


# --- failures --------------------------------------------------------------------------------


def test_with_redis_down_the_scrape_still_answers_from_the_database(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/15"
    SessionFactory()

    started = time.monotonic()
    samples = scrape()

    assert time.monotonic() - started < 5
    assert value(samples, "neonhub_metrics_source_up", source="redis") == 0
    assert value(samples, "neonhub_metrics_source_up", source="database") == 1
    assert value(samples, "neonhub_runs_queued") == 1
    # Left out rather than reported as zero.
    assert not any(name.startswith("neonhub_runs_total") for name, _ in samples)


def test_recording_never_raises_and_pauses_while_redis_is_down(
    no_broker, django_capture_on_commit_callbacks, settings
):
    session = SessionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run_through(session)
        runs.finish_succeeded(str(session.pk), "done")
    reachable = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/15"
    failed = SessionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        run_through(failed)
        assert runs.finish_failed(str(failed.pk), "boom")
    assert metrics._paused_until > time.monotonic()

    settings.REDIS_URL = reachable
    samples = scrape()
    assert value(samples, "neonhub_runs_total", outcome="succeeded", trigger="manual") == 1
    assert value(samples, "neonhub_runs_total", outcome="failed", trigger="manual") == 0


def test_a_hook_given_something_unexpected_does_not_raise():
    metrics.run_started(object())
    metrics.run_finished(None)
    metrics.event_sent(None)


# --- the endpoint ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/metrics/"])
def test_it_answers_in_prometheus_text_format_with_and_without_a_slash(path):
    response = Client().get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert set(families) == DOCUMENTED
    assert all(family.documentation for family in families.values())


def test_it_needs_no_sign_in_and_shows_no_user_data(user):
    AgentFactory(owner=user, name="Secret agent name")
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"Secret agent name" not in response.content and user.username.encode() not in (
        response.content
    )


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_are_refused(method):
    response = getattr(Client(), method)("/metrics")
    assert response.status_code == 405
    assert response.json() == {"success": False, "error": "Method not allowed."}


# --- METRICS_TOKEN ---------------------------------------------------------------------------

METRICS_TOKEN = "scrape-token-4f8a2c"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token",
        f"Bearer {METRICS_TOKEN}x",
        f"Bearer {METRICS_TOKEN[:-1]}",
        f"Basic {METRICS_TOKEN}",
        f"Token {METRICS_TOKEN}",
        METRICS_TOKEN,
        "Bearer t\u00f6ken",
    ],
)
def test_with_a_metrics_token_set_anything_but_that_bearer_token_gets_401(settings, authorization):
    settings.METRICS_TOKEN = METRICS_TOKEN
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "A valid metrics token is required."}
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"neonhub_" not in response.content


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_with_a_metrics_token_set_the_bearer_token_gets_the_metrics(settings, scheme):
    settings.METRICS_TOKEN = METRICS_TOKEN
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"{scheme} {METRICS_TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")


def test_a_metrics_token_is_asked_for_before_the_method_is_checked(settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    assert Client().post("/metrics").status_code == 401
    authorized = Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert authorized.status_code == 405


def test_a_metrics_token_leaves_healthz_open(settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    assert Client().get("/healthz").status_code in (200, 503)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_web_process_with_a_metrics_token_answers_401_without_it():
    daphne, port = start_daphne(METRICS_TOKEN=METRICS_TOKEN)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        anonymous = requests.get(url, timeout=10)
        wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        scraped = requests.get(
            url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
        )
    finally:
        daphne.stop()
    assert (anonymous.status_code, wrong.status_code, scraped.status_code) == (401, 401, 200)
    assert anonymous.json()["success"] is False
    families = {f.name for f in text_string_to_metric_families(scraped.text)}
    assert families == DOCUMENTED


# --- a real worker ---------------------------------------------------------------------------


def finished(agent: AIAgent, count: int):
    def check():
        sessions = list(agent.sessions.all())
        return len(sessions) == count and all(s.is_finished for s in sessions)

    return check


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_runs_on_a_real_worker_show_up_in_metrics_scraped_here(worker):
    succeeds = AgentFactory(configuration={"steps": 2, "stepSeconds": 0.1})
    fails_once = AgentFactory(configuration={"steps": 1, "stepSeconds": 0, "failTimes": 1})
    for agent in (succeeds, fails_once):
        assert client_for(agent.owner).post(f"/api/agents/{agent.pk}/run").status_code == 202
    wait_until(finished(succeeds, 1), what="the first run")
    wait_until(finished(fails_once, 2), what="the failed run and its retry")

    def complete() -> Samples | None:
        samples = scrape()
        events = ("neonhub_events_sent_total", (("event", "agent:completed"),))
        return samples if samples.get(events, 0) >= 2 else None

    samples = wait_until(complete, timeout=10, what="events counted")

    runs_total = "neonhub_runs_total"
    assert value(samples, runs_total, outcome="succeeded", trigger="manual") == 1
    assert value(samples, runs_total, outcome="failed", trigger="manual") == 1
    assert value(samples, runs_total, outcome="succeeded", trigger="retry") == 1
    assert value(samples, "neonhub_run_retries_total") == 1
    assert value(samples, "neonhub_run_duration_seconds_count", outcome="succeeded") == 2
    assert value(samples, "neonhub_run_duration_seconds_sum", outcome="succeeded") >= 0.2
    assert value(samples, "neonhub_dispatch_lag_seconds_count", trigger="manual") == 2
    assert value(samples, "neonhub_dispatch_lag_seconds_count", trigger="retry") == 1
    assert value(samples, "neonhub_events_sent_total", event="agent:started") == 3
    assert value(samples, "neonhub_events_sent_total", event="agent:failed") == 1
    assert value(samples, "neonhub_workers_alive") >= 1
    assert value(samples, "neonhub_runs_running") == 0
    assert value(samples, "neonhub_runs_queued") == 0
