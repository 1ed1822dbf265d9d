"""Turning due slots into queued runs: beat's bulk dispatch, and one agent's slot.

Beat's ``AgentScheduler`` records whole slots at once (``dispatch_due_slots``).
The per-agent task ``scheduling.dispatch_scheduled_run`` stays the task every
agent's django-celery-beat entry names: the stock scheduler and the beat
admin's "Run selected tasks" send it, one message per agent and slot.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession
from scheduling import pacing
from scheduling.cron import CronError, parse_cron
from scheduling.due_index import ScheduleSpec, is_fire_time, next_fire
from scheduling.runs import queue_run
from scheduling.services import refresh_next_run

logger = logging.getLogger(__name__)

Trigger = ExecutionSession.Trigger


def dispatch_scheduled_run(agent_id: str, scheduled_for: datetime) -> ExecutionSession | None:
    """Beat fired an agent's schedule for the slot ``scheduled_for``."""
    agent = AIAgent.objects.filter(pk=agent_id).first()
    if agent is None or not (agent.schedule_enabled and agent.schedule_expression):
        return None
    cron = parse_cron(agent.schedule_expression)
    local_slot = scheduled_for.astimezone(ZoneInfo(agent.schedule_timezone))
    # Beat's crontab cannot say "the 13th or a Friday"; it fires on every
    # day and the cron day rule is applied here.
    if not cron.matches_day(local_slot.date()):
        refresh_next_run(agent, after=scheduled_for)
        return None
    session = queue_run(agent, trigger=Trigger.SCHEDULE, scheduled_for=scheduled_for)
    refresh_next_run(agent, after=scheduled_for)
    return session


@dataclass(frozen=True)
class SlotDispatch:
    """What one slot's bulk dispatch did."""

    slot: datetime
    queued: int  # sessions this call recorded
    duplicates: int  # already recorded for this slot (another beat, a re-send)
    skipped: int  # agents no longer scheduled for this slot


def dispatch_due_slots(due: Mapping[datetime, Iterable[uuid.UUID]]) -> list[SlotDispatch]:
    """Record the scheduled runs of many agents at once, one slot at a time.

    ``due`` maps each slot to the ids of the agents beat found due in it. For
    each slot: one read of those agents, then, in batches of a few thousand
    (highest priority first), one ``INSERT`` of QUEUED sessions that skips the
    rows the uniqueness rule already holds (so two beats, or a beat and the
    per-agent dispatch task, still record a slot once) and a few updates of the
    agents, each batch committed on its own so runs become visible as they are
    written; then one admission request for everything. (Asking earlier would
    set the workers running against the rest of the writes.) An agent whose
    schedule no longer includes the slot (edited meanwhile, paused, removed)
    is left alone. Safe to repeat after a failure part-way.
    """
    results = [_dispatch_slot(slot, list(agent_ids)) for slot, agent_ids in due.items()]
    if any(result.queued for result in results):
        transaction.on_commit(pacing.request_admission)
    return results


def _dispatch_slot(slot: datetime, agent_ids: list[uuid.UUID]) -> SlotDispatch:
    rows: list[tuple[uuid.UUID, int, ScheduleSpec, int]] = []
    for chunk in _chunks(agent_ids, _parameter_batch()):
        for agent_id, priority, expression, zone, owner_id in AIAgent.objects.filter(
            pk__in=chunk, schedule_enabled=True, schedule_expression__isnull=False
        ).values_list("id", "priority", "schedule_expression", "schedule_timezone", "owner_id"):
            if expression:
                rows.append((agent_id, priority, ScheduleSpec(expression, zone), owner_id))

    valid: dict[ScheduleSpec, bool] = {}
    wanted: list[tuple[uuid.UUID, int, ScheduleSpec, int]] = []
    for agent_id, priority, spec, owner_id in rows:
        if spec not in valid:
            valid[spec] = _fires_at(spec, slot)
        if valid[spec]:
            wanted.append((agent_id, priority, spec, owner_id))
    wanted.sort(key=lambda row: -row[1])

    recorded = 0
    for batch in _chunks(wanted, _dispatch_batch()):
        recorded += _queue_batch(slot, batch)
    return SlotDispatch(
        slot=slot,
        queued=recorded,
        duplicates=len(wanted) - recorded,
        skipped=len(agent_ids) - len(wanted),
    )


def _queue_batch(slot: datetime, batch: list[tuple[uuid.UUID, int, ScheduleSpec, int]]) -> int:
    now = timezone.now()
    sessions = [
        ExecutionSession(
            agent_id=agent_id,
            owner_id=owner_id,
            trigger=Trigger.SCHEDULE,
            attempt=1,
            priority=priority,
            scheduled_for=slot,
            not_before=now,
        )
        for agent_id, priority, _, owner_id in batch
    ]
    by_next_run: dict[datetime | None, list[object]] = {}
    for agent_id, _, spec, _ in batch:
        by_next_run.setdefault(next_fire(spec, slot), []).append(agent_id)
    with transaction.atomic():
        ExecutionSession.objects.bulk_create(sessions, ignore_conflicts=True)
        recorded = 0
        # The insert skips conflicts silently; ours are the rows with our ids.
        for chunk in _chunks([session.pk for session in sessions], _parameter_batch()):
            ours = ExecutionSession.objects.filter(pk__in=chunk)
            recorded += ours.count()
            AIAgent.objects.filter(
                pk__in=ours.values("agent_id"),
                status__in=[AIAgent.Status.IDLE, AIAgent.Status.ERROR],
            ).update(status=AIAgent.Status.QUEUED)
        for next_run_at, ids in by_next_run.items():
            for chunk in _chunks(ids, _parameter_batch()):
                AIAgent.objects.filter(pk__in=chunk).update(next_run_at=next_run_at)
    return recorded


def _fires_at(spec: ScheduleSpec, slot: datetime) -> bool:
    try:
        return is_fire_time(spec, slot)
    except (CronError, ValueError):
        logger.warning("Agent schedule %r in %s cannot be used", spec.expression, spec.timezone)
        return False


def _parameter_batch() -> int:
    # SQLite caps the parameters of one statement; 900 stays below every build's cap.
    return 900 if connection.vendor == "sqlite" else 10_000


def _dispatch_batch() -> int:
    # Big enough that statements stay few, small enough that the first runs
    # are visible well before the last are written.
    return min(_parameter_batch(), 2000)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
