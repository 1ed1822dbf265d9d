from __future__ import annotations

import pytest

from realtime.groups import STAFF_AGENTS_GROUP, owner_agents_group
from tests.factories import AgentFactory
from tests.realtime.helpers import ask, emit

pytestmark = pytest.mark.django_db(transaction=True)


async def emit_for_agent(layer, agent) -> dict:
    """What the emitter sends for one event of ``agent`` outside its agent room."""
    data = {"agentId": str(agent.pk), "timestamp": "2026-01-02T09:00:00Z", "progress": 50}
    frame = await emit(layer, owner_agents_group(agent.owner_id), "agent:progress", data)
    await emit(layer, STAFF_AGENTS_GROUP, "agent:progress", data)
    return frame


@pytest.fixture
def agents(user, other_user):
    return AgentFactory(owner=user), AgentFactory(owner=other_user)


async def test_monitoring_agents_shows_a_user_only_their_own_agents(
    sockets, layer, user, other_user, agents
):
    mine, theirs = agents
    me = await sockets.open_as(user)
    them = await sockets.open_as(other_user)
    for communicator in (me, them):
        answer = await ask(communicator, "monitoring:subscribe", "agents")
        assert answer == {"event": "subscribed", "data": {"room": "monitoring:agents"}}

    mine_frame = await emit_for_agent(layer, mine)
    theirs_frame = await emit_for_agent(layer, theirs)

    assert await me.receive_json_from(timeout=2) == mine_frame
    assert await them.receive_json_from(timeout=2) == theirs_frame
    assert await me.receive_nothing(0.3)
    assert await them.receive_nothing(0.1)


async def test_monitoring_agents_shows_staff_every_agent(sockets, layer, staff_user, agents):
    mine, theirs = agents
    staff = await sockets.open_as(staff_user)
    await ask(staff, "monitoring:subscribe", "agents")

    first = await emit_for_agent(layer, mine)
    second = await emit_for_agent(layer, theirs)

    # Once each: staff are in the staff group only, not in owners' groups.
    assert await staff.receive_json_from(timeout=2) == first
    assert await staff.receive_json_from(timeout=2) == second
    assert await staff.receive_nothing(0.3)


async def test_monitoring_unsubscribe_stops_the_events(sockets, layer, user, agents):
    mine, _ = agents
    me = await sockets.open_as(user)
    await ask(me, "monitoring:subscribe", "agents")
    answer = await ask(me, "monitoring:unsubscribe", "agents")
    assert answer == {"event": "unsubscribed", "data": {"room": "monitoring:agents"}}

    await emit_for_agent(layer, mine)
    assert await me.receive_nothing(0.3)
