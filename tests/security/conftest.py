"""Fixtures for the bad-input and authorization tests.

Two users with an agent each (scheduled, with a queued and a finished
session) and a staff user: enough for requests to reach the code behind the
ownership check, and for one user to aim at the other's ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from rest_framework_simplejwt.tokens import AccessToken

from agents.models import AIAgent, ExecutionSession
from scheduling import pacing, runs, services
from scheduling.models import AlertChannel
from tests.factories import AgentFactory, SessionFactory, UserFactory
from tests.processes import start_daphne

# The WebSocket fixtures (a real channels-redis layer under a private prefix,
# the ASGI application, connections closed after each test) are shared with
# the realtime tests.
from tests.realtime.conftest import application, layer, redis_prefix, sockets  # noqa: F401


@dataclass
class Holdings:
    """One user and what they own."""

    user: AbstractBaseUser
    agent: AIAgent
    queued: ExecutionSession
    finished: ExecutionSession
    channel: AlertChannel
    token: str = field(init=False)

    def __post_init__(self) -> None:
        self.token = str(AccessToken.for_user(self.user))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def restore(self) -> None:
        """Bring back what a previous request deleted or cancelled, under the same ids,
        so that every generated request can reach the code behind the ownership check."""
        if not AIAgent.objects.filter(pk=self.agent.pk).exists():
            self.agent = holdings_of(self.user, agent_id=self.agent.pk).agent
            self.queued = ExecutionSession.objects.get(agent=self.agent, status="QUEUED")
            self.finished = ExecutionSession.objects.get(agent=self.agent, status="FAILED")
            return
        if not AlertChannel.objects.filter(pk=self.channel.pk).exists():
            self.channel = channel_of(self.user, channel_id=self.channel.pk)
        if not ExecutionSession.objects.filter(pk=self.queued.pk, status="QUEUED").exists():
            ExecutionSession.objects.filter(pk=self.queued.pk).delete()
            self.queued = SessionFactory(pk=self.queued.pk, agent=self.agent)


def holdings_of(
    user: AbstractBaseUser, *, agent_id: Any = None, name: str | None = None
) -> Holdings:
    extra: dict[str, Any] = {} if agent_id is None else {"pk": agent_id}
    agent = AgentFactory(owner=user, name=name or f"Secret plan of {user.username}", **extra)
    services.set_schedule(agent, expression="0 9 * * 1-5", timezone_name="Europe/Berlin")
    agent.refresh_from_db()
    queued = SessionFactory(agent=agent)
    finished = SessionFactory(
        agent=agent,
        status=ExecutionSession.Status.FAILED,
        success=False,
        error_message=f"Boom in {agent.name}.",
        output_summary=f"Half of {agent.name}",
        duration_ms=1200,
    )
    channel = AlertChannel.objects.filter(owner=user).first() or channel_of(user)
    return Holdings(user=user, agent=agent, queued=queued, finished=finished, channel=channel)


def channel_of(user: AbstractBaseUser, *, channel_id: Any = None) -> AlertChannel:
    extra: dict[str, Any] = {} if channel_id is None else {"pk": channel_id}
    return AlertChannel.objects.create(
        owner=user,
        name=f"Pager of {user.username}",
        kind=AlertChannel.Kind.EMAIL,
        target=f"{user.username}@example.com",
        secret=f"secret-of-{user.username}",
        **extra,
    )


@pytest.fixture
def alice(db) -> Holdings:
    return holdings_of(UserFactory(username="alice"), name="Alice's quarterly forecast")


@pytest.fixture
def bob(db) -> Holdings:
    return holdings_of(UserFactory(username="bob"), name="Bob's newsletter")


@pytest.fixture
def staff(db) -> AbstractBaseUser:
    return UserFactory(username="staffer", is_staff=True)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Runs asked for here are recorded as QUEUED and never handed to a broker,
    so no worker is needed and nothing is left waiting in Redis."""
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)


@pytest.fixture(scope="module")
def daphne(django_db_setup) -> Iterator[int]:
    """A real daphne for one module's tests; its port."""
    process, port = start_daphne(DEBUG="0")
    try:
        yield port
    finally:
        process.stop()
        print(process.output()[-3000:])  # shown only when a test failed
