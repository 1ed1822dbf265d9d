"""The slot ledger (one row for every slot at which an agent's schedule was due),
and alerts: channels, rules, incidents and the notifications they owe."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession


class ScheduleSlot(models.Model):
    """What became of one due slot of an agent's schedule, and why.

    Written in the same transaction as the decision it records: a queued slot
    and its session are inserted together, and the unique (agent, slot) key
    is what lets only one of two beats (or a beat and a re-sent message)
    decide a slot.
    """

    class Outcome(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RAN = "RAN", "Ran"
        SKIPPED = "SKIPPED", "Skipped"
        CANCELLED = "CANCELLED", "Cancelled"
        MISSED = "MISSED", "Missed"
        BACKFILL = "BACKFILL", "Backfill"

    # Made by the writer, so a bulk insert that skips conflicts can tell its own rows.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(AIAgent, on_delete=models.CASCADE, related_name="slots")
    scheduled_for = models.DateTimeField(help_text="The slot: when the schedule was due.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    session = models.ForeignKey(
        ExecutionSession,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="slots",
        help_text="The run this slot queued, if it queued one.",
    )
    reason = models.CharField(max_length=500, help_text="Why the slot ended this way.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-scheduled_for"]
        constraints = [
            # Also the index of the ledger's reads, newest first, per agent.
            models.UniqueConstraint(fields=["agent", "scheduled_for"], name="slot_unique"),
        ]
        indexes = [
            # The LATE alert's sweep reads the slots still waiting for their run.
            models.Index(
                fields=["scheduled_for"],
                condition=models.Q(outcome="QUEUED"),
                name="slot_waiting",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.scheduled_for:%Y-%m-%d %H:%M} {self.outcome}"


class AlertChannel(models.Model):
    """Somewhere a user's alerts are sent: a webhook, a Slack incoming webhook, an address."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_channels"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.CharField(
        max_length=2048, help_text="The URL (webhook, Slack) or the email address."
    )
    secret = models.CharField(
        max_length=64,
        editable=False,
        help_text="Signs webhook bodies (X-NeonHub-Signature); shown once, at creation.",
    )
    last_error = models.TextField(
        blank=True,
        default="",
        help_text="Why the last notification failed; empty once one is sent.",
    )
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When a notification last reached it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["owner", "name"], name="channel_by_owner")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class AlertRule(models.Model):
    """When an agent's alerts open, and where they go. Each threshold empty = off."""

    agent = models.OneToOneField(
        AIAgent, on_delete=models.CASCADE, primary_key=True, related_name="alert_rule"
    )
    late_after_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="LATE: a slot's run has not started this long after the slot.",
    )
    max_duration_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="OVERRUN: a run is still running this long after it started.",
    )
    failures_in_a_row = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="FAILING: this many runs in a row failed (retries exhausted).",
    )
    pause_after_failures = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="PAUSED: after this many failed runs in a row the schedule is paused.",
    )
    channels = models.ManyToManyField(AlertChannel, blank=True, related_name="rules")
    # Counted as runs end rather than read back from the history, so a run's
    # end costs one row's update however long the agent's history is.
    failed_runs_in_a_row = models.PositiveIntegerField(
        default=0, help_text="Runs that failed since the agent's last success."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Alert rules of {self.agent_id}"


class Incident(models.Model):
    """One alert, from the moment its condition held to the moment it stopped."""

    class Kind(models.TextChoices):
        LATE = "LATE", "Late"
        OVERRUN = "OVERRUN", "Overrun"
        FAILING = "FAILING", "Failing"
        PAUSED = "PAUSED", "Paused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(AIAgent, on_delete=models.CASCADE, related_name="incidents")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    message = models.CharField(max_length=500)
    session = models.ForeignKey(
        ExecutionSession,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The late or overrunning run, or the failed run that opened it.",
    )
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["agent", "-opened_at"], name="incident_history")]
        constraints = [
            # However many workers and beats see the condition at once, one opens it.
            models.UniqueConstraint(
                fields=["agent", "kind"],
                condition=models.Q(resolved_at__isnull=True),
                name="incident_one_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.agent_id} {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Notification(models.Model):
    """One message owed to one channel: an incident's opening or its resolution."""

    class Event(models.TextChoices):
        OPENED = "opened", "Opened"
        RESOLVED = "resolved", "Resolved"

    class State(models.TextChoices):
        PENDING = "PENDING", "Pending"
        SENT = "SENT", "Sent"
        FAILED = "FAILED", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(
        AlertChannel, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=16, choices=Event.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        default=timezone.now,
        help_text="Not tried before this: the backoff after a failure, or a sender's claim.",
    )
    last_error = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="PENDING"),
                name="notification_due",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "channel", "event"], name="notification_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.incident_id} -> {self.channel_id} ({self.state})"
