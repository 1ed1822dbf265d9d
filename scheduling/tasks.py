"""Celery tasks: thin entry points that take ids and call the services.

Every task is safe to run twice: the services act through conditional
updates and a uniqueness rule on (agent, slot, attempt).
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agents import run_stats
from realtime.events import emit_scheduler_status
from scheduling import admission, alerts, dispatch, executor, notify, resume, retention
from scheduling.stats import camel_stats, scheduler_stats

logger = logging.getLogger(__name__)


def _slot(scheduled_for: str | None) -> datetime:
    moment = parse_datetime(scheduled_for) if scheduled_for else None
    if moment is None:
        # Sent by a plain beat scheduler that does not name the slot: cron
        # slots fall on whole minutes, so the current minute is the slot.
        moment = timezone.now()
    return moment.replace(second=0, microsecond=0)


@shared_task(name="scheduling.dispatch_scheduled_run", ignore_result=True)
def dispatch_scheduled_run(agent_id: str, scheduled_for: str | None = None) -> str | None:
    session = dispatch.dispatch_scheduled_run(agent_id, _slot(scheduled_for))
    return str(session.pk) if session else None


@shared_task(name="scheduling.admit", ignore_result=True)
def admit() -> list[str]:
    return admission.admit_waiting_runs()


@shared_task(name="scheduling.execute_run", ignore_result=True, bind=True)
def execute_run(self, session_id: str) -> str | None:
    return executor.execute(session_id, worker=self.request.hostname or "")


@shared_task(name="scheduling.tick", ignore_result=True)
def tick() -> list[str]:
    """Beat's heartbeat task: ends snoozes, opens and resolves LATE and OVERRUN
    alerts, hands out notifications due a retry, reclaims lost runs and starts
    retries that are due."""
    # One read of a partial index (agent_snoozed) when no snooze is due.
    resume.end_snoozes()
    # Alerts must never hold up admission, which this tick exists for.
    try:
        alerts.check()
        notify.send_due()
    except Exception:
        logger.exception("The alert check failed; admission goes on")
    return admission.admit_waiting_runs()


@shared_task(name="scheduling.publish_status", ignore_result=True)
def publish_status() -> None:
    emit_scheduler_status(camel_stats(scheduler_stats()))


@shared_task(name="scheduling.prune_sessions", ignore_result=True)
def prune_sessions() -> int:
    """Beat's daily retention task: deletes what the retention rules let go."""
    return retention.prune_sessions().sessions


@shared_task(name="scheduling.roll_up_run_days", ignore_result=True)
def roll_up_run_days() -> int:
    """Beat's hourly task: the run statistics' rollups of the days that are over."""
    return run_stats.roll_up_every_agent()


@shared_task(name="scheduling.deliver_notification", ignore_result=True)
def deliver_notification(notification_id: str) -> bool:
    """Sends one alert notification; a failure is retried by the tick's sweep."""
    return notify.deliver(notification_id)
