"""The audit trail: who changed an agent or its schedule, from where, and what changed.

The services that change agents take an ``Actor`` and call ``record`` in the
transaction of the change, so an entry commits with its change or not at
all. The surfaces say who acted (the API and the admin their signed-in user,
the beat admin its user through ``acting_in_beat_admin``); callers that do
not say are the system.

``changes`` holds ``{field: [old, new]}`` in the API's camelCase names and
the API's values (ISO times, priority names, the configuration as stored),
so every surface shows an entry as the API would.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models

from agents.models import AIAgent, AuditEntry, Priority
from core.dates import iso

SYSTEM_NAME = "system"


class Action:
    """The vocabulary of ``AuditEntry.action``."""

    AGENT_CREATED = "agent.created"
    AGENT_UPDATED = "agent.updated"
    AGENT_DELETED = "agent.deleted"
    SCHEDULE_SET = "schedule.set"  # a schedule where there was none
    SCHEDULE_CHANGED = "schedule.changed"
    SCHEDULE_PAUSED = "schedule.paused"
    SCHEDULE_RESUMED = "schedule.resumed"
    SCHEDULE_SNOOZE_ENDED = "schedule.snooze_ended"
    SCHEDULE_REMOVED = "schedule.removed"
    BACKFILL = "backfill"
    ALERTS_CHANGED = "alerts.changed"


@dataclass(frozen=True)
class Actor:
    """Who made a change, and through which surface."""

    source: str
    user_id: int | None = None
    name: str = SYSTEM_NAME

    @classmethod
    def user(cls, user: AbstractBaseUser | AnonymousUser, source: str) -> Actor:
        if not getattr(user, "is_authenticated", False):
            return cls(source=source)
        return cls(source=source, user_id=user.pk, name=user.get_username())


SYSTEM = Actor(source=AuditEntry.Source.SYSTEM)

# The user of the beat admin's request, for the signal handlers that mirror
# its edits: a signal cannot be handed arguments. Set and reset around each
# admin view, so it never outlives the request that set it.
_beat_admin_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
    "beat_admin_actor", default=None
)


@contextmanager
def acting_in_beat_admin(user: AbstractBaseUser | AnonymousUser) -> Iterator[None]:
    token = _beat_admin_actor.set(Actor.user(user, AuditEntry.Source.BEAT_ADMIN))
    try:
        yield
    finally:
        _beat_admin_actor.reset(token)


def beat_admin_actor() -> Actor:
    """The beat admin's user if one is acting, else the system, as a beat-admin edit."""
    return _beat_admin_actor.get() or Actor(source=AuditEntry.Source.BEAT_ADMIN)


# --- what an agent looks like in an entry -------------------------------------------

AGENT_FIELDS = {"name": "name", "agent_type": "agentType", "configuration": "configuration"}
SCHEDULE_FIELDS = {
    "schedule_expression": "scheduleExpression",
    "schedule_enabled": "scheduleEnabled",
    "schedule_timezone": "scheduleTimezone",
    "priority": "priority",
    "overlap_policy": "overlapPolicy",
    "catchup_policy": "catchupPolicy",
    "catchup_window": "catchupWindow",
    "jitter_seconds": "jitterSeconds",
    "pause_note": "pauseNote",
    "paused_until": "pausedUntil",
}


def shown(field: str, value: Any) -> Any:
    """A field's value as the API shows it."""
    if isinstance(value, datetime):
        return iso(value)
    if field == "priority" and value is not None:
        return Priority(value).name
    return value


def snapshot(agent: AIAgent, fields: dict[str, str]) -> dict[str, Any]:
    return {name: shown(field, getattr(agent, field)) for field, name in fields.items()}


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {
        name: [before.get(name), value]
        for name, value in after.items()
        if before.get(name) != value
    }


def record(
    agent: AIAgent, actor: Actor, action: str, changes: dict[str, list[Any]]
) -> AuditEntry | None:
    """Write one entry, in the caller's transaction; a change of nothing writes none."""
    if not changes:
        return None
    return AuditEntry.objects.create(
        agent_id=agent.pk,
        actor_id=actor.user_id,
        actor_name=actor.name,
        source=actor.source,
        action=action,
        changes=changes,
    )


def schedule_action(before: dict[str, Any], after: dict[str, Any]) -> str:
    if not before.get("scheduleExpression"):
        return Action.SCHEDULE_SET
    if before.get("scheduleEnabled") and not after.get("scheduleEnabled"):
        return Action.SCHEDULE_PAUSED
    if not before.get("scheduleEnabled") and after.get("scheduleEnabled"):
        return Action.SCHEDULE_RESUMED
    return Action.SCHEDULE_CHANGED


def as_text(value: Any) -> str:
    """A value of ``changes`` in one line, for pages that show entries."""
    if value is None:
        return "none"
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def entries_of(agent: AIAgent) -> models.QuerySet[AuditEntry]:
    """Newest first, as the (agent, -at, -id) index reads them."""
    return AuditEntry.objects.filter(agent_id=agent.pk).order_by("-at", "-id")


def created(agent: AIAgent) -> dict[str, list[Any]]:
    return diff(dict.fromkeys(AGENT_FIELDS.values()), snapshot(agent, AGENT_FIELDS))


def deleted(agent: AIAgent) -> dict[str, list[Any]]:
    return diff(snapshot(agent, AGENT_FIELDS), dict.fromkeys(AGENT_FIELDS.values()))
