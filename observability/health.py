"""The checks behind /healthz: database, Redis, beat and workers.

Load balancers call /healthz often and give up quickly, so it must answer
fast even when what it checks hangs. Each check runs in a small thread pool
of its own under a deadline: a check that does not answer in time counts as
failed and the answer goes out anyway (the thread finishes in the
background, bounded by the client's own socket timeouts). Answers name what
failed but carry no error text from a driver, which could name hosts, users
or paths: those go to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection

from core.redis import fast_redis
from observability import heartbeats
from observability.heartbeats import beat_alive_window, beat_heartbeat_age

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 1.5

# Bounded, so checks that hang cannot pile up threads: once all are busy,
# further checks wait in the queue and time out.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="healthz")

Result = dict[str, Any]


def check_database() -> Result:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # Pool threads are not request threads: nothing else closes this.
        connection.close()
    return {"ok": True}


def check_redis() -> Result:
    fast_redis().ping()
    return {"ok": True}


def check_beat() -> Result:
    window = beat_alive_window()
    age = beat_heartbeat_age()
    if age is None:
        return {"ok": False, "error": f"no heartbeat in the last {window:.0f} s"}
    if age > window:
        return {"ok": False, "ageSeconds": round(age, 1), "error": f"no heartbeat for {age:.0f} s"}
    return {"ok": True, "ageSeconds": round(age, 1)}


def check_workers() -> Result:
    alive = heartbeats.alive_workers()
    if alive < 1:
        window = heartbeats.ALIVE_WINDOW_SECONDS
        return {"ok": False, "alive": 0, "error": f"no worker reported in the last {window:.0f} s"}
    return {"ok": True, "alive": alive}


CHECKS: dict[str, Callable[[], Result]] = {
    "database": check_database,
    "redis": check_redis,
    "beat": check_beat,
    "workers": check_workers,
}
# Read from Redis: when Redis is down their own error would only mislead.
NEEDS_REDIS = ("beat", "workers")


async def _run(name: str, check: Callable[[], Result]) -> Result:
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(
            loop.run_in_executor(_pool, check), timeout=CHECK_TIMEOUT_SECONDS
        )
    except TimeoutError:
        logger.warning("Health check %s gave no answer in %s s", name, CHECK_TIMEOUT_SECONDS)
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"}
    except Exception as exc:
        logger.warning("Health check %s failed", name, exc_info=True)
        return {"ok": False, "error": f"unavailable ({exc.__class__.__name__})"}


async def run_checks() -> dict[str, Any]:
    """All checks at once; ``status`` is "ok" only when every one holds."""
    results = await asyncio.gather(*(_run(name, check) for name, check in CHECKS.items()))
    checks = dict(zip(CHECKS, results, strict=True))
    if not checks["redis"]["ok"]:
        for name in NEEDS_REDIS:
            if not checks[name]["ok"]:
                checks[name] = {"ok": False, "error": "cannot be checked: Redis is unavailable"}
    healthy = all(result["ok"] for result in checks.values())
    return {"status": "ok" if healthy else "fail", "checks": checks}
