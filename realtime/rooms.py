"""Which room a client command names, and whether the user may join it.

A room is what the client sees (``agent:<id>``, ``monitoring:agents``); behind
each is a channel-layer group from ``realtime.groups``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser

from agents.services import AGENT_NOT_FOUND, visible_agents
from realtime.groups import SCHEDULER_GROUP, agent_group, agent_room, monitoring_agents_group_for
from realtime.protocol import Command, ProtocolError

MONITORING_AGENTS_ROOM = "monitoring:agents"
MONITORING_SCHEDULER_ROOM = "monitoring:scheduler"


@dataclass(frozen=True)
class Room:
    name: str
    group: str


def room_name(command: Command) -> str:
    """The room a command names, without asking whether the user may join it."""
    if command.is_agent:
        return agent_room(_agent_id(command.target))
    return MONITORING_AGENTS_ROOM if command.target == "agents" else MONITORING_SCHEDULER_ROOM


async def open_room(user: AbstractBaseUser, command: Command) -> Room:
    """The room a user asks to join; an agent they may not see is "Agent not found"."""
    if command.is_agent:
        agent_id = _agent_id(command.target)
        if not await user_can_see_agent(user, agent_id):
            raise ProtocolError(AGENT_NOT_FOUND)
        return Room(agent_room(agent_id), agent_group(agent_id))
    if command.target == "agents":
        # Staff watch every agent, everyone else only their own: the emitter
        # sends each event to its owner's group and to the staff group.
        return Room(MONITORING_AGENTS_ROOM, monitoring_agents_group_for(user))
    return Room(MONITORING_SCHEDULER_ROOM, SCHEDULER_GROUP)


@database_sync_to_async
def user_can_see_agent(user: AbstractBaseUser, agent_id: uuid.UUID) -> bool:
    return visible_agents(user).filter(pk=agent_id).exists()


def _agent_id(raw: str) -> uuid.UUID:
    # Only the canonical form names a group the emitter sends to, and anything
    # that is not a UUID cannot be an agent (nor a valid group name).
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ProtocolError(AGENT_NOT_FOUND) from None
