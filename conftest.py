from __future__ import annotations

import os

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from agents.models import ExecutionSession
from core.redis import get_redis
from tests.factories import UserFactory
from tests.processes import start_worker, wait_until


def pytest_configure(config):
    # Test runs side by side on one Redis must not take each other's tasks:
    # this run, and every worker it starts, use a queue of their own.
    from neonhub.celery import app

    queue = f"neonhub-test-{os.getpid()}"
    os.environ["CELERY_QUEUE"] = queue
    app.conf.task_default_queue = queue


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each test run its own test database, so runs side by side never collide."""
    from pytest_django.fixtures import _set_suffix_to_test_databases

    _set_suffix_to_test_databases(f"run{os.getpid()}")


@pytest.fixture(autouse=True)
def generous_rate_limit(settings):
    # Rate limiting has its own tests; elsewhere it would only make tests flaky.
    settings.API_RATE_LIMIT = "100000/m"
    settings.API_TOKEN_RATE_LIMIT = "100000/m"


@pytest.fixture(autouse=True, scope="session")
def clean_rate_limit_counters():
    redis = get_redis()
    keys = list(redis.scan_iter("neonhub:ratelimit:*"))
    if keys:
        redis.delete(*keys)


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def staff_user(db):
    return UserFactory(is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    """An API client signed in as ``user`` with a real JWT access token."""
    return client_for(user)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
            not ExecutionSession.objects.filter(status=ExecutionSession.Status.RUNNING).exists()
        ),
        timeout=30,
    )
