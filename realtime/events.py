"""The one emitter of lifecycle events, and the payload builder of each.

Every frame is built here and sent after the surrounding transaction commits,
so a client never hears of a state the database then rolls back.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession, Priority
from core.dates import iso
from realtime.groups import (
    SCHEDULER_GROUP,
    STAFF_AGENTS_GROUP,
    agent_group,
    owner_agents_group,
)
from realtime.publisher import send_all_now, send_now

AGENT_STARTED = "agent:started"
AGENT_PROGRESS = "agent:progress"
AGENT_COMPLETED = "agent:completed"
AGENT_FAILED = "agent:failed"
AGENT_LOG = "agent:log"
AGENT_ALERT = "agent:alert"
AGENT_ALERT_RESOLVED = "agent:alert_resolved"
SCHEDULER_STATUS = "scheduler:status"


def _agent_base(agent: AIAgent) -> dict[str, Any]:
    return {"agentId": str(agent.pk), "timestamp": iso(timezone.now())}


def started_payload(session: ExecutionSession, agent: AIAgent) -> dict[str, Any]:
    return {
        **_agent_base(agent),
        "sessionId": str(session.pk),
        "priority": Priority(session.priority).name,
        "agentName": agent.name,
        "agentType": agent.agent_type,
        "attempt": session.attempt,
    }


def progress_payload(
    session: ExecutionSession, agent: AIAgent, progress: int, message: str
) -> dict[str, Any]:
    return {
        **_agent_base(agent),
        "sessionId": str(session.pk),
        "progress": progress,
        "message": message,
    }


def completed_payload(session: ExecutionSession, agent: AIAgent) -> dict[str, Any]:
    return {
        **_agent_base(agent),
        "sessionId": str(session.pk),
        "duration": session.duration_ms,
        "agentName": agent.name,
        "agentType": agent.agent_type,
        "outputSummary": session.output_summary,
    }


def failed_payload(
    session: ExecutionSession, agent: AIAgent, *, will_retry: bool
) -> dict[str, Any]:
    return {
        **_agent_base(agent),
        "sessionId": str(session.pk),
        "error": session.error_message,
        "retryCount": agent.retry_count,
        "willRetry": will_retry,
        "agentName": agent.name,
        "agentType": agent.agent_type,
    }


def log_payload(session: ExecutionSession, agent: AIAgent, line: Any) -> dict[str, Any]:
    return {
        **_agent_base(agent),
        "sessionId": str(session.pk),
        "seq": line.seq,
        "level": line.level,
        "message": line.message,
    }


def alert_payload(incident: Any, agent: AIAgent) -> dict[str, Any]:
    return {
        **_agent_base(agent),
        "alertId": str(incident.pk),
        "kind": incident.kind,
        "message": incident.message,
    }


def scheduler_status_payload(stats: dict[str, Any]) -> dict[str, Any]:
    return {**stats, "timestamp": iso(timezone.now())}


def agent_groups(agent: AIAgent) -> list[str]:
    return [agent_group(agent.pk), owner_agents_group(agent.owner_id), STAFF_AGENTS_GROUP]


def emit(event: str, data: dict[str, Any], groups: list[str]) -> None:
    frame = {"event": event, "data": data}
    transaction.on_commit(lambda: send_now(groups, frame))


def emit_started(session: ExecutionSession, agent: AIAgent) -> None:
    emit(AGENT_STARTED, started_payload(session, agent), agent_groups(agent))


def emit_progress(session: ExecutionSession, agent: AIAgent, progress: int, message: str) -> None:
    emit(AGENT_PROGRESS, progress_payload(session, agent, progress, message), agent_groups(agent))


def emit_completed(session: ExecutionSession, agent: AIAgent) -> None:
    emit(AGENT_COMPLETED, completed_payload(session, agent), agent_groups(agent))


def emit_failed(session: ExecutionSession, agent: AIAgent, *, will_retry: bool) -> None:
    emit(AGENT_FAILED, failed_payload(session, agent, will_retry=will_retry), agent_groups(agent))


def emit_log_lines(session: ExecutionSession, agent: AIAgent, lines: list[Any]) -> None:
    """Log lines go to the agent's room only: monitoring rooms watch many agents,
    and a log is read where one run is watched."""
    frames = [{"event": AGENT_LOG, "data": log_payload(session, agent, line)} for line in lines]
    if frames:
        groups = [agent_group(agent.pk)]
        transaction.on_commit(lambda: send_all_now(groups, frames))


def emit_alert(incident: Any, agent: AIAgent) -> None:
    emit(AGENT_ALERT, alert_payload(incident, agent), agent_groups(agent))


def emit_alert_resolved(incident: Any, agent: AIAgent) -> None:
    payload = {**alert_payload(incident, agent), "resolution": incident.resolution}
    emit(AGENT_ALERT_RESOLVED, payload, agent_groups(agent))


def emit_scheduler_status(stats: dict[str, Any]) -> None:
    emit(SCHEDULER_STATUS, scheduler_status_payload(stats), [SCHEDULER_GROUP])
