"""Builds the /metrics answer at scrape time from Redis and the database.

Every metric is cluster-wide: counters and histograms come from the hashes
the hooks in ``metrics.py`` write, gauges are counted now. The registry holds
only this collector, not prometheus_client's process and GC collectors, whose
figures would describe whichever web process happened to answer the scrape.

Counters (from the hashes):

- ``neonhub_runs_total{outcome, trigger}``: runs finished; outcome is
  succeeded, failed or cancelled, trigger schedule, manual or retry.
- ``neonhub_run_duration_seconds{outcome}`` (histogram): a run's start to its
  end; runs cancelled before they started have no duration.
- ``neonhub_dispatch_lag_seconds{trigger}`` (histogram): a run's slot to its
  start on a worker; for a retry, the end of its backoff to its start.
- ``neonhub_run_retries_total``: retries queued after a failed attempt.
- ``neonhub_sessions_pruned_total``: finished sessions deleted by retention.
- ``neonhub_log_lines_dropped_total``: run log lines past their session's bound.
- ``neonhub_alerts_opened_total{kind}``: incidents opened (LATE, OVERRUN,
  FAILING, PAUSED).
- ``neonhub_notifications_total{channel_kind, outcome}``: tries to send an
  alert notification, by channel kind (webhook, email, slack) and outcome
  (sent, failed); a notification retried three times counts three.
- ``neonhub_events_sent_total{event}``: lifecycle event frames handed to the
  channel layer.
- ``neonhub_schedule_slots_total{outcome}``: slots of schedules by the outcome
  they reached in the slot ledger (queued, ran, skipped, cancelled, missed,
  backfill); a slot that was queued and then ran counts under both.

Gauges (counted at scrape time):

- ``neonhub_runs_queued``: runs waiting for a slot, retries in their backoff
  included (the stats' ``queuedTasksCount``).
- ``neonhub_runs_running``: runs holding a concurrency slot.
- ``neonhub_runs_max_concurrent``: the cap, ``SCHEDULER_MAX_CONCURRENT``.
- ``neonhub_agents_scheduled``: agents with an enabled schedule.
- ``neonhub_websocket_connections``: open WebSocket connections on all web
  processes (unexpired connection leases).
- ``neonhub_workers_alive``: workers whose heartbeat is recent.
- ``neonhub_beat_heartbeat_age_seconds``: seconds since beat reported in;
  +Inf when it has not within its alive window.
- ``neonhub_metrics_source_up{source}``: 1 when this scrape could read the
  source (redis, database), else 0.

When Redis cannot be read, the Redis-backed metrics are left out of the
answer (not reported as zero) and ``neonhub_metrics_source_up{source="redis"}``
is 0; the same holds for the database.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from agents.models import ExecutionSession
from agents.services import scheduled_agents
from core.redis import fast_redis
from observability import heartbeats, metrics
from observability.heartbeats import beat_heartbeat_age

logger = logging.getLogger(__name__)

Status = ExecutionSession.Status


@dataclass
class _Stored:
    runs: dict[str, str]
    run_duration: dict[str, str]
    dispatch_lag: dict[str, str]
    counters: dict[str, str]
    events: dict[str, str]
    slots: dict[str, str]
    alerts: dict[str, str]
    notifications: dict[str, str]
    workers_alive: int
    beat_age: float | None


def _decode(mapping: dict[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in mapping.items()}


def _read_redis() -> _Stored:
    pipe = fast_redis().pipeline(transaction=False)
    for key in (
        metrics.RUNS_KEY,
        metrics.RUN_DURATION_KEY,
        metrics.DISPATCH_LAG_KEY,
        metrics.COUNTERS_KEY,
        metrics.EVENTS_KEY,
        metrics.SLOTS_KEY,
        metrics.ALERTS_KEY,
        metrics.NOTIFICATIONS_KEY,
    ):
        pipe.hgetall(key)
    runs, run_duration, dispatch_lag, counters, events, slots, alerts, notifications = (
        _decode(m) for m in pipe.execute()
    )
    return _Stored(
        runs=runs,
        run_duration=run_duration,
        dispatch_lag=dispatch_lag,
        counters=counters,
        events=events,
        slots=slots,
        alerts=alerts,
        notifications=notifications,
        workers_alive=heartbeats.alive_workers(),
        beat_age=beat_heartbeat_age(),
    )


def _histogram(
    name: str,
    documentation: str,
    label_name: str,
    known_labels: Sequence[str],
    stored: dict[str, str],
    buckets: Sequence[float],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label_name])
    seen = {field.rpartition("|")[0] for field in stored}
    for label in sorted(set(known_labels) | seen):
        cumulative = 0
        points: list[tuple[str, float]] = []
        for bound in buckets:
            cumulative += int(stored.get(metrics.bucket_field(label, bound), 0))
            points.append((metrics.bound_label(bound), cumulative))
        # Every observation lies below +Inf; the count says how many there were.
        points.append((metrics.INF, int(stored.get(f"{label}|count", 0))))
        family.add_metric([label], points, sum_value=float(stored.get(f"{label}|sum", 0)))
    return family


def _redis_metrics(stored: _Stored) -> Iterator[Metric]:
    runs = CounterMetricFamily(
        "neonhub_runs",
        "Runs finished, by outcome (succeeded, failed, cancelled) and trigger.",
        labels=["outcome", "trigger"],
    )
    combos = {(outcome, trigger) for outcome in metrics.OUTCOMES for trigger in metrics.TRIGGERS}
    for field in stored.runs:
        outcome, _, trigger = field.partition("|")
        combos.add((outcome, trigger))
    for outcome, trigger in sorted(combos):
        runs.add_metric([outcome, trigger], int(stored.runs.get(f"{outcome}|{trigger}", 0)))
    yield runs

    slots = CounterMetricFamily(
        "neonhub_schedule_slots",
        "Slots of schedules, by the outcome they reached in the slot ledger.",
        labels=["outcome"],
    )
    for outcome in sorted(set(metrics.SLOT_OUTCOMES) | set(stored.slots)):
        slots.add_metric([outcome], int(stored.slots.get(outcome, 0)))
    yield slots

    yield _histogram(
        "neonhub_run_duration_seconds",
        "Time from a run's start to its end, by outcome.",
        "outcome",
        metrics.OUTCOMES,
        stored.run_duration,
        metrics.RUN_DURATION_BUCKETS,
    )
    yield _histogram(
        "neonhub_dispatch_lag_seconds",
        "Time from a run's slot (a retry: the end of its backoff) to its start on a worker.",
        "trigger",
        metrics.TRIGGERS,
        stored.dispatch_lag,
        metrics.DISPATCH_LAG_BUCKETS,
    )

    retries = CounterMetricFamily("neonhub_run_retries", "Retries queued after a failed attempt.")
    retries.add_metric([], int(stored.counters.get("retries", 0)))
    yield retries

    pruned = CounterMetricFamily(
        "neonhub_sessions_pruned", "Finished sessions deleted by the retention rules."
    )
    pruned.add_metric([], int(stored.counters.get("pruned", 0)))
    yield pruned

    dropped = CounterMetricFamily(
        "neonhub_log_lines_dropped",
        "Run log lines dropped because their session's log was full.",
    )
    dropped.add_metric([], int(stored.counters.get("log_lines_dropped", 0)))
    yield dropped

    alerts = CounterMetricFamily(
        "neonhub_alerts_opened", "Alert incidents opened, by kind.", labels=["kind"]
    )
    for kind in sorted(set(metrics.ALERT_KINDS) | set(stored.alerts)):
        alerts.add_metric([kind], int(stored.alerts.get(kind, 0)))
    yield alerts

    notifications = CounterMetricFamily(
        "neonhub_notifications",
        "Tries to send an alert notification, by channel kind and outcome (sent, failed).",
        labels=["channel_kind", "outcome"],
    )
    pairs = {(kind, outcome) for kind in metrics.CHANNEL_KINDS for outcome in ("sent", "failed")}
    pairs |= {tuple(field.split("|", 1)) for field in stored.notifications if "|" in field}  # type: ignore[misc]
    for kind, outcome in sorted(pairs):
        notifications.add_metric(
            [kind, outcome], int(stored.notifications.get(f"{kind}|{outcome}", 0))
        )
    yield notifications

    events = CounterMetricFamily(
        "neonhub_events_sent",
        "Lifecycle event frames handed to the channel layer, by event.",
        labels=["event"],
    )
    for event, count in sorted(stored.events.items()):
        events.add_metric([event], int(count))
    yield events

    yield GaugeMetricFamily(
        "neonhub_workers_alive",
        "Workers whose heartbeat is recent.",
        value=stored.workers_alive,
    )
    yield GaugeMetricFamily(
        "neonhub_beat_heartbeat_age_seconds",
        "Seconds since beat last reported in; +Inf when it has not within its window.",
        value=math.inf if stored.beat_age is None else stored.beat_age,
    )


def _database_metrics() -> list[Metric]:
    counts = {
        row["status"]: row["n"]
        for row in ExecutionSession.objects.filter(status__in=[Status.QUEUED, Status.RUNNING])
        .values("status")
        .annotate(n=Count("id"))
    }
    return [
        GaugeMetricFamily(
            "neonhub_runs_queued",
            "Runs waiting for a slot, retries in their backoff included.",
            value=counts.get(Status.QUEUED, 0),
        ),
        GaugeMetricFamily(
            "neonhub_runs_running",
            "Runs holding a concurrency slot.",
            value=counts.get(Status.RUNNING, 0),
        ),
        GaugeMetricFamily(
            "neonhub_agents_scheduled",
            "Agents with an enabled schedule.",
            value=scheduled_agents().count(),
        ),
    ]


class ClusterCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "neonhub_metrics_source_up",
            "1 when this scrape could read the source, else 0.",
            labels=["source"],
        )
        try:
            stored = _read_redis()
        except Exception:
            logger.warning("Metrics could not read Redis", exc_info=True)
            up.add_metric(["redis"], 0)
        else:
            up.add_metric(["redis"], 1)
            yield from _redis_metrics(stored)
        try:
            database = _database_metrics()
        except Exception:
            logger.warning("Metrics could not read the database", exc_info=True)
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            yield from database
        yield GaugeMetricFamily(
            "neonhub_runs_max_concurrent",
            "The concurrency cap (SCHEDULER_MAX_CONCURRENT).",
            value=settings.SCHEDULER_MAX_CONCURRENT,
        )
        yield up


# Apps above this one add their own collectors here (realtime counts sockets).
registry = CollectorRegistry(auto_describe=False)
registry.register(ClusterCollector())
