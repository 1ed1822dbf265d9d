"""The Django admin for agents and their runs (``agents.py``, ``sessions.py``).

It only parses forms and calls the same services as the API: a schedule is
saved by ``scheduling.services.set_schedule``, a deletion by
``scheduling.services.delete_agent`` (so beat rows go with the agent), a run by
``scheduling.runs``. A bad cron expression is therefore a form error naming
the problem, never a server error.
"""

from __future__ import annotations

from web.admin import agents, sessions

__all__ = ["agents", "sessions"]
