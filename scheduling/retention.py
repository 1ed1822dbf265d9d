"""Retention: finished sessions past their keep go, with their ledger rows.

Two rules, applied in this order by beat's daily task and by
``manage.py prune_sessions``:

* age: finished sessions created more than ``SESSION_RETENTION_DAYS`` ago;
* count: an agent's finished sessions beyond its newest
  ``SESSION_RETENTION_PER_AGENT`` sessions (of any status).

Queued and running sessions are never touched, nor a cancelled one whose
runner has not stopped yet (it still holds its admission slot). Deletes go
in batches, each its own short transaction, so the history stays readable
and runs keep being recorded while a large backlog drains. The per-agent
session counts stay exact: the database's triggers subtract what each
delete removed. Ledger rows go with their session; slots that never had one
(skipped, missed) go once they are older than the age rule, and so do
resolved alerts (with their notifications). Run requests' idempotency keys
go once past their 24 hours.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from agents.models import AgentSessionCount, AIAgent, ExecutionSession, RunRequestKey
from observability import metrics
from scheduling.models import Incident, ScheduleSlot

BATCH_SIZE = 1000


@dataclass
class Pruned:
    """What a prune removed, or with ``dry_run`` would remove."""

    dry_run: bool
    by_age: int = 0
    by_count: int = 0
    slots: int = 0
    incidents: int = 0
    agents: set[uuid.UUID] = field(default_factory=set)

    @property
    def sessions(self) -> int:
        return self.by_age + self.by_count


def prune_sessions(
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    days: int | None = None,
    per_agent: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> Pruned:
    """Apply the retention rules (0 turns a rule off); returns what went."""
    now = now or timezone.now()
    days = settings.SESSION_RETENTION_DAYS if days is None else days
    per_agent = settings.SESSION_RETENTION_PER_AGENT if per_agent is None else per_agent
    result = Pruned(dry_run=dry_run)
    cutoff = now - timedelta(days=days) if days else None
    if cutoff is not None:
        aged = _prunable().filter(created_at__lt=cutoff)
        result.by_age = _delete_sessions(aged, result, batch_size)
    if per_agent:
        for agent_id in _agents_over(per_agent):
            beyond = _beyond_newest(agent_id, per_agent)
            if beyond is None:
                continue
            if cutoff is not None:
                # Gone already, or (in a dry run) counted by the age rule.
                beyond = beyond.filter(created_at__gte=cutoff)
            result.by_count += _delete_sessions(beyond, result, batch_size)
    if cutoff is not None:
        result.slots += _delete_old_unrun_slots(cutoff, result, batch_size)
        result.incidents = _delete_resolved_incidents(cutoff, dry_run)
    if not dry_run:
        # Past their lifetime, keys are only replaced by their next use.
        RunRequestKey.objects.filter(created_at__lt=now - RunRequestKey.KEY_LIFETIME).delete()
    if not dry_run:
        metrics.sessions_pruned(result.sessions)
    return result


def _prunable() -> QuerySet[ExecutionSession]:
    return ExecutionSession.objects.filter(status__in=ExecutionSession.FINISHED).exclude(
        Q(status=ExecutionSession.Status.CANCELLED) & Q(lease_expires_at__isnull=False)
    )


def _agents_over(per_agent: int) -> Iterator[uuid.UUID]:
    # The stored counts answer this without counting any agent's sessions.
    yield from AgentSessionCount.objects.filter(total__gt=per_agent).values_list(
        "agent_id", flat=True
    )


def _beyond_newest(agent_id: uuid.UUID, keep: int) -> QuerySet[ExecutionSession] | None:
    """The agent's prunable sessions older than its newest ``keep`` (by the history's order)."""
    boundary = (
        ExecutionSession.objects.filter(agent_id=agent_id)
        .order_by("-created_at", "-id")
        .values_list("created_at", "id")[keep - 1 : keep]
    )
    row = next(iter(boundary), None)
    if row is None:
        return None
    created_at, pk = row
    return _prunable().filter(
        Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk), agent_id=agent_id
    )


def _delete_sessions(sessions: QuerySet[ExecutionSession], result: Pruned, batch_size: int) -> int:
    if result.dry_run:
        rows = list(sessions.values_list("agent_id", flat=True).distinct())
        result.agents.update(rows)
        result.slots += ScheduleSlot.objects.filter(session__in=sessions).count()
        return sessions.count()
    removed = 0
    while True:
        with transaction.atomic():
            # Locked as read, so what is decided here is what is deleted.
            batch = list(
                sessions.select_for_update()
                .order_by("created_at", "id")
                .values_list("id", "agent_id")[:batch_size]
            )
            if not batch:
                return removed
            ids = [pk for pk, _ in batch]
            result.agents.update(agent_id for _, agent_id in batch)
            result.slots += ScheduleSlot.objects.filter(session_id__in=ids).delete()[0]
            # Only the ids: Django's delete reads the rows for their cascades
            # (log lines, keys), and whole rows (their input documents) cost
            # half of a batch's time for nothing.
            deleted = ExecutionSession.objects.filter(pk__in=ids).only("pk").delete()[1]
            removed += deleted.get(ExecutionSession._meta.label, 0)


def _delete_old_unrun_slots(cutoff: datetime, result: Pruned, batch_size: int) -> int:
    """Ledger rows older than ``cutoff`` that never had a session, agent by agent
    (each read is a range of the ledger's (agent, slot) key)."""
    removed = 0
    for agent_id in AIAgent.objects.order_by().values_list("pk", flat=True).iterator():
        old = ScheduleSlot.objects.filter(
            agent_id=agent_id, scheduled_for__lt=cutoff, session__isnull=True
        )
        if result.dry_run:
            count = old.count()
        else:
            count = 0
            while ids := list(old.values_list("id", flat=True)[:batch_size]):
                count += ScheduleSlot.objects.filter(pk__in=ids).delete()[0]
        if count:
            result.agents.add(agent_id)
        removed += count
    return removed


def _delete_resolved_incidents(cutoff: datetime, dry_run: bool) -> int:
    """Alerts resolved before ``cutoff``; an open one stays however old it is."""
    resolved = Incident.objects.filter(resolved_at__lt=cutoff)
    if dry_run:
        return resolved.count()
    return resolved.delete()[1].get(Incident._meta.label, 0)
