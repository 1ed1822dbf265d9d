"""The slot ledger: one row for every slot at which an agent's schedule was due."""

from __future__ import annotations

import uuid

from django.db import models

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

    def __str__(self) -> str:
        return f"{self.agent_id} {self.scheduled_for:%Y-%m-%d %H:%M} {self.outcome}"
