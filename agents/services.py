"""State changes of agents. Views and the admin call these; nothing else writes agents."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import QuerySet

from agents import audit
from agents.audit import SYSTEM, Actor
from agents.models import AIAgent, ExecutionSession

# The contract's exact answers (no full stop) for an agent or a session the user
# may not see, unknown and foreign alike: every API path, the dashboard and the
# WebSocket's error frames say the same, so ids do not leak.
AGENT_NOT_FOUND = "Agent not found"
SESSION_NOT_FOUND = "Session not found"


def visible_agents(user: AbstractBaseUser | AnonymousUser) -> QuerySet[AIAgent]:
    """Staff see every agent; everyone else only the agents they manage."""
    agents = AIAgent.objects.all()
    if getattr(user, "is_staff", False):
        return agents
    return agents.filter(owner_id=user.pk)


def visible_sessions(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ExecutionSession]:
    sessions = ExecutionSession.objects.all()
    if getattr(user, "is_staff", False):
        return sessions
    return sessions.filter(agent__owner_id=user.pk)


def scheduled_agents() -> QuerySet[AIAgent]:
    return AIAgent.objects.filter(schedule_enabled=True, schedule_expression__isnull=False)


def can_see_agent(user: AbstractBaseUser | AnonymousUser, agent: AIAgent) -> bool:
    return getattr(user, "is_staff", False) or agent.owner_id == user.pk


@transaction.atomic
def create_agent(
    *,
    owner: AbstractBaseUser,
    name: str,
    agent_type: str,
    configuration: dict[str, Any],
    actor: Actor = SYSTEM,
) -> AIAgent:
    agent = AIAgent.objects.create(
        owner_id=owner.pk, name=name, agent_type=agent_type, configuration=configuration
    )
    audit.record(agent, actor, audit.Action.AGENT_CREATED, audit.created(agent))
    return agent


@transaction.atomic
def update_agent(agent: AIAgent, *, actor: Actor = SYSTEM, **changes: Any) -> AIAgent:
    allowed = set(audit.AGENT_FIELDS)
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"update_agent cannot change {', '.join(sorted(unknown))}")
    # Read under the lock: the agent handed in may be older than the row.
    current = AIAgent.objects.select_for_update().get(pk=agent.pk)
    before = audit.snapshot(current, audit.AGENT_FIELDS)
    for field, value in changes.items():
        setattr(agent, field, value)
    agent.save(update_fields=[*changes, "updated_at"])
    after = audit.snapshot(agent, audit.AGENT_FIELDS)
    audit.record(agent, actor, audit.Action.AGENT_UPDATED, audit.diff(before, after))
    return agent
