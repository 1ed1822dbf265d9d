"""The Redis client health checks and metrics use.

Timeouts far shorter than the project client's five seconds, so a Redis that
hangs makes a probe, a scrape or a metric write fail fast; one immediate
retry replaces a pooled connection that a restarted Redis closed.
"""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

TIMEOUT_SECONDS = 0.5


@cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
    )


def fast_redis() -> redis.Redis:
    # Keyed by URL so a changed REDIS_URL (tests do this) gets its own pool.
    return _client_for(settings.REDIS_URL)
