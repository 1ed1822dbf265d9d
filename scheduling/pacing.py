"""Asking the workers for work: coalesced admission requests, paced status broadcasts.

Both go out as Celery tasks looked up by name, so this module imports none
of the task module's (which imports the services that call this one).
Requests are flags in Redis; when Redis cannot say, a request goes out.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import current_app
from redis.exceptions import RedisError

from core.redis import fast_redis
from scheduling import later

logger = logging.getLogger(__name__)

# How long an admission request stands for the ones after it. A task
# normally starts within milliseconds; past this, requests go out again, so a
# lost or purged task delays admission by at most this much.
ADMISSION_REQUEST_TTL_MS = 2000
STATUS_WINDOW_MS = 500
STATUS_WINDOW_MARGIN_MS = 20

ADMISSION_FLAG = "admission-requested"
STATUS_WINDOW_FLAG = "status-window"
STATUS_TRAILING_FLAG = "status-trailing"

ADMIT_TASK = "scheduling.admit"
PUBLISH_STATUS_TASK = "scheduling.publish_status"


def _flag_key(flag: str) -> str:
    # Flags are per queue: deployments (or test runs) sharing one Redis have
    # their own workers. Celery's configuration, not Django's, is the one
    # that names the queue the tasks actually go to.
    return f"neonhub:{flag}:{current_app.conf.task_default_queue}"


def _first_request(key: str, *, ttl_ms: int) -> bool:
    """Set ``key`` unless it is set; True if this call set it (or Redis cannot say).

    The expiry bounds the harm of a request whose task was lost: later
    requests go out again once it passes.
    """
    try:
        return bool(fast_redis().set(key, 1, nx=True, px=ttl_ms))
    except RedisError:
        return True


def _forget_request(key: str) -> None:
    with contextlib.suppress(RedisError):
        fast_redis().delete(key)


def send_task(name: str, *args: object, **options: Any) -> None:
    """Send the task called ``name``; raises what the broker raises.

    By name, so a process need not have imported the task to send it.
    """
    current_app.send_task(name, args=list(args), **options)


def request_admission() -> None:
    """Ask the workers for an admission pass.

    Requests coalesce: while one admission task waits in the broker, further
    requests join it instead of sending their own, since the pass clears the
    flag before it reads (``admission_pass_starting``) and so sees everything
    committed before the flag was set. A burst of a thousand queued runs costs
    a few passes, not a thousand.
    """
    if not _first_request(_flag_key(ADMISSION_FLAG), ttl_ms=ADMISSION_REQUEST_TTL_MS):
        return
    try:
        send_task(ADMIT_TASK, priority=0)
    except Exception:
        # The periodic tick admits as well; a broker hiccup only delays.
        _forget_request(_flag_key(ADMISSION_FLAG))
        logger.warning("Could not ask for admission", exc_info=True)


def admission_pass_starting() -> None:
    """A pass is about to read: requests from now on need a pass of their own."""
    _forget_request(_flag_key(ADMISSION_FLAG))


def request_status_broadcast() -> None:
    """Broadcast the scheduler status soon, about twice a second at most.

    The first request in a quiet moment goes out at once and opens a half
    second window; requests within it share one trailing broadcast at its
    end, which reads the figures then and so reflects every run finished
    before it. The trailing one waits in this process, not in the broker
    (``later``), and opens the next window as it goes out.
    """
    if _first_request(_flag_key(STATUS_WINDOW_FLAG), ttl_ms=STATUS_WINDOW_MS):
        _send_status_broadcast()
    # The trailing flag outlives its timer: it is cleared when the broadcast
    # goes out, and expires by itself only if this process dies first.
    elif _first_request(_flag_key(STATUS_TRAILING_FLAG), ttl_ms=2 * STATUS_WINDOW_MS):
        later.call_later(_window_left_seconds(), _send_trailing_status_broadcast)


def _window_left_seconds() -> float:
    """Until just before the window closes: a request that found it closed
    while its trailing broadcast was still to come would go out at once, a
    second broadcast in the same moment."""
    try:
        left_ms = fast_redis().pttl(_flag_key(STATUS_WINDOW_FLAG))
    except RedisError:
        left_ms = STATUS_WINDOW_MS
    return max(0, left_ms - STATUS_WINDOW_MARGIN_MS) / 1000


def _send_trailing_status_broadcast() -> None:
    """Close the window with a broadcast and open the next one.

    Requests from here on need a broadcast of their own, since this one may
    read before they commit; they get the next window's trailing broadcast
    rather than one at once, which keeps a steady stream of runs at one
    broadcast per window.
    """
    with contextlib.suppress(RedisError):
        pipe = fast_redis().pipeline()
        pipe.delete(_flag_key(STATUS_TRAILING_FLAG))
        pipe.set(_flag_key(STATUS_WINDOW_FLAG), 1, px=STATUS_WINDOW_MS)
        pipe.execute()
    _send_status_broadcast()


def _send_status_broadcast() -> None:
    try:
        send_task(PUBLISH_STATUS_TASK, priority=0)
    except Exception:
        logger.warning("Could not ask for a status update", exc_info=True)
