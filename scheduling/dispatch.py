"""Turning due slots into queued runs: beat's bulk dispatch, and one agent's slot.

Beat's ``AgentScheduler`` records whole slots at once (``dispatch_due_slots``).
The per-agent task ``scheduling.dispatch_scheduled_run`` stays the task every
agent's django-celery-beat entry names: the stock scheduler and the beat
admin's "Run selected tasks" send it, one message per agent and slot. Both
go through the same code, so both keep the slot ledger, the overlap policy
and the jitter.

Each decision is a ledger row (:mod:`scheduling.slots`) written in the
transaction that acts on it: the ledger insert comes first and only the
rows it wrote queue their sessions, so two beats (or a beat and a re-sent
message) deciding the same slot differently still leave one decision.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from agents.models import AIAgent, ExecutionSession, OverlapPolicy
from core import bulk
from core.dates import minute_text
from scheduling import pacing, runs, slots
from scheduling.cron import CronError
from scheduling.due_index import ScheduleSpec, is_fire_time, next_fire
from scheduling.models import ScheduleSlot
from scheduling.services import refresh_next_run

logger = logging.getLogger(__name__)

Status = ExecutionSession.Status
Trigger = ExecutionSession.Trigger
Outcome = ScheduleSlot.Outcome


@dataclass(frozen=True)
class DueAgent:
    """An agent as the dispatch of one slot sees it."""

    agent_id: uuid.UUID
    owner_id: int | None
    priority: int
    spec: ScheduleSpec
    overlap_policy: str
    jitter_seconds: int


@dataclass(frozen=True)
class ActiveRun:
    """A queued or running session of an agent, as the overlap policy sees it."""

    session_id: uuid.UUID
    scheduled_for: datetime
    status: str
    attempt: int

    @property
    def in_progress(self) -> bool:
        # A retry waiting for its backoff is its slot's run still going.
        return self.status == Status.RUNNING or self.attempt > 1


@dataclass(frozen=True)
class OverlapDecision:
    queue: bool
    reason: str
    cancel: tuple[uuid.UUID, ...] = ()


def overlap_decision(policy: str, slot: datetime, active: Sequence[ActiveRun]) -> OverlapDecision:
    """What the slot ``slot`` does, given the agent's queued and running sessions."""
    if not active:
        return OverlapDecision(True, "Queued.")
    # One run is a session and its retries: they share the slot they run for.
    going = sorted({run.scheduled_for for run in active if run.in_progress})
    waiting = sorted({run.scheduled_for for run in active} - set(going))
    earliest = min(run.scheduled_for for run in active)
    if policy == OverlapPolicy.SKIP:
        state = "still running" if going else "still waiting to run"
        return OverlapDecision(
            False,
            f"Skipped (overlap policy SKIP): the run for {minute_text(earliest)} was {state}.",
        )
    if policy == OverlapPolicy.CANCEL_OTHER:
        return OverlapDecision(
            True,
            f"Queued; the run for {minute_text(earliest)} was cancelled "
            "(overlap policy CANCEL_OTHER).",
            tuple(run.session_id for run in active),
        )
    if policy == OverlapPolicy.BUFFER_ALL:
        count = len(going) + len(waiting)
        runs_word = "run" if count == 1 else "runs"
        return OverlapDecision(
            True, f"Queued behind {count} earlier {runs_word} (overlap policy BUFFER_ALL)."
        )
    if waiting:
        return OverlapDecision(
            False,
            f"Skipped (overlap policy BUFFER_ONE): the run for {minute_text(waiting[0])} "
            "was already waiting.",
        )
    return OverlapDecision(
        True,
        f"Queued to start after the run for {minute_text(earliest)} (overlap policy BUFFER_ONE).",
    )


def dispatch_scheduled_run(agent_id: str, scheduled_for: datetime) -> ExecutionSession | None:
    """Beat fired an agent's schedule for the slot ``scheduled_for``."""
    try:
        agent_uuid = uuid.UUID(str(agent_id))
    except ValueError:
        return None
    result = _dispatch_slot(scheduled_for, [agent_uuid])
    if result.skipped:
        # Beat's crontab cannot say "the 13th or a Friday"; it fires on every
        # day and the cron day rule holds here: the preview moves on.
        agent = AIAgent.objects.filter(pk=agent_uuid).first()
        if agent is not None:
            refresh_next_run(agent, after=scheduled_for)
    if result.queued:
        transaction.on_commit(pacing.request_admission)
        return ExecutionSession.objects.filter(pk=result.session_ids[0]).first()
    return None


