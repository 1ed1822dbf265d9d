"""The runner registry: ``agentType`` names map to runner classes in settings."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import ConfigurationError, RunCancelled, RunContext, RunFailed, Runner

__all__ = [
    "ConfigurationError",
    "RunCancelled",
    "RunContext",
    "RunFailed",
    "Runner",
    "UnknownAgentType",
    "get_runner",
    "registered_types",
]


class UnknownAgentType(LookupError):
    pass


@cache
def _load(dotted_path: str) -> Runner:
    return import_string(dotted_path)()


def registered_types() -> list[str]:
    return sorted(settings.AGENT_RUNNERS)


def get_runner(agent_type: str) -> Runner:
    try:
        dotted_path = settings.AGENT_RUNNERS[agent_type]
    except (KeyError, TypeError):
        raise UnknownAgentType(agent_type) from None
    return _load(dotted_path)
