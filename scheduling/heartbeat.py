"""Beat reports in here; the status endpoints read it back."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

from neonhub.redis import fast_redis

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT_KEY = "neonhub:beat:heartbeat"


def beat_alive_window() -> float:
    """How old a heartbeat may be before beat counts as down: three missed checks."""
    return max(3 * settings.SCHEDULER_CHECK_INTERVAL / 1000, 15.0)


def record_beat_heartbeat() -> None:
    try:
        fast_redis().set(BEAT_HEARTBEAT_KEY, repr(time.time()), ex=int(beat_alive_window()) + 1)
    except redis.RedisError:
        logger.warning("Could not record the beat heartbeat", exc_info=True)


def beat_heartbeat_age() -> float | None:
    """Seconds since beat last reported in, or None if it has not recently."""
    try:
        value = fast_redis().get(BEAT_HEARTBEAT_KEY)
    except redis.RedisError:
        return None
    if value is None:
        return None
    return max(0.0, time.time() - float(value))


def beat_is_running() -> bool:
    age = beat_heartbeat_age()
    return age is not None and age <= beat_alive_window()
