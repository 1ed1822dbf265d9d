"""The project's Redis connection, built from the one REDIS_URL setting."""

from __future__ import annotations

from functools import cache

import redis
import redis.asyncio
from django.conf import settings


@cache
def get_redis() -> redis.Redis:
    # redis-py's pool notices a fork and reconnects, so one client per
    # process is safe under Celery's prefork pool too.
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


def new_async_redis() -> redis.asyncio.Redis:
    """An asyncio client; each event loop needs its own."""
    return redis.asyncio.Redis.from_url(
        settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5
    )
