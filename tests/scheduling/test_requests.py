"""Admission requests coalesce and status broadcasts are paced, through real Redis;
what triggers a broadcast."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time

import pytest
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession
from core.redis import get_redis
from scheduling import admission, executor, later, pacing, runs, tasks
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """The tasks that would have gone to the broker, by name, and the calls
    put off in this process, as ("later", seconds, function name)."""
    calls: list = []

    send_task = pacing.send_task

    def recorder(name, *args, **options):
        if name not in (tasks.admit.name, tasks.publish_status.name):
            return send_task(name, *args, **options)
        # A countdown message would kill its worker if Redis restarts.
        assert "countdown" not in options and "eta" not in options
        calls.append(name)

    monkeypatch.setattr(pacing, "send_task", recorder)
    monkeypatch.setattr(
        later,
        "call_later",
        lambda seconds, function: calls.append(("later", seconds, function.__name__)),
    )
    with fresh_flags():
        yield calls


@contextlib.contextmanager
def fresh_flags():
    """No request flags in Redis, and no call put off by an earlier test that
    could fire in this one."""
    later._running_timer().clear()
    redis = get_redis()
    keys = [
        pacing._flag_key(flag)
        for flag in (pacing.ADMISSION_FLAG, pacing.STATUS_WINDOW_FLAG, pacing.STATUS_TRAILING_FLAG)
    ]
    redis.delete(*keys)
    yield
    redis.delete(*keys)


def test_requests_made_while_one_waits_join_it(sent):
    for _ in range(50):
        pacing.request_admission()

    assert sent == ["scheduling.admit"]


def test_an_admission_pass_takes_the_request_so_the_next_one_goes_out(sent):
    pacing.request_admission()
    admission.admit_waiting_runs()
    pacing.request_admission()

    assert sent == ["scheduling.admit", "scheduling.admit"]


def test_a_retry_is_admitted_by_a_call_put_off_for_its_backoff(
    sent, django_capture_on_commit_callbacks, settings
):
    settings.SCHEDULER_BACKOFF_BASE = 4000
    agent = AgentFactory()
    session = SessionFactory(agent=agent, status=ExecutionSession.Status.RUNNING)

    with django_capture_on_commit_callbacks(execute=True):
        assert runs.finish_failed(str(session.pk), "boom")

    put_off = [call for call in sent if call[0] == "later"]
    assert len(put_off) == 1
    _, seconds, function = put_off[0]
    assert 4.0 <= seconds <= 5.0
    assert function == "request_admission"
    assert agent.sessions.get(attempt=2).status == ExecutionSession.Status.QUEUED


def test_a_call_put_off_runs_later_in_this_process():
    called = threading.Event()
    later.call_later(1.0, called.set)
    assert not called.is_set()
    assert called.wait(timeout=10)


def test_a_request_whose_task_was_lost_stops_standing_after_its_expiry(sent, monkeypatch):
    monkeypatch.setattr(pacing, "ADMISSION_REQUEST_TTL_MS", 100)
    pacing.request_admission()
    pacing.request_admission()
    time.sleep(0.25)
    pacing.request_admission()

    assert sent == ["scheduling.admit", "scheduling.admit"]


def test_a_request_the_broker_refused_does_not_stand(sent, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(pacing, "send_task", refuse)
    pacing.request_admission()
    monkeypatch.undo()

    assert get_redis().exists(pacing._flag_key(pacing.ADMISSION_FLAG)) == 0


def test_without_redis_every_request_goes_out(sent, monkeypatch):
    class Down:
        def set(self, *args, **kwargs):
            raise pacing.RedisError("down")

        def delete(self, *args):
            raise pacing.RedisError("down")

    monkeypatch.setattr(pacing, "fast_redis", lambda: Down())
    pacing.request_admission()
    pacing.request_admission()

    assert sent == ["scheduling.admit", "scheduling.admit"]


class _TrailingBroadcast:
    """Matches the trailing broadcast put off for later, however long."""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, tuple)
            and other[0] == "later"
            and other[2] == "_send_trailing_status_broadcast"
        )


TRAILING = _TrailingBroadcast()


def test_status_goes_out_at_once_then_once_more_at_the_end_of_the_window(sent):
    for _ in range(30):
        pacing.request_status_broadcast()

    window = pacing.STATUS_WINDOW_MS / 1000
    assert sent == ["scheduling.publish_status", TRAILING]
    # Due just before the window that the first one opened closes.
    assert 0 < sent[1][1] < window

    time.sleep(window + 0.1)
    pacing.request_status_broadcast()
    assert sent[-1] == "scheduling.publish_status"


def test_the_pool_is_on_for_postgresql_unless_connections_persist():
    def pool_option(**env: str) -> str:
        code = (
            "from django.conf import settings; "
            "print(settings.DATABASES['default'].get('OPTIONS', {}).get('pool'))"
        )
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env={
                "DJANGO_SETTINGS_MODULE": "neonhub.settings",
                "SECRET_KEY": "s" * 50,
                "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
                "PATH": "/usr/bin:/bin",
                **env,
            },
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() or result.stderr.strip().splitlines()[-1]

    assert "'max_size': 20" in pool_option()
    assert "'max_size': 7" in pool_option(DATABASE_POOL_MAX_SIZE="7")
    assert pool_option(DATABASE_POOL="0") == "None"
    assert pool_option(DATABASE_CONN_MAX_AGE="60") == "None"
    assert "cannot both be set" in pool_option(DATABASE_CONN_MAX_AGE="60", DATABASE_POOL="1")


def test_the_trailing_broadcast_opens_the_next_window(sent):
    pacing.request_status_broadcast()
    pacing.request_status_broadcast()
    assert sent == ["scheduling.publish_status", TRAILING]

    pacing._send_trailing_status_broadcast()  # its timer fires
    # A run finished after it may not be in what it reads: it needs a
    # broadcast of its own, at the end of the window the trailing one opened.
    pacing.request_status_broadcast()
    pacing.request_status_broadcast()

    assert sent == ["scheduling.publish_status", TRAILING, "scheduling.publish_status", TRAILING]


def test_a_steady_stream_of_requests_gets_one_broadcast_per_window(monkeypatch):
    """With the real timer: one broadcast per window, not one at once and one
    trailing (which would be two per window)."""
    monkeypatch.setattr(pacing, "STATUS_WINDOW_MS", 200)
    sent = []
    monkeypatch.setattr(pacing, "send_task", lambda name, **options: sent.append(1))
    window = pacing.STATUS_WINDOW_MS / 1000
    with fresh_flags():
        started = time.monotonic()
        while time.monotonic() - started < 20 * window:
            pacing.request_status_broadcast()
            time.sleep(window / 20)
        windows = (time.monotonic() - started) / window
        time.sleep(3 * window)

    # About one per window (a little more: each is due just before its
    # window ends); two per window would be 40. Room for a late timer or two.
    assert len(sent) <= 1.75 * windows


def test_an_admission_that_started_runs_has_them_broadcast_after_its_commit(
    sent, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(admission, "_send_executions", lambda admitted: None)
    session = SessionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        assert admission.admit_waiting_runs() == [str(session.pk)]

    assert "scheduling.publish_status" in sent


@pytest.mark.parametrize(("admitted", "broadcasts"), [([], 1), (["a-session"], 0)])
def test_the_worker_broadcasts_after_its_pass_unless_the_pass_did(
    sent, monkeypatch, admitted, broadcasts
):
    monkeypatch.setattr(admission, "admit_waiting_runs", lambda reclaim: admitted)
    executor._fill_freed_slot()

    assert sent.count("scheduling.publish_status") == broadcasts


def test_cancelling_leaves_the_agent_idle_whatever_failed_before(monkeypatch):
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)
    agent = AgentFactory()
    waiting = SessionFactory(agent=agent)
    # A later-created run failed for good (admitted first, by priority).
    SessionFactory(agent=agent, status=ExecutionSession.Status.FAILED, completed_at=timezone.now())

    assert runs.cancel_session(waiting)
    agent.refresh_from_db()
    assert agent.status == AIAgent.Status.IDLE
