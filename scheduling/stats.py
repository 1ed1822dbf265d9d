"""Scheduler figures, read from the database and Redis on every call."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import Count

from agents.models import AIAgent, ExecutionSession
from agents.services import scheduled_agents
from core.dates import iso
from observability.heartbeats import beat_is_running


def scheduler_stats() -> dict[str, Any]:
    counts = {
        row["status"]: row["n"]
        for row in ExecutionSession.objects.filter(
            status__in=[ExecutionSession.Status.RUNNING, ExecutionSession.Status.QUEUED]
        )
        .values("status")
        .annotate(n=Count("id"))
    }
    return {
        "is_running": beat_is_running(),
        "scheduled_tasks_count": scheduled_agents().count(),
        "running_agents_count": counts.get(ExecutionSession.Status.RUNNING, 0),
        "queued_tasks_count": counts.get(ExecutionSession.Status.QUEUED, 0),
        "max_concurrent_agents": settings.SCHEDULER_MAX_CONCURRENT,
    }


def running_agent_ids(agents: Iterable[AIAgent]) -> set[uuid.UUID]:
    """Which of ``agents`` have a run going, in one query."""
    return set(
        ExecutionSession.objects.filter(
            status=ExecutionSession.Status.RUNNING, agent__in=agents
        ).values_list("agent_id", flat=True)
    )


def task_details(agent: AIAgent, *, is_running: bool | None = None) -> dict[str, Any] | None:
    """The beat-side view of one agent's schedule; None when it has none."""
    if not agent.schedule_expression:
        return None
    if is_running is None:
        is_running = agent.sessions.filter(status=ExecutionSession.Status.RUNNING).exists()
    return {
        "agent_id": str(agent.pk),
        "agent_name": agent.name,
        "priority": int(agent.priority),
        "next_run_time": iso(agent.next_run_at),
        "retry_count": agent.retry_count,
        "last_error": agent.last_error or None,
        "is_running": is_running,
    }


def camel_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """The stats as WebSocket clients see them (the REST renderer camelizes by itself)."""
    return {
        "isRunning": stats["is_running"],
        "scheduledTasksCount": stats["scheduled_tasks_count"],
        "runningAgentsCount": stats["running_agents_count"],
        "queuedTasksCount": stats["queued_tasks_count"],
        "maxConcurrentAgents": stats["max_concurrent_agents"],
    }
