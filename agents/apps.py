from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agents.api.throttling import parse_rate

        # A bad rate must stop the process at start, not fail every request.
        for name in ("API_RATE_LIMIT", "API_TOKEN_RATE_LIMIT"):
            try:
                parse_rate(getattr(settings, name))
            except ValueError as exc:
                raise ImproperlyConfigured(f"{name}: {exc}") from None
