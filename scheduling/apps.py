from __future__ import annotations

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduling"

    def ready(self) -> None:
        # Mirrors edits made in django-celery-beat's admin back onto agents.
        from scheduling import signals  # noqa: F401
