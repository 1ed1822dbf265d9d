from __future__ import annotations

from agents.models import AIAgent


def remove_schedule(agent: AIAgent) -> None:
    pass
