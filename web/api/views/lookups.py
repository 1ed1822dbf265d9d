from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.exceptions import NotAuthenticated, NotFound
from rest_framework.request import Request

from agents.audit import Actor
from agents.models import AIAgent, AuditEntry, ExecutionSession
from agents.services import AGENT_NOT_FOUND, SESSION_NOT_FOUND, visible_agents, visible_sessions


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def signed_in_user(request: Request) -> AbstractBaseUser:
    """The user behind a request that the view's permissions let in."""
    user = request.user
    if not isinstance(user, AbstractBaseUser):
        raise NotAuthenticated()
    return user


def api_actor(request: Request) -> Actor:
    """Who a change made through this request is recorded as."""
    return Actor.user(request.user, AuditEntry.Source.API)


def get_visible_agent(request: Request, agent_id: str, *, for_update: bool = False) -> AIAgent:
    """The agent, if this user may see it. Foreign and unknown ids look the same."""
    pk = _as_uuid(agent_id)
    agents = visible_agents(request.user)
    if for_update:
        agents = agents.select_for_update()
    agent = agents.filter(pk=pk).first() if pk else None
    if agent is None:
        raise NotFound(AGENT_NOT_FOUND)
    return agent


def get_visible_session(request: Request, session_id: str) -> ExecutionSession:
    pk = _as_uuid(session_id)
    session = visible_sessions(request.user).filter(pk=pk).first() if pk else None
    if session is None:
        raise NotFound(SESSION_NOT_FOUND)
    return session
