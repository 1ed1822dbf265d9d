"""/healthz: database, Redis, beat and workers, answered fast whatever hangs."""

from __future__ import annotations

import json
import socket
import threading
import time
import types
import urllib.request
import uuid

import pytest
from django.db import OperationalError
from django.test import Client

from core.redis import get_redis
from observability import health, heartbeats
from observability.heartbeats import BEAT_HEARTBEAT_KEY, beat_is_running, record_beat_heartbeat
from tests.processes import free_port, start_beat, start_daphne, start_worker, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_beat_heartbeat():
    get_redis().delete(BEAT_HEARTBEAT_KEY)
    yield
    get_redis().delete(BEAT_HEARTBEAT_KEY)


@pytest.fixture
def own_workers_key(monkeypatch):
    """Worker heartbeats of this test only: the session's live worker, if one
    runs, reports under the real key."""
    key = f"neonhub:test:{uuid.uuid4().hex[:12]}:workers"
    monkeypatch.setattr(heartbeats, "WORKERS_KEY", key)
    yield key
    get_redis().delete(key)


@pytest.fixture
def client() -> Client:
    return Client()


def healthz(client: Client, path: str = "/healthz"):
    response = client.get(path)
    return response, response.json()


def unreachable_redis(settings) -> str:
    """Point every Redis client the checks use at a port nobody listens on."""
    url = f"redis://:s3cret-password@127.0.0.1:{free_port()}/15"
    settings.REDIS_URL = url
    return url


def test_it_answers_200_when_everything_holds(client, own_workers_key):
    record_beat_heartbeat()
    heartbeats.report_worker("worker@test")

    response, body = healthz(client)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["redis"] == {"ok": True}
    assert checks["beat"]["ok"] is True
    assert 0 <= checks["beat"]["ageSeconds"] < 5
    assert checks["workers"] == {"ok": True, "alive": 1}


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_it_answers_with_and_without_a_trailing_slash(client, own_workers_key, path):
    record_beat_heartbeat()
    heartbeats.report_worker("worker@test")
    assert client.get(path).status_code == 200
    assert client.head(path).status_code == 200


def test_it_needs_no_sign_in_and_ignores_a_bad_token(client, own_workers_key):
    record_beat_heartbeat()
    heartbeats.report_worker("worker@test")
    response = client.get("/healthz", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_are_refused(client, method):
    response = getattr(client, method)("/healthz")
    assert response.status_code == 405
    assert response.json() == {"success": False, "error": "Method not allowed."}
    assert response["Allow"] == "GET, HEAD"


def test_a_silent_beat_gives_503_naming_beat(client, own_workers_key):
    heartbeats.report_worker("worker@test")

    response, body = healthz(client)

    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["beat"] == {"ok": False, "error": "no heartbeat in the last 15 s"}
    assert all(body["checks"][name]["ok"] for name in ("database", "redis", "workers"))


def test_a_stale_beat_heartbeat_is_reported_with_its_age(client, own_workers_key):
    heartbeats.report_worker("worker@test")
    get_redis().set(BEAT_HEARTBEAT_KEY, repr(time.time() - 42), ex=60)

    response, body = healthz(client)

    assert response.status_code == 503
    beat = body["checks"]["beat"]
    assert beat["ok"] is False
    assert beat["error"] == "no heartbeat for 42 s"
    assert 42 <= beat["ageSeconds"] < 50


def test_no_worker_gives_503_naming_workers(client, own_workers_key):
    record_beat_heartbeat()

    response, body = healthz(client)

    assert response.status_code == 503
    assert body["checks"]["workers"] == {
        "ok": False,
        "alive": 0,
        "error": "no worker reported in the last 15 s",
    }
    assert body["checks"]["beat"]["ok"] is True


def test_a_worker_that_stopped_reporting_no_longer_counts(own_workers_key):
    now = time.time()
    get_redis().zadd(own_workers_key, {"killed@host": now - 60, "alive@host": now})
    assert heartbeats.alive_workers() == 1


def test_a_worker_reports_on_ready_and_leaves_on_shutdown(own_workers_key):
    sender = types.SimpleNamespace(hostname="celery@test-host")
    heartbeats.start_worker_heartbeat(sender=sender)
    try:
        wait_until(lambda: heartbeats.alive_workers() == 1, timeout=5, what="heartbeat")
        assert get_redis().zscore(own_workers_key, "celery@test-host") is not None
    finally:
        heartbeats.stop_worker_heartbeat(sender=sender)
    assert heartbeats.alive_workers() == 0
    assert get_redis().zscore(own_workers_key, "celery@test-host") is None


def test_a_down_redis_gives_503_at_once_naming_redis(client, settings):
    unreachable_redis(settings)

    started = time.monotonic()
    response, body = healthz(client)

    assert time.monotonic() - started < 5
    assert response.status_code == 503
    checks = body["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["redis"] == {"ok": False, "error": "unavailable (ConnectionError)"}
    for name in ("beat", "workers"):
        assert checks[name] == {"ok": False, "error": "cannot be checked: Redis is unavailable"}


def test_a_redis_that_accepts_but_never_answers_is_bounded_by_timeouts(client, settings):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/15"

        started = time.monotonic()
        response, body = healthz(client)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert elapsed < 5
    assert response.status_code == 503
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"] == {"ok": True}


def test_a_check_that_hangs_is_cut_off_at_the_deadline(client, own_workers_key, monkeypatch):
    record_beat_heartbeat()
    heartbeats.report_worker("worker@test")
    release = threading.Event()

    def hanging() -> dict:
        release.wait(30)
        return {"ok": True}

    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setitem(health.CHECKS, "database", hanging)
    try:
        started = time.monotonic()
        response, body = healthz(client)
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert elapsed < 5
    assert response.status_code == 503
    assert body["checks"]["database"] == {"ok": False, "error": "no answer within 0.5 s"}
    assert body["checks"]["redis"] == {"ok": True}


def test_a_database_error_is_named_without_its_message(client, own_workers_key, monkeypatch):
    record_beat_heartbeat()
    heartbeats.report_worker("worker@test")

    class BrokenConnection:
        def cursor(self):
            raise OperationalError('could not connect to "db.internal" as user "neonhub"')

        def close(self) -> None:
            pass

    monkeypatch.setattr(health, "connection", BrokenConnection())

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False,
        "error": "unavailable (OperationalError)",
    }
    assert b"db.internal" not in response.content and b"neonhub" not in response.content


def test_the_answer_reveals_no_address_or_password(client, settings):
    url = unreachable_redis(settings)
    content = client.get("/healthz").content.decode()
    assert "s3cret" not in content
    assert url.rsplit(":", 1)[1].split("/")[0] not in content
    assert "127.0.0.1" not in content


# --- real processes ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_with_a_real_worker_and_beat_a_real_web_process_answers_200(worker):
    beat = start_beat()
    daphne, port = start_daphne()
    try:
        wait_until(beat_is_running, timeout=30, what="beat heartbeat")
        wait_until(lambda: heartbeats.alive_workers() >= 1, timeout=15, what="worker heartbeat")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            status, body = response.status, json.load(response)
    finally:
        daphne.stop()
        beat.stop()
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["workers"]["alive"] >= 1


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_reports_while_it_runs_and_leaves_when_stopped():
    def members() -> set[bytes]:
        return set(get_redis().zrange(heartbeats.WORKERS_KEY, 0, -1))

    before = members()
    own = start_worker(concurrency=1)
    try:
        new = wait_until(lambda: members() - before, timeout=15, what="its heartbeat")
    finally:
        own.stop()
    assert len(new) == 1
    assert not members() & new
