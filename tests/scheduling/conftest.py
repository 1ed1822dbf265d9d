from __future__ import annotations

import time

import pytest

from agents.models import ExecutionSession
from neonhub.redis import get_redis
from tests.processes import start_worker


@pytest.fixture(scope="session")
def live_worker(django_db_setup, django_db_blocker):
    """A real Celery worker on the test database and Redis, for the whole session.

    Backoff is shortened so retry tests take seconds, not minutes.
    """
    worker = start_worker(SCHEDULER_BACKOFF_BASE="100", SCHEDULER_BACKOFF_MAX="1000")
    yield worker
    worker.stop()


@pytest.fixture
def worker(live_worker, transactional_db):
    get_redis().delete("neonhub:beat:heartbeat")
    yield live_worker
    # Let nothing of this test's runs leak into the next one.
    wait_until(
        lambda: (
            not ExecutionSession.objects.filter(
                status__in=[ExecutionSession.Status.RUNNING]
            ).exists()
        ),
        timeout=30,
    )


def wait_until(predicate, timeout: float = 30, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s")
