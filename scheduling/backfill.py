"""Backfill: run the slots of an agent's schedule in a past range, on request.

Each slot gets one BACKFILL session, admitted like any other run (the cap,
the priority, one run of an agent at a time), oldest slot first. A slot that
already had a run is left alone unless the request asks to run it again;
then the new run takes the next ``rerun`` number, so it and its retries never
clash with the earlier runs and theirs. The slot's ledger row follows the
newest run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from agents import audit
from agents.audit import SYSTEM, Actor
from agents.models import AIAgent, ExecutionSession
from core.dates import iso
from scheduling.models import ScheduleSlot
from scheduling.services import NoSchedule, ScheduleFieldError
from scheduling.slot_runs import SlotRun, queue_slot_runs, slot_states, slots_from

MAX_BACKFILL_SLOTS = 1000


@dataclass(frozen=True)
class Backfilled:
    slots: list[datetime]  # the slots queued, oldest first
    skipped: int  # slots left alone: they already had a run


def backfill(
    agent: AIAgent,
    *,
    start: datetime,
    end: datetime,
    rerun: bool = False,
    now: datetime | None = None,
    actor: Actor = SYSTEM,
) -> Backfilled:
    """Queue a run for every slot of the agent's schedule in [start, end).

    Raises ScheduleFieldError naming the field (start, end, rerun), NoSchedule
    and CronError, and then changes nothing. A backfill that queued runs is
    recorded in the audit trail (the request, and how many it queued).
    """
    now = now or timezone.now()
    for field, moment in (("start", start), ("end", end)):
        if not isinstance(moment, datetime) or timezone.is_naive(moment):
            raise ScheduleFieldError(field, "Must be a time with its UTC offset.")
    if start >= end:
        raise ScheduleFieldError("end", "Must be later than start.")
    if end > now:
        raise ScheduleFieldError("end", "Must not be in the future: backfill runs past slots.")
    if not isinstance(rerun, bool):
        raise ScheduleFieldError("rerun", "Must be true or false.")
    with transaction.atomic():
        # Locked, so two backfills of one agent cannot pick the same rerun number.
        agent = AIAgent.objects.select_for_update().get(pk=agent.pk)
        if not agent.schedule_expression:
            raise NoSchedule("This agent has no schedule to backfill: create one first.")
        wanted = slots_from(agent, start=start, end=end, limit=MAX_BACKFILL_SLOTS + 1)
        if len(wanted) > MAX_BACKFILL_SLOTS:
            raise ScheduleFieldError(
                "end",
                f"The range holds more than {MAX_BACKFILL_SLOTS} slots of the schedule: "
                "backfill a shorter range.",
            )
        states = slot_states(agent.pk, wanted)
        plans: list[SlotRun] = []
        skipped = 0
        for slot in wanted:
            state = states.get(slot)
            if state is not None and state.has_run and not rerun:
                skipped += 1
                continue
            number = state.next_rerun if state is not None else 0
            reason = (
                f"Run again on request (rerun {number})."
                if state is not None and state.has_run
                else "Backfilled on request."
            )
            plans.append(SlotRun(slot, reason, rerun=number, replaces=state))
        queued = queue_slot_runs(
            agent,
            plans,
            trigger=ExecutionSession.Trigger.BACKFILL,
            outcome=ScheduleSlot.Outcome.BACKFILL,
            now=now,
        )
        request = {"start": iso(start), "end": iso(end), "rerun": rerun, "queued": len(queued)}
        if queued:
            audit.record(
                agent,
                actor,
                audit.Action.BACKFILL,
                {field: [None, value] for field, value in request.items()},
            )
    # A slot recorded by beat between our read and our write kept beat's decision.
    return Backfilled(queued, skipped + len(plans) - len(queued))