@dataclass(frozen=True)
class SlotDispatch:
    """What one slot's bulk dispatch did."""

    slot: datetime
    queued: int  # sessions this call recorded
    duplicates: int  # already decided for this slot (another beat, a re-send)
    skipped: int  # agents no longer scheduled for this slot
    overlapped: int = 0  # slots the overlap policy skipped
    session_ids: tuple[uuid.UUID, ...] = ()


def dispatch_due_slots(
    due: Mapping[datetime, Iterable[uuid.UUID]],
    missed: Mapping[uuid.UUID, Sequence[tuple[datetime, str]]] | None = None,
) -> list[SlotDispatch]:
    """Record the scheduled runs of many agents at once, one slot at a time.

    ``due`` maps each slot to the ids of the agents beat found due in it;
    ``missed`` maps agents to the slots beat will not run (catch-up policy
    and window) with the reason, recorded MISSED in the ledger. For each slot:
    one read of those agents and, in batches of a few thousand (highest
    priority first), one read of their queued and running sessions, one
    ``INSERT`` of ledger rows that skips slots already decided, one of the
    QUEUED sessions those rows queued and a few updates of the agents, each
    batch committed on its own so runs become visible as they are written;
    then one admission request for everything. (Asking earlier would set the
    workers running against the rest of the writes.) An agent whose schedule
    no longer includes the slot (edited meanwhile, paused, removed) is left
    alone. Safe to repeat after a failure part-way.
    """
    if missed:
        record_missed(missed)
    results = [_dispatch_slot(slot, list(agent_ids)) for slot, agent_ids in due.items()]
    if any(result.queued for result in results):
        transaction.on_commit(pacing.request_admission)
    return results


def record_missed(missed: Mapping[uuid.UUID, Sequence[tuple[datetime, str]]]) -> int:
    """Record slots that will not run as MISSED, with their reasons; returns how many
    this call recorded (a slot another beat recorded first counts there)."""
    rows = [
        ScheduleSlot(
            id=uuid.uuid4(),
            agent_id=agent_id,
            scheduled_for=slot,
            outcome=Outcome.MISSED,
            reason=reason[:500],
        )
        for agent_id, agent_slots in missed.items()
        for slot, reason in agent_slots
    ]
    recorded = 0
    for batch in bulk.chunks(rows, _dispatch_batch()):
        with transaction.atomic():
            recorded += len(slots.insert_slots(batch))
    return recorded


def _dispatch_slot(slot: datetime, agent_ids: list[uuid.UUID]) -> SlotDispatch:
    rows: list[DueAgent] = []
    for chunk in bulk.chunks(agent_ids):
        for (
            agent_id,
            owner_id,
            priority,
            expression,
            zone,
            overlap_policy,
            jitter_seconds,
        ) in AIAgent.objects.filter(
            pk__in=chunk, schedule_enabled=True, schedule_expression__isnull=False
        ).values_list(
            "id",
            "owner_id",
            "priority",
            "schedule_expression",
            "schedule_timezone",
            "overlap_policy",
            "jitter_seconds",
        ):
            if expression:
                spec = ScheduleSpec(expression, zone)
                rows.append(
                    DueAgent(agent_id, owner_id, priority, spec, overlap_policy, jitter_seconds)
                )

    valid: dict[ScheduleSpec, bool] = {}
    wanted: list[DueAgent] = []
    for row in rows:
        if row.spec not in valid:
            valid[row.spec] = _fires_at(row.spec, slot)
        if valid[row.spec]:
            wanted.append(row)
    wanted.sort(key=lambda row: -row.priority)

    queued: list[uuid.UUID] = []
    overlapped = decided = 0
    for batch in bulk.chunks(wanted, _dispatch_batch()):
        batch_queued, batch_overlapped, batch_decided = _queue_batch(slot, batch)
        queued += batch_queued
        overlapped += batch_overlapped
        decided += batch_decided
    return SlotDispatch(
        slot=slot,
        queued=len(queued),
        duplicates=len(wanted) - decided,
        skipped=len(agent_ids) - len(wanted),
        overlapped=overlapped,
        session_ids=tuple(queued),
    )


def _active_runs(agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[ActiveRun]]:
    active: dict[uuid.UUID, list[ActiveRun]] = {}
    for chunk in bulk.chunks(agent_ids):
        for agent_id, session_id, scheduled_for, status, attempt in ExecutionSession.objects.filter(
            agent_id__in=chunk, status__in=[Status.QUEUED, Status.RUNNING]
        ).values_list("agent_id", "id", "scheduled_for", "status", "attempt"):
            active.setdefault(agent_id, []).append(
                ActiveRun(session_id, scheduled_for, status, attempt)
            )
    return active


