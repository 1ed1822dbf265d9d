"""django-celery-beat's admin as it ships, plus a link from each entry to its agent.

Edits saved through its forms reach the agent through ``scheduling.signals``.
Its enable / disable / toggle actions write with ``queryset.update()``, which
sends no signals, so they are wrapped here to mirror the agents' entries too.
Every view of the entries' and crontabs' admins runs as its user, so the
audit trail records the mirrored edits as theirs.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat.admin import CrontabScheduleAdmin as BeatCrontabScheduleAdmin
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from agents.audit import acting_in_beat_admin
from agents.models import AIAgent
from scheduling import services

admin.site.unregister(PeriodicTask)
admin.site.unregister(CrontabSchedule)


class ActingAsUser(admin.ModelAdmin):
    """Runs the views that save or delete (actions included) as the request's user."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with acting_in_beat_admin(request.user):
            return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with acting_in_beat_admin(request.user):
            return super().delete_view(request, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with acting_in_beat_admin(request.user):
            return super().changelist_view(request, *args, **kwargs)


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(ActingAsUser, BeatCrontabScheduleAdmin):
    pass


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(ActingAsUser, BeatPeriodicTaskAdmin):
    list_display = (*BeatPeriodicTaskAdmin.list_display, "agent_link")
    readonly_fields = (*BeatPeriodicTaskAdmin.readonly_fields, "agent_link")
    fieldsets = (
        (
            BeatPeriodicTaskAdmin.fieldsets[0][0],
            {
                **BeatPeriodicTaskAdmin.fieldsets[0][1],
                "fields": (*BeatPeriodicTaskAdmin.fieldsets[0][1]["fields"], "agent_link"),
            },
        ),
        *BeatPeriodicTaskAdmin.fieldsets[1:],
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[PeriodicTask]:
        return super().get_queryset(request).select_related("agent")

    @admin.display(description="agent")
    def agent_link(self, task: PeriodicTask) -> str:
        agent: AIAgent | None = getattr(task, "agent", None) if task.pk else None
        if agent is None:
            return "-"
        url = reverse("admin:agents_aiagent_change", args=[agent.pk])
        return format_html('<a href="{}">{}</a>', url, agent.name)

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        super().enable_tasks(request, queryset)
        _mirror_agents(ids)

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        super().disable_tasks(request, queryset)
        _mirror_agents(ids)

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        super().toggle_tasks(request, queryset)
        _mirror_agents(ids)


def _mirror_agents(task_ids: list[int]) -> None:
    services.mirror_beat_edits(
        PeriodicTask.objects.filter(
            pk__in=task_ids, name__startswith=services.PERIODIC_TASK_PREFIX
        ).select_related("crontab")
    )
