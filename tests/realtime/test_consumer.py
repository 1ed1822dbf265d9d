from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from realtime.groups import SCHEDULER_GROUP, agent_group, owner_agents_group
from realtime.publisher import send_to_groups
from tests.factories import AgentFactory
from tests.realtime.helpers import ask, emit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def agent(user):
    return AgentFactory(owner=user)


@pytest.fixture
def foreign_agent(other_user):
    return AgentFactory(owner=other_user)


def started(agent_id: object) -> dict:
    return {"agentId": str(agent_id), "timestamp": "2026-01-02T09:00:00Z", "attempt": 1}


async def test_it_subscribes_to_an_agent_and_forwards_its_events(sockets, layer, user, agent):
    communicator = await sockets.open_as(user)
    answer = await ask(communicator, "agent:subscribe", str(agent.pk))
    assert answer == {"event": "subscribed", "data": {"room": f"agent:{agent.pk}"}}

    frame = await emit(layer, agent_group(agent.pk), "agent:started", started(agent.pk))
    assert await communicator.receive_json_from(timeout=2) == frame


async def test_it_names_the_room_by_the_canonical_agent_id(sockets, user, agent):
    communicator = await sockets.open_as(user)
    answer = await ask(communicator, "agent:subscribe", str(agent.pk).upper())
    assert answer["data"] == {"room": f"agent:{agent.pk}"}


async def test_it_unsubscribes_from_an_agent(sockets, layer, user, agent):
    communicator = await sockets.open_as(user)
    await ask(communicator, "agent:subscribe", str(agent.pk))
    answer = await ask(communicator, "agent:unsubscribe", str(agent.pk))
    assert answer == {"event": "unsubscribed", "data": {"room": f"agent:{agent.pk}"}}

    await emit(layer, agent_group(agent.pk), "agent:started", started(agent.pk))
    assert await communicator.receive_nothing(0.3)


async def test_unsubscribing_from_a_room_never_joined_is_fine(sockets, user):
    communicator = await sockets.open_as(user)
    some_id = uuid.uuid4()
    answer = await ask(communicator, "agent:unsubscribe", str(some_id))
    assert answer == {"event": "unsubscribed", "data": {"room": f"agent:{some_id}"}}
    answer = await ask(communicator, "monitoring:unsubscribe", "scheduler")
    assert answer == {"event": "unsubscribed", "data": {"room": "monitoring:scheduler"}}


async def test_subscribing_twice_is_one_subscription(sockets, layer, user, agent):
    communicator = await sockets.open_as(user)
    for _ in range(2):
        answer = await ask(communicator, "agent:subscribe", str(agent.pk))
        assert answer["event"] == "subscribed"

    frame = await emit(layer, agent_group(agent.pk), "agent:started", started(agent.pk))
    assert await communicator.receive_json_from(timeout=2) == frame
    assert await communicator.receive_nothing(0.3)


async def test_it_subscribes_to_the_scheduler_status(sockets, layer, user):
    communicator = await sockets.open_as(user)
    answer = await ask(communicator, "monitoring:subscribe", "scheduler")
    assert answer == {"event": "subscribed", "data": {"room": "monitoring:scheduler"}}

    stats = {"isRunning": True, "scheduledTasksCount": 2, "timestamp": "2026-01-02T09:00:00Z"}
    frame = await emit(layer, SCHEDULER_GROUP, "scheduler:status", stats)
    assert await communicator.receive_json_from(timeout=2) == frame

    answer = await ask(communicator, "monitoring:unsubscribe", "scheduler")
    assert answer == {"event": "unsubscribed", "data": {"room": "monitoring:scheduler"}}
    await emit(layer, SCHEDULER_GROUP, "scheduler:status", stats)
    assert await communicator.receive_nothing(0.3)


@pytest.mark.parametrize(
    "agent_id",
    ["foreign", "unknown", "not-a-uuid", "", "agent:1", "1" * 300],
)
async def test_an_agent_the_user_may_not_see_is_not_found(sockets, user, foreign_agent, agent_id):
    agent_id = {"foreign": str(foreign_agent.pk), "unknown": str(uuid.uuid4())}.get(
        agent_id, agent_id
    )
    communicator = await sockets.open_as(user)
    answer = await ask(communicator, "agent:subscribe", agent_id)
    # The same answer for all, so ids do not leak.
    assert answer == {"event": "error", "data": {"message": "Agent not found"}}


async def test_a_foreign_agent_sends_the_user_nothing(sockets, layer, user, foreign_agent):
    communicator = await sockets.open_as(user)
    await ask(communicator, "agent:subscribe", str(foreign_agent.pk))
    await emit(layer, agent_group(foreign_agent.pk), "agent:started", started(foreign_agent.pk))
    assert await communicator.receive_nothing(0.3)


