"""Beat's scheduler driven in-process through an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from django.db import connections

from neonhub.celery import app as celery_app
from scheduling import beat as beat_module
from scheduling.beat import AgentScheduler

T0 = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(seconds=1))


@pytest.fixture
def make_scheduler(monkeypatch):
    sent: list[str] = []
    # Beat closes stale connections between ticks; here that would close the
    # connection holding the test's transaction.
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    monkeypatch.setattr(beat_module, "close_old_connections", lambda: None)

    def make(clock: Clock) -> AgentScheduler:
        scheduler = AgentScheduler(app=celery_app, clock=clock)
        # The entries left to DatabaseScheduler would go to the broker; record them instead.
        monkeypatch.setattr(
            scheduler, "apply_entry", lambda entry, producer=None: sent.append(entry.name)
        )
        return scheduler

    make.sent = sent
    return make


Result = TypeVar("Result")


def at_once_in_two_threads(work: Callable[[], Result]) -> list[Result]:
    """Run ``work`` in two threads released together (two beats dispatching at
    once, each with its own database connection); returns both results and
    re-raises the first error either thread met."""
    barrier = threading.Barrier(2)
    results: list[Result] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(work())
        except BaseException as error:  # re-raised by the calling thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results
