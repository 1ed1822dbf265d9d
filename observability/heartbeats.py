"""Heartbeats of beat and of every worker, kept in Redis.

Beat reports in on each of its ticks; its age tells whether schedules fire.

Workers report in every few seconds from a thread started on Celery's
``worker_ready`` signal (wired in ``neonhub.celery``); /healthz and /metrics
count the workers that reported recently. This was
chosen over Celery's ``app.control.ping``: a ping is a broadcast that waits
its whole timeout for replies that may never come (so every health probe
would take that long), declares a reply queue per call, and sits in kombu's
reconnect loop while Redis is down. Reading heartbeats is one ZCOUNT, answered
in a millisecond by any web process on any machine.

Each worker is a member of one sorted set, scored with Redis's own clock (so
machines with skewed clocks agree). A worker that stops cleanly removes
itself; a killed one simply stops counting once its heartbeat is older than
the alive window.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from django.conf import settings

from core.redis import fast_redis

logger = logging.getLogger(__name__)

BEAT_HEARTBEAT_KEY = "neonhub:beat:heartbeat"
WORKERS_KEY = "neonhub:workers:heartbeats"
HEARTBEAT_INTERVAL_SECONDS = 5.0
# Three missed heartbeats.
ALIVE_WINDOW_SECONDS = 3 * HEARTBEAT_INTERVAL_SECONDS
# Members this old are pruned; the whole set expires if no worker reports.
FORGET_AFTER_SECONDS = 3600

# KEYS[1] the set; ARGV: member, forget-after seconds.
_REPORT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# KEYS[1] the set; ARGV: alive window seconds.
_COUNT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""


def report_worker(name: str) -> None:
    """Record that worker ``name`` is alive now; raises RedisError."""
    fast_redis().eval(_REPORT, 1, WORKERS_KEY, name, FORGET_AFTER_SECONDS)


def forget_worker(name: str) -> None:
    fast_redis().zrem(WORKERS_KEY, name)


def alive_workers() -> int:
    """How many workers reported within the alive window; raises RedisError."""
    return int(fast_redis().eval(_COUNT, 1, WORKERS_KEY, ALIVE_WINDOW_SECONDS))


class Heartbeat(threading.Thread):
    def __init__(self, worker: str) -> None:
        super().__init__(name="worker-heartbeat", daemon=True)
        self.worker = worker
        self.stopped = threading.Event()

    def run(self) -> None:
        failing = False
        while True:
            try:
                report_worker(self.worker)
            except redis.RedisError:
                # Logged once per outage, not every few seconds.
                if not failing:
                    logger.warning("Could not report the heartbeat of %s", self.worker)
                failing = True
            else:
                if failing:
                    logger.info("Heartbeat of %s reported again", self.worker)
                failing = False
            if self.stopped.wait(HEARTBEAT_INTERVAL_SECONDS):
                return


_heartbeat: Heartbeat | None = None


def _worker_name(sender: Any) -> str:
    return getattr(sender, "hostname", None) or f"{socket.gethostname()}:{os.getpid()}"


def start_worker_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    global _heartbeat
    if _heartbeat is None or not _heartbeat.is_alive():
        _heartbeat = Heartbeat(_worker_name(sender))
        _heartbeat.start()


def stop_worker_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    global _heartbeat
    heartbeat, _heartbeat = _heartbeat, None
    if heartbeat is None:
        return
    heartbeat.stopped.set()
    heartbeat.join(timeout=2)
    try:
        forget_worker(heartbeat.worker)
    except redis.RedisError:
        logger.warning("Could not remove the heartbeat of %s", heartbeat.worker)


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
