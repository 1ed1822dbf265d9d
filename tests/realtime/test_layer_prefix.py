"""Deployments on different databases of one Redis server hear only their own events."""

from __future__ import annotations

import asyncio

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings

from neonhub.settings import channel_layer_prefix


def test_the_prefix_names_the_redis_database():
    assert channel_layer_prefix("redis://127.0.0.1:6379/3") == "neonhub:channels:3:"
    assert channel_layer_prefix("redis://127.0.0.1:6379") == "neonhub:channels:0:"
    assert channel_layer_prefix("redis://127.0.0.1:6379/3") != channel_layer_prefix(
        "redis://127.0.0.1:6379/4"
    )


def _layer(database: int) -> RedisPubSubChannelLayer:
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    url = f"{base}/{database}"
    return RedisPubSubChannelLayer(hosts=[url], prefix=channel_layer_prefix(url))


@pytest.mark.asyncio
async def test_a_group_on_another_database_hears_nothing_of_ours():
    ours, theirs = _layer(13), _layer(12)
    try:
        mine = await ours.new_channel()
        other = await theirs.new_channel()
        await ours.group_add("agents.owner.1", mine)
        await theirs.group_add("agents.owner.1", other)
        await ours.group_send("agents.owner.1", {"type": "neonhub.event", "text": "ours"})
        assert (await asyncio.wait_for(ours.receive(mine), timeout=5))["text"] == "ours"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(theirs.receive(other), timeout=0.5)
    finally:
        await ours.flush()
        await theirs.flush()
