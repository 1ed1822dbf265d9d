"""Fair share and the per-user and per-type caps with two real workers on one Redis."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from agents.models import ExecutionSession
from tests.factories import AgentFactory, UserFactory
from tests.stack import Api, stack  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Status = ExecutionSession.Status


def all_finished(count: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ExecutionSession.objects.filter(status__in=ExecutionSession.FINISHED).count() == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} runs not finished within {timeout} s")


def test_two_users_queued_runs_alternate(stack):  # noqa: F811
    s = stack(SCHEDULER_MAX_CONCURRENT="1")
    web = s.web()
    alice, bob = UserFactory(), UserFactory()
    steps = {"steps": 1, "stepSeconds": 0.2}
    # All of alice's runs wait before any of bob's: oldest first would run hers first.
    for owner in (alice, bob):
        api = Api(web, owner)
        for _ in range(3):
            agent = AgentFactory(owner=owner, configuration=steps)
            assert api.post(f"/api/agents/{agent.pk}/run").status_code == 202
    # The runs wait until the workers come, whose first pass sees all six.
    s.worker(concurrency=1)
    s.worker(concurrency=1)

    all_finished(6)
    assert set(ExecutionSession.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}
    started = list(ExecutionSession.objects.order_by("started_at").values_list("owner", flat=True))
    assert started == [alice.pk, bob.pk] * 3


def test_per_user_and_per_type_caps_hold_across_two_workers(stack):  # noqa: F811
    s = stack(
        SCHEDULER_MAX_CONCURRENT="4",
        SCHEDULER_MAX_CONCURRENT_PER_USER="2",
        SCHEDULER_TYPE_LIMITS="demo=1",
        # A second agent type, so one type's cap leaves room for the other.
        AGENT_EXTRA_RUNNERS="relay=agents.runners.demo.DemoRunner",
    )
    # Two threads each: four runs at once need both workers.
    s.worker(concurrency=2)
    s.worker(concurrency=2)
    web = s.web()
    steps = {"steps": 2, "stepSeconds": 0.3}
    owners = [UserFactory(), UserFactory()]
    agents = [
        (owner, AgentFactory(owner=owner, agent_type=agent_type, configuration=steps))
        for owner in owners
        for agent_type in ("demo", "demo", "relay", "relay", "relay")
    ]
    apis = {owner.pk: Api(web, owner) for owner in owners}
    for owner, agent in agents:
        assert apis[owner.pk].post(f"/api/agents/{agent.pk}/run").status_code == 202

    most_total = most_demo = 0
    most_per_owner: Counter = Counter()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        going = list(
            ExecutionSession.objects.filter(status=Status.RUNNING).values_list(
                "owner", "agent__agent_type"
            )
        )
        most_total = max(most_total, len(going))
        most_demo = max(most_demo, sum(agent_type == "demo" for _, agent_type in going))
        for owner, count in Counter(owner for owner, _ in going).items():
            most_per_owner[owner] = max(most_per_owner[owner], count)
        if ExecutionSession.objects.filter(status=Status.SUCCEEDED).count() == len(agents):
            break
        time.sleep(0.02)

    assert ExecutionSession.objects.filter(status=Status.SUCCEEDED).count() == len(agents)
    assert most_demo == 1
    assert most_per_owner == {owners[0].pk: 2, owners[1].pk: 2}
    assert most_total == 4
    assert len(set(ExecutionSession.objects.values_list("worker", flat=True))) == 2
