"""Calls made a little later by the process that asks for them, not by the broker.

A Celery worker that holds a message sent with a countdown dies when Redis
goes away: closing the channel hands the message back over a connection that
is already gone ("Unrecoverable error: AttributeError ... 'hostname'",
kombu#582). So nothing here is sent with a countdown: a delayed request waits
in one timer thread of the process that made it and goes out as a plain
message when due. If that process exits first the request is lost, and
nothing waits for long: beat's tick admits due retries and publishes the
scheduler status on its own timer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from celery.utils.timer2 import Timer

# How long the timer thread sleeps at most before it looks again: a call
# asked for while it sleeps towards a later one is at most this late.
MAX_SLEEP_SECONDS = 0.1

_lock = threading.Lock()
_timer: Timer | None = None
_timer_pid: int | None = None


def call_later(seconds: float, function: Callable[[], object]) -> None:
    """Call ``function`` in this process's timer thread after ``seconds``.

    Errors are logged by the timer, not raised; keep ``function`` short.
    """
    _running_timer().call_after(max(0.0, seconds), function)


def _running_timer() -> Timer:
    global _timer, _timer_pid
    with _lock:
        # A forked child inherits the object but not the thread.
        if _timer is None or _timer_pid != os.getpid():
            _timer = Timer(max_interval=MAX_SLEEP_SECONDS)
            _timer_pid = os.getpid()
        return _timer
