"""Cluster-wide counters and histograms, recorded where things happen.

Runs execute in worker processes, possibly on other machines, while /metrics
is scraped from one web process: a process-local prometheus_client registry
would only show what that one process saw. So every observation is a few
HINCRBY / HINCRBYFLOAT on hashes under ``neonhub:metrics:``, sent in one
round trip, and ``collector.py`` turns the hashes into Prometheus metrics at
scrape time. Histograms keep one counter per bucket (not cumulative); the
collector adds them up.

Recording is best effort and never raises into its caller: a run must not
fail because its metric could not be written. After a Redis error recording
pauses for a few seconds, so an outage costs a run one timeout, not one per
metric.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ParamSpec

from django.db import transaction
from prometheus_client.utils import floatToGoString
from redis.client import Pipeline

from core.redis import fast_redis

logger = logging.getLogger(__name__)

P = ParamSpec("P")

KEY_PREFIX = "neonhub:metrics:"
# field "<outcome>|<trigger>"
RUNS_KEY = f"{KEY_PREFIX}runs"
# fields "<outcome>|<upper bound>", "<outcome>|sum", "<outcome>|count"
RUN_DURATION_KEY = f"{KEY_PREFIX}run_duration"
# fields "<trigger>|<upper bound>", "<trigger>|sum", "<trigger>|count"
DISPATCH_LAG_KEY = f"{KEY_PREFIX}dispatch_lag"
# fields "retries", "pruned", "log_lines_dropped"
COUNTERS_KEY = f"{KEY_PREFIX}counters"
# field "<incident kind>"
ALERTS_KEY = f"{KEY_PREFIX}alerts"
# field "<channel kind>|<sent or failed>"
NOTIFICATIONS_KEY = f"{KEY_PREFIX}notifications"
# field "<event name>"
EVENTS_KEY = f"{KEY_PREFIX}events"
# field "<slot outcome>"
SLOTS_KEY = f"{KEY_PREFIX}slots"

OUTCOMES = ("succeeded", "failed", "cancelled")
TRIGGERS = ("schedule", "manual", "retry", "backfill")
ALERT_KINDS = ("LATE", "OVERRUN", "FAILING", "PAUSED")
CHANNEL_KINDS = ("webhook", "email", "slack")
SLOT_OUTCOMES = ("queued", "ran", "skipped", "cancelled", "missed", "backfill")

# Seconds. Runs range from a demo's second to the hour-long run timeout.
RUN_DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# Seconds. A healthy dispatch takes well under a second; minutes mean a full queue.
DISPATCH_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
INF = "+Inf"

PAUSE_AFTER_ERROR_SECONDS = 10.0
_paused_until = 0.0


def bound_label(upper_bound: float | str) -> str:
    """A bucket's upper bound as Prometheus writes it in ``le`` ("0.5", "1.0", "+Inf")."""
    return upper_bound if isinstance(upper_bound, str) else floatToGoString(upper_bound)


def bucket_field(label: str, upper_bound: float | str) -> str:
    return f"{label}|{bound_label(upper_bound)}"