async def test_staff_may_subscribe_to_anyones_agent(sockets, staff_user, foreign_agent):
    communicator = await sockets.open_as(staff_user)
    answer = await ask(communicator, "agent:subscribe", str(foreign_agent.pk))
    assert answer["data"] == {"room": f"agent:{foreign_agent.pk}"}


async def test_an_event_reaches_each_room_it_was_sent_to(sockets, layer, user, agent):
    # Rooms are independent subscriptions: the emitter sends each event to the
    # agent's group and to its owner's monitoring group, so both answer.
    communicator = await sockets.open_as(user)
    await ask(communicator, "agent:subscribe", str(agent.pk))
    await ask(communicator, "monitoring:subscribe", "agents")
    data = started(agent.pk)
    frame = await emit(layer, agent_group(agent.pk), "agent:started", data)
    await emit(layer, owner_agents_group(user.pk), "agent:started", data)
    assert await communicator.receive_json_from(timeout=2) == frame
    assert await communicator.receive_json_from(timeout=2) == frame


BAD_FRAMES = {
    "not JSON": ("{not json", "Frame is not valid JSON."),
    "a JSON list": ("[1, 2]", 'Frame must be a JSON object {"event": ..., "data": ...}.'),
    "a JSON string": (
        '"agent:subscribe"',
        'Frame must be a JSON object {"event": ..., "data": ...}.',
    ),
    "JSON null": ("null", 'Frame must be a JSON object {"event": ..., "data": ...}.'),
    "no event": ('{"data": "agents"}', "Frame has no event."),
    "a number as event": ('{"event": 7, "data": "agents"}', "The event must be a string."),
    "an unknown event": (
        '{"event": "agent:explode", "data": "x"}',
        "Unknown event 'agent:explode'; expected one of agent:subscribe, agent:unsubscribe, "
        "monitoring:subscribe, monitoring:unsubscribe.",
    ),
    "no data": ('{"event": "agent:subscribe"}', "agent:subscribe needs data."),
    "null data": (
        '{"event": "monitoring:subscribe", "data": null}',
        "monitoring:subscribe needs data.",
    ),
    "a number as agent id": (
        '{"event": "agent:subscribe", "data": 42}',
        "agent:subscribe expects an agent id (a UUID string) as data.",
    ),
    "an object as agent id": (
        '{"event": "agent:unsubscribe", "data": {"id": "x"}}',
        "agent:unsubscribe expects an agent id (a UUID string) as data.",
    ),
    "an unknown topic": (
        '{"event": "monitoring:subscribe", "data": "everything"}',
        'monitoring:subscribe expects "agents" or "scheduler" as data.',
    ),
    "a list as topic": (
        '{"event": "monitoring:unsubscribe", "data": ["agents"]}',
        'monitoring:unsubscribe expects "agents" or "scheduler" as data.',
    ),
    "an oversized frame": (
        json.dumps({"event": "monitoring:subscribe", "data": "agents", "pad": "x" * 4096}),
        "Frame too large: the limit is 4096 bytes.",
    ),
    "an oversized frame in bytes, not characters": (
        json.dumps(
            {"event": "monitoring:subscribe", "data": "agents", "pad": "é" * 2100},
            ensure_ascii=False,
        ),
        "Frame too large: the limit is 4096 bytes.",
    ),
}


@pytest.mark.parametrize("text,message", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_a_bad_frame_is_answered_with_an_error_and_the_connection_survives(
    sockets, user, text, message
):
    communicator = await sockets.open_as(user)
    await communicator.send_to(text_data=text)
    assert await communicator.receive_json_from(timeout=2) == {
        "event": "error",
        "data": {"message": message},
    }
    answer = await ask(communicator, "monitoring:subscribe", "scheduler")
    assert answer["event"] == "subscribed"


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
        {"type": "websocket.receive", "text": ""},
    ],
    ids=["binary", "empty text"],
)
async def test_a_binary_or_empty_frame_is_answered_with_an_error(sockets, user, message):
    communicator = await sockets.open_as(user)
    await communicator.send_input(message)
    answer = await communicator.receive_json_from(timeout=2)
    assert answer["event"] == "error"
    assert answer["data"]["message"]
    assert (await ask(communicator, "monitoring:subscribe", "agents"))["event"] == "subscribed"


async def test_a_frame_at_the_limit_is_accepted(sockets, user):
    communicator = await sockets.open_as(user)
    frame = {"event": "monitoring:subscribe", "data": "agents", "pad": ""}
    frame["pad"] = "x" * (4096 - len(json.dumps(frame)))
    assert len(json.dumps(frame)) == 4096
    await communicator.send_json_to(frame)
    assert (await communicator.receive_json_from(timeout=2))["event"] == "subscribed"


