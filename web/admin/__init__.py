"""The Django admin for agents and their runs (``agents.py``, ``sessions.py``).

It only parses forms and calls the same services as the API: a schedule is
saved by ``scheduling.services.set_schedule``, a deletion by
``scheduling.services.delete_agent`` (so beat rows go with the agent), a run by
``scheduling.runs``. A bad cron expression is therefore a form error naming
the problem, never a server error. An agent's alert rules are saved by
``scheduling.alerts.set_rules``; alert channels (``alerts.py``) are checked by
the API's own target rules, and incidents are read-only.
"""

from __future__ import annotations

from web.admin import agents, alerts, sessions

__all__ = ["agents", "alerts", "sessions"]
