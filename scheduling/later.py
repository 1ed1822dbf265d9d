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


def call_later(seconds: float, function: Callable[[], object]) -> None:
    """Call ``function`` in this process's timer thread after ``seconds``.

    What ``function`` raises is logged by the timer; keep it short, since
    the calls after it wait.
    """
    _running_timer().call_after(max(0.0, seconds), function)


def _running_timer() -> Timer:
    global _timer
    with _lock:
        if _timer is None:
            _timer = Timer(max_interval=MAX_SLEEP_SECONDS)
            # Started here, under the lock: the Timer starts its thread on
            # first use otherwise, and two worker threads using it at once
            # would both start it.
            _timer.ensure_started()
        return _timer


def _forget_timer_after_fork() -> None:
    # A forked child (Celery's prefork pool) has the object but not the
    # thread, and perhaps a lock some other thread held at the fork.
    global _lock, _timer
    _lock = threading.Lock()
    _timer = None


os.register_at_fork(after_in_child=_forget_timer_after_fork)