def _never_raises(function: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            function(*args, **kwargs)
        except Exception:
            logger.warning("Could not record a metric in %s", function.__name__, exc_info=True)

    return wrapper


def _write(fill: Callable[[Pipeline], Any]) -> None:
    global _paused_until
    if time.monotonic() < _paused_until:
        return
    try:
        pipe = fast_redis().pipeline()
        fill(pipe)
        pipe.execute()
    except Exception:
        _paused_until = time.monotonic() + PAUSE_AFTER_ERROR_SECONDS
        logger.warning(
            "Could not record metrics; recording pauses for %.0f s",
            PAUSE_AFTER_ERROR_SECONDS,
            exc_info=True,
        )


def _write_on_commit(fill: Callable[[Pipeline], Any]) -> None:
    # A transition that rolls back did not happen, so it is not counted.
    transaction.on_commit(lambda: _write(fill))


def _observe(pipe: Pipeline, key: str, label: str, value: float, buckets: Sequence[float]) -> None:
    upper: float | str = next((bound for bound in buckets if value <= bound), INF)
    pipe.hincrby(key, bucket_field(label, upper), 1)
    pipe.hincrbyfloat(key, f"{label}|sum", value)
    pipe.hincrby(key, f"{label}|count", 1)


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


# --- hooks ----------------------------------------------------------------------------


@_never_raises
def run_started(session: Any) -> None:
    """A worker started ``session``: observe its dispatch lag.

    The lag runs from when the run was allowed to start to its start: a
    scheduled run's slot plus its jitter delay, the end of a retry's backoff
    (a retry keeps its first attempt's slot), a backfill's request, a manual
    run's request.
    """
    trigger = str(session.trigger).lower()
    since = session.scheduled_for if trigger == "manual" else session.not_before
    lag = _seconds_between(since, session.started_at)
    if lag is None:
        return
    _write_on_commit(
        lambda pipe: _observe(pipe, DISPATCH_LAG_KEY, trigger, lag, DISPATCH_LAG_BUCKETS)
    )


@_never_raises
def run_finished(session: Any, *, will_retry: bool = False) -> None:
    """``session`` ended (succeeded, failed or cancelled): count it and its duration."""
    outcome = str(session.status).lower()
    if outcome not in OUTCOMES:
        return
    trigger = str(session.trigger).lower()
    duration = None if session.duration_ms is None else session.duration_ms / 1000

    def fill(pipe: Pipeline) -> None:
        pipe.hincrby(RUNS_KEY, f"{outcome}|{trigger}", 1)
        if duration is not None:
            _observe(pipe, RUN_DURATION_KEY, outcome, duration, RUN_DURATION_BUCKETS)
        if will_retry:
            pipe.hincrby(COUNTERS_KEY, "retries", 1)

    _write_on_commit(fill)


def _count(field: str, count: int) -> None:
    if not count:
        return

    def fill(pipe: Pipeline) -> None:
        pipe.hincrby(COUNTERS_KEY, field, count)

    _write_on_commit(fill)


@_never_raises
def log_lines_dropped(count: int) -> None:
    """A run logged ``count`` lines past its session's bound."""
    _count("log_lines_dropped", count)


@_never_raises
def sessions_pruned(count: int) -> None:
    """Retention deleted ``count`` finished sessions."""
    _count("pruned", count)


@_never_raises
def slots_recorded(outcomes: dict[str, int]) -> None:
    """Slots of schedules reached these outcomes (a count for each), once the
    transaction that decided them commits."""
    counts = {str(outcome).lower(): count for outcome, count in outcomes.items() if count}
    if not counts:
        return

    def fill(pipe: Pipeline) -> None:
        for outcome, count in counts.items():
            pipe.hincrby(SLOTS_KEY, outcome, count)

    _write_on_commit(fill)


@_never_raises
def alert_opened(kind: str) -> None:
    """An incident of ``kind`` opened, once its transaction commits."""
    label = str(kind)

    def fill(pipe: Pipeline) -> None:
        pipe.hincrby(ALERTS_KEY, label, 1)

    _write_on_commit(fill)


@_never_raises
def notification_tried(channel_kind: str, *, sent: bool) -> None:
    """A notification reached its channel, or one try to send it failed."""
    field = f"{channel_kind}|{'sent' if sent else 'failed'}"

    def fill(pipe: Pipeline) -> None:
        pipe.hincrby(NOTIFICATIONS_KEY, field, 1)

    _write(fill)


@_never_raises
def event_sent(event: object) -> None:
    """A lifecycle event frame went to the channel layer."""
    name = str(event or "unknown")[:64]

    def fill(pipe: Pipeline) -> None:
        pipe.hincrby(EVENTS_KEY, name, 1)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _write(fill)
    else:
        # Never block an event loop (daphne's, or the publisher's) on Redis.
        loop.run_in_executor(None, _write, fill)
