"""Worker heartbeats: every worker reports in to Redis every few seconds.

/healthz and /metrics count the workers that reported recently. This was
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
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown

from neonhub.redis import fast_redis

logger = logging.getLogger(__name__)

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


@worker_ready.connect(dispatch_uid="neonhub-worker-heartbeat-start")
def start_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    global _heartbeat
    if _heartbeat is None or not _heartbeat.is_alive():
        _heartbeat = Heartbeat(_worker_name(sender))
        _heartbeat.start()


@worker_shutdown.connect(dispatch_uid="neonhub-worker-heartbeat-stop")
def stop_heartbeat(sender: Any = None, **kwargs: Any) -> None:
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
