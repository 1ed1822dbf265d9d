"""Runs in the admin: read-only, as the scheduler alone writes them; cancel is the one action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from agents.models import ExecutionSession
from core.dates import iso
from scheduling import runs

LATEST_SESSIONS = 10
ERROR_PREVIEW = 80


class LatestSessionsFormSet(BaseInlineFormSet):
    def get_queryset(self) -> QuerySet[ExecutionSession]:
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset().order_by("-created_at", "-id")[:LATEST_SESSIONS]
        return self._latest


class LatestSessionsInline(admin.TabularInline):
    model = ExecutionSession
    formset = LatestSessionsFormSet
    verbose_name_plural = f"Latest {LATEST_SESSIONS} sessions"
    fields = (
        "status",
        "trigger",
        "attempt",
        "scheduled_for",
        "started_at",
        "duration",
        "progress",
        "error",
    )
    readonly_fields = fields
    show_change_link = True
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration")
    def duration(self, session: ExecutionSession) -> str:
        return format_duration(session.duration_ms)

    @admin.display(description="error")
    def error(self, session: ExecutionSession) -> str:
        return Truncator(session.error_message).chars(ERROR_PREVIEW)


def format_duration(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


@admin.register(ExecutionSession)
class ExecutionSessionAdmin(admin.ModelAdmin):
    """The run history: written by the scheduler only, so it is read-only here."""

    list_display = (
        "agent",
        "status",
        "trigger",
        "attempt",
        "scheduled_for",
        "started_at",
        "duration",
        "progress_percent",
        "error",
    )
    list_filter = ("status", "trigger", ("agent__agent_type", admin.AllValuesFieldListFilter))
    search_fields = ("agent__name",)
    list_select_related = ("agent",)
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    actions = ("cancel_sessions",)
    fields = (
        "agent",
        "status",
        "trigger",
        "attempt",
        "priority",
        "scheduled_for",
        "not_before",
        "started_at",
        "completed_at",
        "success",
        "duration",
        "progress_percent",
        "input",
        "output_summary",
        "error_message",
        "log",
        "worker",
        "lease_expires_at",
        "created_at",
    )
    readonly_fields = fields

    class Media:
        js = ("admin/session_log.js",)
        css = {"all": ("admin/session_log.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, session: ExecutionSession) -> str:
        return format_duration(session.duration_ms)

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, session: ExecutionSession) -> str:
        return f"{session.progress}%"

    @admin.display(description="log")
    def log(self, session: ExecutionSession) -> str:
        """The run's log; while it runs, admin/session_log.js adds lines as they come."""
        lines = list(session.log_lines.order_by("seq"))
        return format_html(
            '<ol class="session-log" data-url="{}" data-after="{}" data-live="{}">{}</ol>{}',
            reverse("session-logs", kwargs={"session_id": session.pk}),
            lines[-1].seq if lines else 0,
            "true" if not session.is_finished else "false",
            format_html_join(
                "",
                '<li data-level="{}"><time datetime="{}">{}</time> <b>{}</b> {}</li>',
                (
                    (line.level.lower(), iso(line.at), iso(line.at), line.level, line.message)
                    for line in lines
                ),
            ),
            format_html(
                '<p class="session-log-truncated">{}</p>',
                "The run wrote more than a session keeps; the later lines were dropped.",
            )
            if session.log_truncated
            else "",
        )

    @admin.display(description="error")
    def error(self, session: ExecutionSession) -> str:
        return Truncator(session.error_message).chars(ERROR_PREVIEW)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        # Sessions are read-only as records, but stopping a run is an operator's job.
        return request.user.has_perm("agents.change_executionsession")

    @admin.action(description="Cancel selected sessions", permissions=["cancel"])
    def cancel_sessions(self, request: HttpRequest, queryset: QuerySet[ExecutionSession]) -> None:
        selected = list(queryset.select_related("agent"))
        cancelled = sum(1 for session in selected if runs.cancel_session(session))
        finished = len(selected) - cancelled
        text = f"Cancelled {cancelled} session{'s' if cancelled != 1 else ''}."
        if finished:
            text += f" {finished} had already finished."
        self.message_user(request, text, messages.SUCCESS if cancelled else messages.WARNING)
