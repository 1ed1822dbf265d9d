"""Runs for slots a person asks for: the slots missed while paused, a backfill's range.

Both take the slots of the agent's current schedule, look at what the ledger
and the sessions already hold for them, and queue the rest in one go. The
ledger row of a slot is written first, in the same transaction as its
session, as beat's dispatch does: a slot beat (or a second request) decided
meanwhile keeps that decision, and only the rows this call wrote queue runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max

from agents.models import AIAgent, ExecutionSession
from core import bulk
from observability import metrics
from scheduling import pacing, slots
from scheduling.cron import next_runs, parse_cron, previous_runs
from scheduling.models import ScheduleSlot

Outcome = ScheduleSlot.Outcome
Status = ExecutionSession.Status
Trigger = ExecutionSession.Trigger

_ONE_MICROSECOND = timedelta(microseconds=1)


def slots_from(agent: AIAgent, *, start: datetime, end: datetime, limit: int) -> list[datetime]:
    """The agent's slots in [start, end), oldest first, at most ``limit`` of them.

    Asks the schedule for a few at a time, so a short range of a sparse
    schedule does not scan years past its end.
    """
    cron = parse_cron(agent.schedule_expression or "")
    found: list[datetime] = []
    after, count = start - _ONE_MICROSECOND, 8
    while len(found) < limit:
        runs = next_runs(cron, agent.schedule_timezone, after=after, count=count)
        for run in runs:
            if run >= end or len(found) == limit:
                return found
            found.append(run)
        if len(runs) < count:
            break
        after, count = runs[-1], min(count * 2, 512)
    return found


def latest_slots(agent: AIAgent, *, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """The latest ``limit`` slots of the agent in (after, until], oldest first."""
    cron = parse_cron(agent.schedule_expression or "")
    runs = previous_runs(
        cron, agent.schedule_timezone, at_or_before=until, count=limit, since=after
    )
    return [run for run in runs if run > after]


@dataclass(frozen=True)
class SlotState:
    """What the ledger and the sessions hold for one slot of an agent."""

    ledger_id: uuid.UUID | None = None
    ledger_outcome: str | None = None
    ledger_session_id: uuid.UUID | None = None
    # The highest rerun among the slot's sessions (None without any): a new
    # run of the slot takes the next one, clear of the earlier runs' retries.
    top_rerun: int | None = None
    # Whether one of its sessions ran or may still run: a run cancelled
    # before it started never did.
    has_run: bool = False

    @property
    def next_rerun(self) -> int:
        return 0 if self.top_rerun is None else self.top_rerun + 1


def slot_states(agent_id: uuid.UUID, moments: Sequence[datetime]) -> dict[datetime, SlotState]:
    """The ledger rows and the sessions of these slots; slots without either are left out."""
    ledger: dict[datetime, tuple[uuid.UUID, str, uuid.UUID | None]] = {}
    top_rerun: dict[datetime, int] = {}
    ran: set[datetime] = set()
    for chunk in bulk.chunks(list(moments)):
        for pk, scheduled_for, outcome, session_id in ScheduleSlot.objects.filter(
            agent_id=agent_id, scheduled_for__in=chunk
        ).values_list("id", "scheduled_for", "outcome", "session_id"):
            ledger[scheduled_for] = (pk, outcome, session_id)
        sessions = ExecutionSession.objects.filter(
            agent_id=agent_id, scheduled_for__in=chunk
        ).exclude(trigger=Trigger.MANUAL)
        for scheduled_for, rerun in (
            sessions.values("scheduled_for")
            .annotate(top=Max("rerun"))
            .values_list("scheduled_for", "top")
        ):
            top_rerun[scheduled_for] = rerun
        ran.update(
            sessions.exclude(status=Status.CANCELLED, started_at__isnull=True)
            .order_by()
            .values_list("scheduled_for", flat=True)
            .distinct()
        )
    states = {}
    for moment in {*ledger, *top_rerun}:
        row = ledger.get(moment)
        states[moment] = SlotState(
            ledger_id=row[0] if row else None,
            ledger_outcome=row[1] if row else None,
            ledger_session_id=row[2] if row else None,
            top_rerun=top_rerun.get(moment),
            has_run=moment in ran,
        )
    return states


@dataclass(frozen=True)
class SlotRun:
    """A run to queue for a slot, why, and the slot's state it was planned on (None:
    nothing recorded; a ledger row in it is taken over)."""

    slot: datetime
    reason: str
    rerun: int = 0
    replaces: SlotState | None = None


def queue_slot_runs(
    agent: AIAgent,
    plans: Sequence[SlotRun],
    *,
    trigger: str,
    outcome: str,
    now: datetime,
) -> list[datetime]:
    """Record the slots in the ledger and queue their runs; returns the slots queued.

    Call it in the transaction that decided the plans, with the agent row
    locked. A new row is inserted (a slot recorded meanwhile keeps its row
    and gets no run); a replaced row is taken over only if it is still as
    read. Runs are admitted oldest slot first: ``created_at`` orders the
    agent's waiting runs at one priority, so it rises with the slot.
    """
    plans = sorted(plans, key=lambda plan: plan.slot)
    new_rows = {}
    session_ids = {plan.slot: uuid.uuid4() for plan in plans}
    for plan in plans:
        if plan.replaces is None or plan.replaces.ledger_id is None:
            new_rows[plan.slot] = ScheduleSlot(
                id=uuid.uuid4(),
                agent_id=agent.pk,
                scheduled_for=plan.slot,
                outcome=outcome,
                session_id=session_ids[plan.slot],
                reason=plan.reason[:500],
            )
    ours = slots.insert_slots(new_rows.values())
    queued = {slot for slot, row in new_rows.items() if row.pk in ours}
    taken_over = 0
    for plan in plans:
        state = plan.replaces
        if state is None or state.ledger_id is None:
            continue
        if ScheduleSlot.objects.filter(
            pk=state.ledger_id, outcome=state.ledger_outcome, session_id=state.ledger_session_id
        ).update(outcome=outcome, session_id=session_ids[plan.slot], reason=plan.reason[:500]):
            queued.add(plan.slot)
            taken_over += 1
    metrics.slots_recorded({outcome: taken_over})

    sessions = [
        ExecutionSession(
            id=session_ids[plan.slot],
            agent_id=agent.pk,
            owner_id=agent.owner_id,
            trigger=trigger,
            attempt=1,
            rerun=plan.rerun,
            priority=agent.priority,
            scheduled_for=plan.slot,
            not_before=now,
        )
        for plan in plans
        if plan.slot in queued
    ]
    ExecutionSession.objects.bulk_create(sessions)
    _order_by_slot(sessions)
    if sessions:
        AIAgent.objects.filter(
            pk=agent.pk, status__in=[AIAgent.Status.IDLE, AIAgent.Status.ERROR]
        ).update(status=AIAgent.Status.QUEUED)
        transaction.on_commit(pacing.request_admission)
    return [session.scheduled_for for session in sessions]


def _order_by_slot(sessions: Sequence[ExecutionSession]) -> None:
    """Make ``created_at`` strictly rise with the slot.

    A bulk insert stamps each row with its own reading of the clock, in list
    order, so the stamps never fall; two readings within one microsecond tie,
    and a tie would let admission take the later slot first.
    """
    previous: datetime | None = None
    for session in sessions:
        if previous is not None and session.created_at <= previous:
            session.created_at = previous + _ONE_MICROSECOND
            ExecutionSession.objects.filter(pk=session.pk).update(created_at=session.created_at)
        previous = session.created_at
