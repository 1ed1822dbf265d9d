from __future__ import annotations

import asyncio
import time

import pytest

from core.redis import new_async_redis
from realtime.connections import claim_connection, connections_key, count_connections
from realtime.groups import agent_group
from realtime.protocol import CLOSE_TOO_MANY_CONNECTIONS, CLOSE_UNAUTHORIZED
from tests.factories import AgentFactory
from tests.realtime.helpers import ask, close_code, emit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def redis(layer):
    # Keys live under the test's prefix (see the layer fixture), deleted afterwards.
    client = new_async_redis()
    yield client
    await client.aclose()


async def add_vanished_connections(redis, user, count: int, *, lease: float) -> None:
    """Places held by connections whose process died: nobody renews them."""
    expires = time.time() + lease
    await redis.zadd(connections_key(user.pk), {f"vanished.{i}": expires for i in range(count)})


async def test_the_sixth_connection_is_closed_with_4429(sockets, user):
    first_five = [await sockets.open_as(user) for _ in range(5)]
    for communicator in first_five:
        assert (await ask(communicator, "monitoring:subscribe", "scheduler"))["event"] == (
            "subscribed"
        )

    sixth, connected, _ = await sockets.connect(user)
    assert connected  # accepted first, so the client can read the code
    assert await close_code(sixth) == CLOSE_TOO_MANY_CONNECTIONS
    await sockets.disconnect(sixth)

    await sockets.disconnect(first_five[0])
    assert await sockets.open_as(user)


async def test_the_cap_follows_the_setting(sockets, settings, user):
    settings.WS_MAX_CONNECTIONS_PER_USER = 2
    await sockets.open_as(user)
    await sockets.open_as(user)
    third, _, _ = await sockets.connect(user)
    assert await close_code(third) == CLOSE_TOO_MANY_CONNECTIONS


async def test_other_users_connections_do_not_count(sockets, user, other_user):
    for _ in range(5):
        await sockets.open_as(user)
    assert await sockets.open_as(other_user)


async def test_a_connection_holds_a_place_until_it_disconnects(sockets, user):
    communicator = await sockets.open_as(user)
    assert await count_connections(user.pk) == 1
    await sockets.disconnect(communicator)
    assert await count_connections(user.pk) == 0


async def test_a_refused_connection_takes_no_place(sockets, user):
    for _ in range(5):
        await sockets.open_as(user)
    sixth, _, _ = await sockets.connect(user)
    assert await close_code(sixth) == CLOSE_TOO_MANY_CONNECTIONS
    await sockets.disconnect(sixth)
    anonymous, _, _ = await sockets.connect()
    assert await close_code(anonymous) == CLOSE_UNAUTHORIZED
    await sockets.disconnect(anonymous)
    assert await count_connections(user.pk) == 5


async def test_a_vanished_connection_stops_counting_when_its_lease_runs_out(sockets, redis, user):
    await add_vanished_connections(redis, user, 4, lease=1.0)
    await sockets.open_as(user)
    refused, _, _ = await sockets.connect(user)
    assert await close_code(refused) == CLOSE_TOO_MANY_CONNECTIONS
    await sockets.disconnect(refused)

    await asyncio.sleep(1.2)
    for _ in range(4):
        await sockets.open_as(user)
    assert await count_connections(user.pk) == 5
    # Pruned, not merely outnumbered.
    members = await redis.zrange(connections_key(user.pk), 0, -1)
    assert not [member for member in members if member.startswith(b"vanished.")]


async def test_an_expired_lease_never_counts(sockets, redis, user):
    await add_vanished_connections(redis, user, 10, lease=-5)
    assert await count_connections(user.pk) == 0
    for _ in range(5):
        await sockets.open_as(user)


async def test_simultaneous_connects_cannot_all_take_the_last_places(layer, user):
    results = await asyncio.gather(
        *(claim_connection(user.pk, f"specific.test!{n}") for n in range(20))
    )
    assert sum(results) == 5
    assert await count_connections(user.pk) == 5


async def test_the_set_expires_with_its_last_lease(redis, user):
    assert await claim_connection(user.pk, "specific.test!1")
    ttl = await redis.ttl(connections_key(user.pk))
    assert 0 < ttl <= 31


async def test_a_live_connection_renews_its_lease(sockets, settings, redis, user):
    settings.WS_CONNECTION_LEASE_SECONDS = 3  # renewed every second
    await sockets.open_as(user)
    ((_, first),) = await redis.zrange(connections_key(user.pk), 0, -1, withscores=True)
    await asyncio.sleep(1.3)
    ((_, renewed),) = await redis.zrange(connections_key(user.pk), 0, -1, withscores=True)
    assert renewed > first + 0.9


async def test_renewing_the_lease_joins_the_groups_again(sockets, settings, layer, redis, user):
    # channels-redis forgets a group member group_expiry after it joined;
    # here the forgetting is simulated by removing the membership by hand.
    settings.WS_CONNECTION_LEASE_SECONDS = 3
    agent = await AgentFactory._meta.model.objects.acreate(
        owner=user, name="Long-lived", agent_type="demo"
    )
    communicator = await sockets.open_as(user)
    await ask(communicator, "agent:subscribe", str(agent.pk))
    (channel,) = await redis.zrange(connections_key(user.pk), 0, -1)
    await layer.group_discard(agent_group(agent.pk), channel.decode())

    await asyncio.sleep(1.3)
    frame = await emit(layer, agent_group(agent.pk), "agent:started", {"agentId": str(agent.pk)})
    assert await communicator.receive_json_from(timeout=2) == frame


async def test_a_connection_that_lost_its_place_is_closed_with_4429(sockets, settings, redis, user):
    # Its process stalled past the lease and other connections took the places.
    settings.WS_CONNECTION_LEASE_SECONDS = 3
    communicator = await sockets.open_as(user)
    await redis.delete(connections_key(user.pk))
    await add_vanished_connections(redis, user, 5, lease=60)
    assert await close_code(communicator, timeout=3) == CLOSE_TOO_MANY_CONNECTIONS
