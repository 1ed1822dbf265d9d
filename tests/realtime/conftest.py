"""Fixtures for the WebSocket tests.

Nothing here is autouse: other tests in this folder (the emitter's) choose
their own channel layer.
"""

from __future__ import annotations

import uuid

import pytest
from channels.layers import get_channel_layer
from django.conf import settings as django_settings

from core.redis import new_async_redis
from realtime import connections
from tests.processes import free_port
from tests.realtime.helpers import Sockets, signed_in


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so nothing else in Redis is touched."""
    return f"neonhub:test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def layer(settings, monkeypatch, redis_prefix):
    """The real channels-redis layer (as configured) under this test's prefix,
    and the connection cap's keys under it too; all of it deleted afterwards."""
    configured = django_settings.CHANNEL_LAYERS["default"]
    # Changing the setting makes channels drop its cached layers, whose pools
    # belong to an earlier test's event loop.
    settings.CHANNEL_LAYERS = {
        "default": {
            **configured,
            "CONFIG": {**configured["CONFIG"], "prefix": f"{redis_prefix}channels:"},
        }
    }
    monkeypatch.setattr(connections, "KEY_PREFIX", f"{redis_prefix}ws:connections:")
    channel_layer = get_channel_layer()
    yield channel_layer
    await channel_layer.flush()
    redis = new_async_redis()
    try:
        keys = [key async for key in redis.scan_iter(f"{redis_prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
    await connections.close_redis()


@pytest.fixture
def unreachable_channel_layer(settings) -> None:
    """The channel layer pointed at a port where no Redis listens."""
    configured = django_settings.CHANNEL_LAYERS["default"]
    settings.CHANNEL_LAYERS = {
        "default": {
            **configured,
            "CONFIG": {**configured["CONFIG"], "hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }


@pytest.fixture
def application():
    from neonhub.asgi import application

    return application


@pytest.fixture
async def sockets(application, layer):
    opened = Sockets(application)
    yield opened
    await opened.disconnect_all()


@pytest.fixture
def session_cookie(user) -> tuple[bytes, bytes]:
    """A cookie header of a logged-in Django session of ``user``."""
    return signed_in(user)[1]