async def test_it_leaves_every_group_on_disconnect(sockets, layer, user, agent):
    communicator = await sockets.open_as(user)
    await ask(communicator, "agent:subscribe", str(agent.pk))
    await ask(communicator, "monitoring:subscribe", "agents")
    await ask(communicator, "monitoring:subscribe", "scheduler")
    await sockets.disconnect(communicator)

    groups = [agent_group(agent.pk), owner_agents_group(user.pk), SCHEDULER_GROUP]
    if isinstance(layer, RedisChannelLayer):
        redis = layer.connection(0)
        for group in groups:
            assert await redis.zcard(layer._group_key(group)) == 0
    else:
        # The pub/sub layer keeps members in the process and leaves the Redis
        # channel of a group with none.
        loop_layer = layer._get_layer()
        for group in groups:
            assert loop_layer._get_group_channel_name(group) not in loop_layer.groups


def blocking_reads_may_time_out() -> bool:
    """Whether the layer's Redis connections keep redis-py 8's default 5 s read
    timeout, which equals channels-redis' 5 s blocking BZPOPMIN (the pub/sub
    layer reads with timeouts of its own and has no blocking pop)."""
    if not settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith(".RedisChannelLayer"):
        return False
    hosts = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    return not all(
        isinstance(host, dict) and host.get("socket_timeout", 0) is None for host in hosts
    )


@pytest.mark.slow
async def test_an_idle_connection_still_gets_events_after_the_redis_read_timeout(
    request, sockets, layer, user
):
    if blocking_reads_may_time_out():
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason='CHANNEL_LAYERS hosts need {"address": REDIS_URL, "socket_timeout": None} '
                "with redis-py 8, or idle consumers crash after 5 s",
            )
        )
    communicator = await sockets.open_as(user)
    await ask(communicator, "monitoring:subscribe", "scheduler")
    await asyncio.sleep(6)
    frame = await emit(layer, SCHEDULER_GROUP, "scheduler:status", {"isRunning": True})
    assert await communicator.receive_json_from(timeout=2) == frame


async def test_an_event_is_forwarded_as_the_text_the_emitter_encoded(sockets, layer, user, agent):
    communicator = await sockets.open_as(user)
    await ask(communicator, "agent:subscribe", str(agent.pk))
    # Text that json.dumps would not write back the same way: only the
    # emitter's bytes may reach the client.
    text = json.dumps(
        {"event": "agent:progress", "data": {"agentId": str(agent.pk), "progress": 50}},
        separators=(",", ":"),
    )
    await layer.group_send(agent_group(agent.pk), {"type": "neonhub.event", "text": text})
    assert await communicator.receive_from(timeout=2) == text


async def test_a_shared_room_encodes_each_event_once(sockets, layer, monkeypatch, user, agent):
    watchers = [await sockets.open_as(user) for _ in range(3)]
    for communicator in watchers:
        await ask(communicator, "agent:subscribe", str(agent.pk))
    encoded = []
    real_dumps = json.dumps

    def counting_dumps(value, *args, **kwargs):
        encoded.append(value)
        return real_dumps(value, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", counting_dumps)
    frame = {"event": "agent:started", "data": started(agent.pk)}
    await send_to_groups([agent_group(agent.pk)], frame)
    texts = [await communicator.receive_from(timeout=2) for communicator in watchers]
    monkeypatch.undo()

    assert encoded == [frame]
    assert texts == [real_dumps(frame)] * 3


@pytest.fixture
def three_agents(user):
    return [AgentFactory(owner=user) for _ in range(3)]


async def test_one_room_past_the_limit_is_refused_and_the_others_stay(
    sockets, layer, settings, user, three_agents
):
    settings.WS_MAX_ROOMS_PER_CONNECTION = 2
    first, second, third = three_agents
    communicator = await sockets.open_as(user)
    for agent in (first, second):
        assert (await ask(communicator, "agent:subscribe", str(agent.pk)))["event"] == "subscribed"

    refused = await ask(communicator, "agent:subscribe", str(third.pk))
    assert refused == {
        "event": "error",
        "data": {
            "message": "This connection is already in 2 rooms, the most allowed; "
            "unsubscribe from one first."
        },
    }
    # Rooms already joined do not count against it again.
    assert (await ask(communicator, "agent:subscribe", str(first.pk)))["event"] == "subscribed"
    await emit(layer, agent_group(third.pk), "agent:started", started(third.pk))
    assert await communicator.receive_nothing(0.3)

    await ask(communicator, "agent:unsubscribe", str(first.pk))
    assert (await ask(communicator, "agent:subscribe", str(third.pk)))["event"] == "subscribed"
    frame = await emit(layer, agent_group(third.pk), "agent:started", started(third.pk))
    assert await communicator.receive_json_from(timeout=2) == frame
