"""The slot ledger: what became of every slot at which a schedule was due, and why.

Rows are written by whoever decides a slot (beat's dispatch, the per-agent
dispatch task, a resume, a backfill), in the decision's own transaction, and
the unique (agent, slot) key makes the first writer the only one: a second
beat's insert of the same slot adds nothing, and the session it would have
queued is not queued. Later transitions follow the slot's run: QUEUED
becomes RAN when the run starts, and a run cancelled before it started
leaves its slot CANCELLED.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from core import bulk
from core.dates import minute_text
from observability import metrics
from scheduling.models import ScheduleSlot

Outcome = ScheduleSlot.Outcome

# Slot times as reason sentences show them.
at = minute_text


def jitter_delay(agent_id: uuid.UUID | str, slot: datetime, jitter_seconds: int) -> timedelta:
    """The wait before a slot's run: in [0, jitter), the same for every beat that computes it.

    A pure function of (agent, slot), so two beats deciding the same slot
    agree on ``not_before``, and slots of one agent spread differently.
    """
    if jitter_seconds <= 0:
        return timedelta(0)
    key = f"{agent_id}|{slot.astimezone(UTC).isoformat()}".encode()
    digest = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return timedelta(milliseconds=digest % (jitter_seconds * 1000))


def insert_slots(rows: Iterable[ScheduleSlot]) -> set[uuid.UUID]:
    """Insert ledger rows, skipping slots already recorded; return the ids of the rows
    this call wrote. Call it inside the transaction that acts on the decisions."""
    rows = list(rows)
    if not rows:
        return set()
    ours = bulk.insert_new(
        ScheduleSlot,
        {
            "id": [row.pk for row in rows],
            "agent_id": [row.agent_id for row in rows],
            "scheduled_for": [row.scheduled_for for row in rows],
            "outcome": [row.outcome for row in rows],
            "session_id": [row.session_id for row in rows],
            "reason": [row.reason for row in rows],
        },
    )
    metrics.slots_recorded(Counter(str(row.outcome) for row in rows if row.pk in ours))
    return ours


def mark_started(session_id: uuid.UUID) -> None:
    """The run of a queued slot started: the slot RAN (its session says how it ends)."""
    if ScheduleSlot.objects.filter(session_id=session_id, outcome=Outcome.QUEUED).update(
        outcome=Outcome.RAN, reason="Its run started."
    ):
        metrics.slots_recorded({Outcome.RAN: 1})


def mark_cancelled(session_id: uuid.UUID, reason: str) -> None:
    """The run of a slot was cancelled before it started."""
    if ScheduleSlot.objects.filter(
        session_id=session_id, outcome__in=[Outcome.QUEUED, Outcome.BACKFILL]
    ).update(outcome=Outcome.CANCELLED, reason=reason[:500]):
        metrics.slots_recorded({Outcome.CANCELLED: 1})
