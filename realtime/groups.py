"""Room names as clients see them, and the channel-layer groups behind them.

Channel-layer group names allow only ASCII letters, digits, ``-``, ``_`` and
``.``, so the contract's ``agent:<id>`` rooms map to ``agent.<id>`` groups.
"""

from __future__ import annotations

import hashlib

SCHEDULER_GROUP = "monitoring.scheduler"
STAFF_AGENTS_GROUP = "monitoring.agents.staff"


def agent_room(agent_id: object) -> str:
    return f"agent:{agent_id}"


def agent_group(agent_id: object) -> str:
    return f"agent.{agent_id}"


def owner_agents_group(owner_id: object) -> str:
    """Every event of the agents one user manages (their monitoring:agents room)."""
    return f"monitoring.agents.user.{owner_id}"


def monitoring_agents_group_for(user) -> str:
    return STAFF_AGENTS_GROUP if user.is_staff else owner_agents_group(user.pk)


def user_group(user_id: object) -> str:
    """Every socket of one user, told when the user loses the right to them."""
    return f"user.{user_id}"


def session_group(session_key: str) -> str:
    """The sockets signed in with one Django session, told when it signs out.

    Hashed: group names pass through Redis and logs, a session key is a
    credential."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]
