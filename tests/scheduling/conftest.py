"""Beat's scheduler driven in-process through an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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
