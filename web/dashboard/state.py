"""What the dashboard pages show, in the same shape the REST API answers with.

The pages render this on the server and embed it for their scripts, which
then keep it current from WebSocket events and the REST API. Using the API's
serializers and camelCase keys means the scripts handle one shape whichever
way the data came.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from djangorestframework_camel_case.util import camelize

from agents.models import AgentSessionCount, AIAgent, ExecutionSession
from agents.services import visible_agents
from core.dates import iso
from scheduling.schedules import schedule_description, schedule_warnings, upcoming_runs
from scheduling.stats import camel_stats, scheduler_stats
from web.api.serializers import AgentSerializer, SessionSerializer

# One page of GET /api/agents, so a re-read over REST is a single request.
MAX_AGENTS = 100
HISTORY_PAGE_SIZE = 10
CHART_RUNS = 30
SLOTS_SHOWN = 48

Status = ExecutionSession.Status


def _agent_data(agent: AIAgent) -> dict[str, Any]:
    data = dict(AgentSerializer(agent).data)
    # The user's own document is not shown here, and must never be camelized.
    data.pop("configuration", None)
    return camelize(data)


def session_data(session: ExecutionSession | None) -> dict[str, Any] | None:
    if session is None:
        return None
    data = dict(SessionSerializer(session).data)
    # The run's input, like the configuration, is the user's own document (up
    # to 64 KiB a run): the pages do not show it and it must never be camelized.
    data.pop("input", None)
    return camelize(data)


def upcoming_run_times(agent: AIAgent, *, even_paused: bool = False) -> list[str]:
    return [iso(run) for run in upcoming_runs(agent, even_paused=even_paused)]


def scheduler_summary() -> dict[str, Any]:
    return {**camel_stats(scheduler_stats()), "timestamp": iso(timezone.now())}


def _latest_sessions(agent_ids: list, statuses: tuple[str, ...]) -> dict[Any, ExecutionSession]:
    """Each agent's newest session among ``statuses``, in two queries whatever the count."""
    newest = (
        ExecutionSession.objects.filter(agent=OuterRef("pk"), status__in=statuses)
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    ids = (
        AIAgent.objects.filter(pk__in=agent_ids)
        .annotate(session_id=Subquery(newest))
        .exclude(session_id=None)
        .values_list("session_id", flat=True)
    )
    return {
        session.agent_id: session for session in ExecutionSession.objects.filter(pk__in=list(ids))
    }


def dashboard_state(user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    agents_qs = visible_agents(user).order_by("-created_at", "id")
    total = agents_qs.count()
    agents = list(agents_qs[:MAX_AGENTS])
    ids = [agent.pk for agent in agents]
    finished = _latest_sessions(ids, tuple(ExecutionSession.FINISHED))
    # A running session says more than a queued one behind it.
    active = {
        **_latest_sessions(ids, (Status.QUEUED,)),
        **_latest_sessions(ids, (Status.RUNNING,)),
    }
    rows = []
    for agent in agents:
        row = _agent_data(agent)
        row["description"] = schedule_description(agent)
        # Lets the page move on to the next slot by itself when one passes.
        # (A paused rule's slots too: they are right again once it is resumed.)
        row["upcomingRuns"] = upcoming_run_times(agent, even_paused=True)
        row["lastSession"] = session_data(finished.get(agent.pk))
        row["activeSession"] = session_data(active.get(agent.pk))
        rows.append(row)
    return {
        "agents": rows,
        "total": total,
        "scheduler": scheduler_summary(),
        "statusInterval": settings.SCHEDULER_STATUS_INTERVAL,
    }


def agent_state(agent: AIAgent) -> dict[str, Any]:
    recent = list(agent.sessions.order_by("-created_at", "-id")[:CHART_RUNS])
    active = next((s for s in recent if s.status == Status.RUNNING), None) or next(
        (s for s in recent if s.status == Status.QUEUED), None
    )
    return {
        "agent": _agent_data(agent),
        "schedule": {
            "description": schedule_description(agent),
            "upcomingRuns": upcoming_run_times(agent),
            "warnings": schedule_warnings(agent),
            "overlapPolicy": agent.overlap_policy,
            "catchupPolicy": agent.catchup_policy,
            "catchupWindow": agent.catchup_window,
            "jitterSeconds": agent.jitter_seconds,
            "pauseNote": agent.pause_note,
            "pausedUntil": iso(agent.paused_until),
        },
        "sessions": [session_data(session) for session in recent],
        "sessionsTotal": AgentSessionCount.total_for(agent.pk),
        "activeSession": session_data(active),
        "pageSize": HISTORY_PAGE_SIZE,
        "scheduler": scheduler_summary(),
        "statusInterval": settings.SCHEDULER_STATUS_INTERVAL,
        "slotsShown": SLOTS_SHOWN,
    }
