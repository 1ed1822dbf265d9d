from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Web: API, dashboard, admin"

    def ready(self) -> None:
        from web.api.throttling import parse_rate

        # A bad rate must stop the process at start, not fail every request.
        for name in ("API_RATE_LIMIT", "API_TOKEN_RATE_LIMIT"):
            try:
                parse_rate(getattr(settings, name))
            except ValueError as exc:
                raise ImproperlyConfigured(f"{name}: {exc}") from None