def _queue_batch(slot: datetime, batch: list[DueAgent]) -> tuple[list[uuid.UUID], int, int]:
    """Decide one batch of agents' slot; returns (sessions queued, slots the
    overlap policy skipped, slots this call decided)."""
    active = _active_runs(
        [row.agent_id for row in batch if row.overlap_policy != OverlapPolicy.BUFFER_ALL]
    )
    ledger: list[ScheduleSlot] = []
    # Ledger row -> (the session it queues, the agent), for the slots that run.
    queueing: dict[uuid.UUID, tuple[uuid.UUID, DueAgent]] = {}
    cancels: dict[uuid.UUID, tuple[uuid.UUID, ...]] = {}
    for row in batch:
        decision = overlap_decision(row.overlap_policy, slot, active.get(row.agent_id, []))
        entry = ScheduleSlot(
            id=uuid.uuid4(),
            agent_id=row.agent_id,
            scheduled_for=slot,
            outcome=Outcome.QUEUED if decision.queue else Outcome.SKIPPED,
            reason=decision.reason,
        )
        if decision.queue:
            entry.session_id = uuid.uuid4()
            queueing[entry.pk] = (entry.session_id, row)
        if decision.cancel:
            cancels[entry.pk] = decision.cancel
        ledger.append(entry)

    by_next_run: dict[datetime | None, list[uuid.UUID]] = {}
    for row in batch:
        by_next_run.setdefault(next_fire(row.spec, slot), []).append(row.agent_id)
    with transaction.atomic():
        ours = slots.insert_slots(ledger)
        queued = [pair for pk, pair in queueing.items() if pk in ours]
        to_queue = [session_id for session_id, _ in queued]
        inserted = bulk.insert_new(
            ExecutionSession,
            {
                "id": to_queue,
                "agent_id": [row.agent_id for _, row in queued],
                "owner_id": [row.owner_id for _, row in queued],
                "priority": [row.priority for _, row in queued],
                # The planned slot stays the slot; only the start waits.
                "not_before": [
                    slot + slots.jitter_delay(row.agent_id, slot, row.jitter_seconds)
                    for _, row in queued
                ],
            },
            {"trigger": Trigger.SCHEDULE, "attempt": 1, "scheduled_for": slot},
        )
        if len(inserted) < len(to_queue):
            # The slot's session existed without a ledger row (queued before
            # the ledger was kept): no ledger row may point at nothing.
            orphans = [pk for pk in to_queue if pk not in inserted]
            ScheduleSlot.objects.filter(session_id__in=orphans).delete()
        waiting = [row.agent_id for session_id, row in queued if session_id in inserted]
        for chunk in bulk.chunks(waiting):
            AIAgent.objects.filter(
                pk__in=chunk, status__in=[AIAgent.Status.IDLE, AIAgent.Status.ERROR]
            ).update(status=AIAgent.Status.QUEUED)
        for pk, session_ids in cancels.items():
            if pk in ours:
                _cancel_others(session_ids, slot)
        for next_run_at, ids in by_next_run.items():
            for chunk in bulk.chunks(ids):
                AIAgent.objects.filter(pk__in=chunk).update(next_run_at=next_run_at)
    overlapped = sum(1 for entry in ledger if entry.pk in ours and entry.outcome == Outcome.SKIPPED)
    return [pk for pk in to_queue if pk in inserted], overlapped, len(ours)


def _cancel_others(session_ids: Iterable[uuid.UUID], slot: datetime) -> None:
    reason = f"Cancelled by the slot of {minute_text(slot)} (overlap policy CANCEL_OTHER)."
    for session in ExecutionSession.objects.select_related("agent").filter(pk__in=session_ids):
        runs.cancel_session(session, reason=reason)


def _fires_at(spec: ScheduleSpec, slot: datetime) -> bool:
    try:
        return is_fire_time(spec, slot)
    except (CronError, ValueError):
        logger.warning("Agent schedule %r in %s cannot be used", spec.expression, spec.timezone)
        return False


def _dispatch_batch() -> int:
    # Big enough that statements stay few, small enough that the first runs
    # are visible well before the last are written.
    return min(bulk.parameter_batch(), 2000)


__all__ = [
    "ActiveRun",
    "OverlapDecision",
    "SlotDispatch",
    "dispatch_due_slots",
    "dispatch_scheduled_run",
    "overlap_decision",
    "record_missed",
]
