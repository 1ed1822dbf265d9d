"""Agents in the admin: their fields, schedule, latest runs and actions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from agents import audit, services
from agents.audit import Actor
from agents.models import AIAgent, AuditEntry
from agents.runners import ConfigurationError, get_runner, registered_types
from core.dates import iso
from scheduling import alerts, runs
from scheduling import services as schedules
from scheduling.cron import (
    CronError,
    TimezoneError,
    next_run,
    parse_cron,
    validate_timezone,
)
from scheduling.models import AlertChannel
from scheduling.schedules import schedule_description, schedule_warnings, upcoming_runs
from web.admin.sessions import LatestSessionsInline

SCHEDULE_FIELDS = ("schedule_expression", "schedule_timezone", "priority", "schedule_enabled")
POLICY_FIELDS = ("overlap_policy", "catchup_policy", "catchup_window", "jitter_seconds")
PAUSE_FIELDS = ("pause_note", "paused_until")
AGENT_FIELDS = ("name", "agent_type", "configuration")
# The form's fields by the name set_schedule gives them (and its errors' field).
SERVICE_ARGUMENTS = {
    "schedule_expression": "expression",
    "schedule_timezone": "timezone_name",
    "priority": "priority",
    "schedule_enabled": "enabled",
    **{field: field for field in (*POLICY_FIELDS, *PAUSE_FIELDS)},
}
FORM_FIELDS = {argument: field for field, argument in SERVICE_ARGUMENTS.items()}
LATEST_CHANGES = 20
# The alert rule fields of the form, each the name of its set_rules argument.
ALERT_FIELDS = {f"alert_{field}": field for field in alerts.THRESHOLDS}
ALERT_LABELS = {
    "late_after_seconds": "Late after (seconds)",
    "max_duration_seconds": "Overrun after (seconds)",
    "failures_in_a_row": "Failing after (failed runs in a row)",
    "pause_after_failures": "Pause after (failed runs in a row)",
}


def admin_actor(request: HttpRequest) -> Actor:
    return Actor.user(request.user, AuditEntry.Source.ADMIN)


class _TrialOnly(Exception):
    """Rolls back a trial change of the schedule."""


def schedule_text(agent: AIAgent) -> str:
    text = schedule_description(agent, with_zone=True)
    if text is None:
        return ""
    return text if agent.schedule_enabled else f"{text} (paused)"


def _threshold_field(field: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=ALERT_LABELS[field],
        required=False,
        min_value=1,
        max_value=alerts.THRESHOLDS[field],
        help_text="Empty: off.",
    )


class AgentAdminForm(forms.ModelForm):
    # Declared here (not added in __init__) so the admin's fieldsets may name them.
    alert_late_after_seconds = _threshold_field("late_after_seconds")
    alert_max_duration_seconds = _threshold_field("max_duration_seconds")
    alert_failures_in_a_row = _threshold_field("failures_in_a_row")
    alert_pause_after_failures = _threshold_field("pause_after_failures")
    alert_channels = forms.ModelMultipleChoiceField(
        queryset=AlertChannel.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The owner's channels every opening and resolution is sent to.",
    )

    class Meta:
        model = AIAgent
        fields = ("owner", *AGENT_FIELDS, *SCHEDULE_FIELDS, *POLICY_FIELDS, *PAUSE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._show_alert_rules()
        field = self.fields.get("agent_type")
        if field is not None:
            choices = [(name, name) for name in registered_types()]
            current = self.instance.agent_type if self.instance.pk else None
            if current and current not in registered_types():
                # A type a deployment stopped registering: keep the agent editable.
                choices.append((current, f"{current} (not registered)"))
            field.widget = forms.Select(choices=choices)
        if self.instance._state.adding and "schedule_enabled" in self.fields:
            # A schedule typed into a new agent is meant to run.
            self.fields["schedule_enabled"].initial = True

    def _show_alert_rules(self) -> None:
        rules = alerts.rules_of(self.instance) if self.instance.pk else alerts.Rules()
        for name, field in ALERT_FIELDS.items():
            self.initial[name] = getattr(rules, field)
        channels = self.fields["alert_channels"]
        assert isinstance(channels, forms.ModelMultipleChoiceField)
        # A new agent's owner is not known yet: its channels are checked in clean().
        owner_id = self.instance.owner_id if self.instance.pk else None
        channels.queryset = (
            AlertChannel.objects.filter(owner_id=owner_id)
            if owner_id is not None
            else AlertChannel.objects.select_related("owner")
        )
        self.initial["alert_channels"] = [channel.pk for channel in rules.channels]

    def alert_changes(self) -> dict[str, Any] | None:
        """The set_rules arguments of this form, or None when no rule changed."""
        names = [*ALERT_FIELDS, "alert_channels"]
        if not set(names) & set(self.changed_data):
            return None
        data = self.cleaned_data
        return {
            "channels": list(data.get("alert_channels") or []),
            **{field: data.get(name) for name, field in ALERT_FIELDS.items()},
        }

    def clean_agent_type(self) -> str:
        value = self.cleaned_data["agent_type"]
        unchanged = not self.instance._state.adding and value == self.instance.agent_type
        if not unchanged and value not in registered_types():
            raise forms.ValidationError(
                f"Unknown agent type {value!r}. Valid types: {', '.join(registered_types())}."
            )
        return value

    def clean_configuration(self) -> dict[str, Any]:
        value = self.cleaned_data.get("configuration")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Configuration must be a JSON object.")
        return value

    def clean_schedule_expression(self) -> str | None:
        value = (self.cleaned_data.get("schedule_expression") or "").strip()
        if not value:
            return None
        try:
            return parse_cron(value).source
        except CronError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_schedule_timezone(self) -> str:
        value = self.cleaned_data.get("schedule_timezone") or ""
        try:
            return str(validate_timezone(value.strip()))
        except TimezoneError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self._check_configuration(data)
        owner = data.get("owner") or (self.instance.owner if self.instance.pk else None)
        foreign = [
            c for c in data.get("alert_channels") or [] if c.owner_id != getattr(owner, "pk", None)
        ]
        if foreign:
            self.add_error("alert_channels", "Only channels of the agent's owner can be chosen.")
        self._check_schedule(data)
        if not self.errors and data.get("schedule_expression"):
            self._try_schedule(data)
        return data

    def schedule_changes(self, data: dict[str, Any]) -> dict[str, Any]:
        """The set_schedule arguments of this form: like the API's PATCH, only what
        changed, except for a new schedule, which takes every field."""
        new_schedule = not self.initial.get("schedule_expression")
        return {
            argument: data.get(field)
            for field, argument in SERVICE_ARGUMENTS.items()
            if field in data
            and (new_schedule or field == "schedule_expression" or field in self.changed_data)
        }

    def _try_schedule(self, data: dict[str, Any]) -> None:
        # The service is the one judge of a schedule (as for the API): it is run
        # on the agent as it would be saved, and everything it wrote undone.
        try:
            with transaction.atomic():
                agent = self._trial_agent(data)
                schedules.set_schedule(agent, **self.schedule_changes(data))
                raise _TrialOnly
        except _TrialOnly:
            pass
        except schedules.ScheduleFieldError as exc:
            self.add_error(FORM_FIELDS.get(exc.field), str(exc))
        except CronError as exc:
            self.add_error("schedule_expression", str(exc))
        except TimezoneError as exc:
            self.add_error("schedule_timezone", str(exc))

    def _trial_agent(self, data: dict[str, Any]) -> AIAgent:
        if not self.instance._state.adding:
            return AIAgent.objects.get(pk=self.instance.pk)
        return AIAgent.objects.create(
            owner=data["owner"],
            name=data.get("name") or "",
            agent_type=data.get("agent_type") or "",
            configuration=data.get("configuration") or {},
        )

    def _check_configuration(self, data: dict[str, Any]) -> None:
        agent_type = data.get("agent_type")
        if agent_type not in registered_types() or "configuration" not in data:
            return
        if not ({"agent_type", "configuration"} & set(self.changed_data)) and self.instance.pk:
            return
        try:
            data["configuration"] = get_runner(agent_type).validate_configuration(
                data["configuration"]
            )
        except ConfigurationError as exc:
            self.add_error("configuration", exc.message)

    def _check_schedule(self, data: dict[str, Any]) -> None:
        expression = data.get("schedule_expression")
        zone = data.get("schedule_timezone")
        if expression and zone:
            try:
                next_run(parse_cron(expression), zone, after=timezone.now())
            except CronError as exc:
                self.add_error("schedule_expression", str(exc))
        elif not expression and not self.initial.get("schedule_expression"):
            # An unscheduled agent has no schedule to carry these (the API has the
            # same rule); clearing an existing expression simply removes the schedule.
            for field in ("priority", "schedule_timezone", *POLICY_FIELDS, *PAUSE_FIELDS):
                if field in self.changed_data:
                    self.add_error(field, "This belongs to the schedule: enter a cron expression.")
            if "schedule_enabled" in self.changed_data and data.get("schedule_enabled"):
                self.add_error("schedule_enabled", "Enter a cron expression to enable a schedule.")


@admin.register(AIAgent)
class AIAgentAdmin(admin.ModelAdmin):
    form = AgentAdminForm
    list_display = (
        "name",
        "agent_type",
        "owner",
        "status",
        "schedule",
        "priority",
        "next_run_at",
        "last_run_at",
        "schedule_enabled",
    )
    list_filter = ("status", "agent_type", "schedule_enabled")
    search_fields = ("name",)
    list_select_related = ("owner",)
    ordering = ("-created_at",)
    actions = ("run_now", "pause_schedules", "resume_schedules")
    inlines = (LatestSessionsInline,)
    readonly_fields = (
        "status",
        "schedule",
        "upcoming_runs",
        "dst_warnings",
        "policies",
        "pause",
        "next_run_at",
        "last_run_at",
        "retry_count",
        "last_error",
        "beat_entry",
        "created_at",
        "updated_at",
        "audit_trail",
    )
    fieldsets = (
        (None, {"fields": ("owner", "name", "agent_type", "configuration")}),
        (
            "Schedule",
            {
                "description": "Saved through the same rules as the API: the cron expression "
                "and timezone are checked, and the beat entry follows. Clear the expression "
                "to remove the schedule.",
                "fields": (
                    "schedule_expression",
                    "schedule_timezone",
                    "priority",
                    "schedule_enabled",
                    "schedule",
                    "policies",
                    "pause",
                    "upcoming_runs",
                    "dst_warnings",
                    "beat_entry",
                ),
            },
        ),
        (
            "Policies and pause",
            {
                "description": "What a slot does while the previous run is still going, which "
                "missed slots still run, the jitter, and a pause's note and end. Checked by "
                "the same rules as the API: a note or an end pauses the schedule.",
                "fields": (*POLICY_FIELDS, *PAUSE_FIELDS),
            },
        ),
        (
            "Alerts",
            {
                "description": "When the agent's incidents open and where they go, saved "
                "through the same rules as PUT /api/agents/{id}/alerts. An empty threshold "
                "is off; turning one off resolves its open incident.",
                "fields": (*ALERT_FIELDS, "alert_channels"),
            },
        ),
        (
            "Runs",
            {
                "description": "Kept up to date by the scheduler; read-only here.",
                "fields": (
                    "status",
                    "next_run_at",
                    "last_run_at",
                    "retry_count",
                    "last_error",
                    "created_at",
                    "updated_at",
                ),
            },
        ),
        (
            "Changes",
            {
                "description": f"The latest {LATEST_CHANGES} changes to the agent and its "
                "schedule, newest first; GET /api/agents/{id}/audit has them all.",
                "fields": ("audit_trail",),
            },
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: AIAgent | None = None) -> tuple:
        # An agent stays with the user who created it (the API has no way to move it either).
        if obj is not None:
            return ("owner", *self.readonly_fields)
        return self.readonly_fields

    # --- columns and read-only fields ------------------------------------------------

    @admin.display(description="schedule")
    def schedule(self, agent: AIAgent) -> str:
        return schedule_text(agent) or "-"

    @admin.display(description="next runs")
    def upcoming_runs(self, agent: AIAgent) -> str:
        times = upcoming_runs(agent)
        if not times:
            return "-"
        zone = validate_timezone(agent.schedule_timezone)
        return format_html_join(
            ", ",
            "{}",
            ((moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"),) for moment in times),
        )

    @admin.display(description="DST warnings")
    def dst_warnings(self, agent: AIAgent) -> str:
        warnings = schedule_warnings(agent)
        if not warnings:
            return "-"
        return format_html(
            '<ul class="dst-warnings">{}</ul>',
            format_html_join("", "<li>{}</li>", ((warning,) for warning in warnings)),
        )

    @admin.display(description="policies")
    def policies(self, agent: AIAgent) -> str:
        if not agent.schedule_expression:
            return "-"
        window = (
            "the server's default window"
            if agent.catchup_window is None
            else f"a window of {agent.catchup_window} s"
        )
        return (
            f"Overlap {agent.overlap_policy}, catch-up {agent.catchup_policy} within {window}, "
            f"jitter {agent.jitter_seconds} s"
        )

    @admin.display(description="pause")
    def pause(self, agent: AIAgent) -> str:
        if not agent.schedule_expression or agent.schedule_enabled:
            return "-"
        parts = [agent.pause_note or "Paused, no note"]
        if agent.paused_until is not None:
            until = agent.paused_until.astimezone(validate_timezone(agent.schedule_timezone))
            parts.append(f"until {until:%a %Y-%m-%d %H:%M %Z}")
        return " · ".join(parts)

    @admin.display(description="beat entry")
    def beat_entry(self, agent: AIAgent) -> str:
        if agent.periodic_task_id is None:
            return "-"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[agent.periodic_task_id])
        return format_html('<a href="{}">{}</a>', url, schedules.periodic_task_name(agent))

    @admin.display(description="changes")
    def audit_trail(self, agent: AIAgent) -> str:
        entries = list(audit.entries_of(agent)[:LATEST_CHANGES]) if agent.pk else []
        if not entries:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    iso(entry.at),
                    entry.actor_name,
                    entry.get_source_display(),
                    entry.action,
                    format_html_join(
                        "",
                        "<div><code>{}</code>: {} → {}</div>",
                        (
                            (field, audit.as_text(old), audit.as_text(new))
                            for field, (old, new) in entry.changes.items()
                        ),
                    ),
                )
                for entry in entries
            ),
        )
        return format_html(
            '<table class="audit-trail"><thead><tr><th scope="col">when</th>'
            '<th scope="col">who</th><th scope="col">through</th><th scope="col">what</th>'
            '<th scope="col">changes</th></tr></thead><tbody>{}</tbody></table>',
            rows,
        )

    # --- saving and deleting ---------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: AIAgent, form: AgentAdminForm, change: bool):
        data = form.cleaned_data
        if change:
            changed = {field: data[field] for field in AGENT_FIELDS if field in form.changed_data}
            if changed:
                services.update_agent(obj, actor=admin_actor(request), **changed)
        else:
            created = services.create_agent(
                owner=data["owner"],
                name=data["name"],
                agent_type=data["agent_type"],
                configuration=data.get("configuration") or {},
                actor=admin_actor(request),
            )
            # The admin goes on with `obj` (log entry, redirect): make it the saved row.
            obj.pk = created.pk
            obj._state.adding = False
        if set(SERVICE_ARGUMENTS) & set(form.changed_data):
            self._save_schedule(request, obj, form)
        rules = form.alert_changes()
        if rules is not None:
            alerts.set_rules(AIAgent.objects.get(pk=obj.pk), actor=admin_actor(request), **rules)
        obj.refresh_from_db()

    def _save_schedule(self, request: HttpRequest, obj: AIAgent, form: AgentAdminForm) -> None:
        data = form.cleaned_data
        agent = AIAgent.objects.get(pk=obj.pk)
        if not data.get("schedule_expression"):
            if agent.schedule_expression or agent.periodic_task_id:
                schedules.remove_schedule(agent, actor=admin_actor(request))
                self.message_user(request, f"The schedule of “{agent}” was removed.")
            return
        # The form's trial of these same changes passed.
        schedules.set_schedule(agent, actor=admin_actor(request), **form.schedule_changes(data))

    def delete_model(self, request: HttpRequest, obj: AIAgent) -> None:
        schedules.delete_agent(obj, actor=admin_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AIAgent]) -> None:
        for agent in queryset.select_related("periodic_task"):
            schedules.delete_agent(agent, actor=admin_actor(request))

    # --- actions ---------------------------------------------------------------------

    @admin.action(description="Run selected agents now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[AIAgent]) -> None:
        count = 0
        for agent in queryset:
            runs.run_now(agent)
            count += 1
        self.message_user(request, f"Queued a run for {_agents(count)}.", messages.SUCCESS)

    @admin.action(description="Pause schedules of selected agents", permissions=["change"])
    def pause_schedules(self, request: HttpRequest, queryset: QuerySet[AIAgent]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    @admin.action(description="Resume schedules of selected agents", permissions=["change"])
    def resume_schedules(self, request: HttpRequest, queryset: QuerySet[AIAgent]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    def _set_enabled(
        self, request: HttpRequest, queryset: QuerySet[AIAgent], *, enabled: bool
    ) -> None:
        changed = skipped = 0
        for agent in queryset:
            if not agent.schedule_expression:
                skipped += 1
                continue
            schedules.set_schedule(agent, enabled=enabled, actor=admin_actor(request))
            changed += 1
        verb = "Resumed" if enabled else "Paused"
        text = f"{verb} the schedule of {_agents(changed)}."
        if skipped:
            text += f" Skipped {_agents(skipped)} without a schedule."
        self.message_user(request, text, messages.SUCCESS if changed else messages.WARNING)


def _agents(count: int) -> str:
    return f"{count} agent" if count == 1 else f"{count} agents"
