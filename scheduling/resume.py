"""Resuming a paused schedule: which of the slots missed while it was paused run,
and snoozes that end by themselves.

The missed slots are those of the current schedule in (paused_at, now]. Beat
fires nothing for them: a paused schedule is not in its index, and a resumed
one fires from its first slot after the change. So whatever of them runs is
queued here, in the transaction that enables the schedule.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import models, transaction
from django.utils import timezone

from agents import audit
from agents.audit import SYSTEM, Actor
from agents.models import AIAgent, ExecutionSession
from scheduling.cron import CronError
from scheduling.models import ScheduleSlot
from scheduling.services import NoSchedule, ScheduleFieldError, set_schedule
from scheduling.slot_runs import SlotRun, latest_slots, queue_slot_runs, slot_states

logger = logging.getLogger(__name__)


class ResumePolicy(models.TextChoices):
    """Which of the slots missed while paused run when the schedule resumes."""

    SKIP_MISSED = "SKIP_MISSED", "None of them"
    RUN_LATEST = "RUN_LATEST", "Only the most recent"
    RUN_ALL = "RUN_ALL", "All of them, oldest first (the most recent 100 at most)"


RUN_ALL_LIMIT = 100
# Snoozes ended per tick (every SCHEDULER_CHECK_INTERVAL): a pile-up drains
# over a few ticks without one tick holding up the admission pass after it.
SNOOZE_BATCH = 100


@dataclass(frozen=True)
class Resumed:
    runs: list[datetime]  # the slots that run (or would), oldest first
    schedule_enabled: bool


def resume_schedule(
    agent: AIAgent,
    *,
    policy: str,
    dry_run: bool = False,
    now: datetime | None = None,
    actor: Actor = SYSTEM,
) -> Resumed:
    """Resume a paused schedule, running the missed slots ``policy`` asks for.

    Slots the ledger already holds, or that have a session, are left alone.
    With ``dry_run`` nothing changes and the answer says what a real call
    would run now. A schedule that is not paused is left as it is. Raises
    ScheduleFieldError (a bad policy or dry_run), NoSchedule, CronError.
    """
    if not isinstance(policy, str) or policy not in ResumePolicy.values:
        raise ScheduleFieldError(
            "policy", f"Unknown policy {policy!r}: use SKIP_MISSED, RUN_LATEST or RUN_ALL."
        )
    if not isinstance(dry_run, bool):
        raise ScheduleFieldError("dry_run", "Must be true or false.")
    now = now or timezone.now()
    with transaction.atomic():
        agents = AIAgent.objects.all() if dry_run else AIAgent.objects.select_for_update()
        agent = agents.get(pk=agent.pk)
        if not agent.schedule_expression:
            raise NoSchedule("This agent has no schedule to resume.")
        if agent.schedule_enabled:
            return Resumed([], True)
        plans = _missed_runs(agent, policy, now)
        if dry_run:
            return Resumed([plan.slot for plan in plans], False)
        agent = set_schedule(agent, enabled=True, actor=actor)
        queued = queue_slot_runs(
            agent,
            plans,
            trigger=ExecutionSession.Trigger.SCHEDULE,
            outcome=ScheduleSlot.Outcome.QUEUED,
            now=now,
        )
    return Resumed(queued, True)


def _missed_runs(agent: AIAgent, policy: str, now: datetime) -> list[SlotRun]:
    # A pause from before paused_at was kept has no known start: nothing was missed.
    if policy == ResumePolicy.SKIP_MISSED or agent.paused_at is None:
        return []
    limit = 1 if policy == ResumePolicy.RUN_LATEST else RUN_ALL_LIMIT
    missed = latest_slots(agent, after=agent.paused_at, until=now, limit=limit)
    known = slot_states(agent.pk, missed)
    reason = f"Run on resume ({policy})."
    return [SlotRun(slot, reason) for slot in missed if slot not in known]


def end_snoozes(*, now: datetime | None = None) -> list[uuid.UUID]:
    """Resume the schedules whose snooze has ended (missed slots skipped); returns their ids."""
    now = now or timezone.now()
    due = list(
        AIAgent.objects.filter(paused_until__isnull=False, paused_until__lte=now)
        .order_by("paused_until")
        .values_list("pk", flat=True)[:SNOOZE_BATCH]
    )
    resumed = []
    for pk in due:
        try:
            with transaction.atomic():
                # Read again under the lock: the user may have changed it meanwhile.
                agent = (
                    AIAgent.objects.select_for_update()
                    .filter(pk=pk, paused_until__isnull=False, paused_until__lte=now)
                    .first()
                )
                if agent is None:
                    continue
                set_schedule(
                    agent, enabled=True, actor=SYSTEM, action=audit.Action.SCHEDULE_SNOOZE_ENDED
                )
        except (CronError, NoSchedule):
            # Left as it is, this would be tried (and fail) again every second.
            AIAgent.objects.filter(pk=pk, paused_until__lte=now).update(paused_until=None)
            logger.warning("The snooze of agent %s ended but its schedule cannot run", pk)
            continue
        logger.info(
            "Schedule of agent %s (%s) resumed by the system: its snooze ended", pk, agent.name
        )
        resumed.append(pk)
    return resumed
