"""Alert channels and incidents in the admin; an agent's rules are on its own page."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scheduling import alerts
from scheduling.models import AlertChannel, Incident


class AlertChannelForm(forms.ModelForm):
    class Meta:
        model = AlertChannel
        fields = ("owner", "name", "kind", "target")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, target = data.get("kind"), data.get("target")
        if kind and target:
            # The API's own rules, so a channel refused there is refused here.
            try:
                data["target"] = alerts.check_target(kind, target.strip())
            except ValueError as exc:
                self.add_error("target", str(exc))
        return data


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = ("name", "owner", "kind", "target", "last_error_short", "last_sent_at")
    list_filter = ("kind",)
    search_fields = ("name", "target")
    list_select_related = ("owner",)
    readonly_fields = ("last_error", "last_error_at", "last_sent_at", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: AlertChannel | None = None) -> tuple:
        # A channel stays with its owner, as in the API.
        if obj is not None:
            return ("owner", *self.readonly_fields)
        return self.readonly_fields

    @admin.display(description="last error")
    def last_error_short(self, channel: AlertChannel) -> str:
        if not channel.last_error:
            return "-"
        line = channel.last_error.splitlines()[0]
        return line if len(line) <= 80 else line[:79] + "…"

    def save_model(
        self, request: HttpRequest, obj: AlertChannel, form: forms.ModelForm, change: bool
    ) -> None:
        if not change:
            obj.secret = secrets.token_hex(32)
        super().save_model(request, obj, form, change)
        if not change and obj.kind == AlertChannel.Kind.WEBHOOK:
            # The one time it is shown, as the API answers it once at creation.
            self.message_user(
                request,
                f"The webhook secret of “{obj.name}” (signs X-NeonHub-Signature) is "
                f"{obj.secret}. Keep it now: it is not shown again.",
                messages.WARNING,
            )


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Open"), ("no", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Incident]) -> QuerySet[Incident]:
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents are opened and resolved by the scheduler only: read-only here."""

    list_display = ("kind", "agent", "message", "opened_at", "resolved_at", "resolution")
    list_filter = ("kind", OpenFilter)
    search_fields = ("agent__name", "message")
    list_select_related = ("agent",)
    date_hierarchy = "opened_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
