"""The project's Redis clients, built from the one REDIS_URL setting.

``get_redis`` waits up to five seconds for an answer; ``fast_redis`` gives up
after half a second, for callers that must not stall when Redis hangs (health
probes, metrics, request throttling, scheduling hints) and that have a
fallback when it does not answer. Its one immediate retry replaces a pooled
connection that a restarted Redis closed.
"""

from __future__ import annotations

from functools import cache

import redis
import redis.asyncio
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

FAST_TIMEOUT_SECONDS = 0.5


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


def fast_redis() -> redis.Redis:
    # Keyed by URL so a changed REDIS_URL (tests do this) gets its own pool.
    return _fast_client_for(settings.REDIS_URL)


@cache
def _fast_client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=FAST_TIMEOUT_SECONDS,
        socket_connect_timeout=FAST_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
    )
