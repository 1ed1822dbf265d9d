from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Priority(models.IntegerChoices):
    LOW = 1, "Low"
    NORMAL = 2, "Normal"
    HIGH = 3, "High"
    CRITICAL = 4, "Critical"


class OverlapPolicy(models.TextChoices):
    """What a scheduled slot does when the agent's previous run is still queued or running."""

    SKIP = "SKIP", "Skip the new slot"
    BUFFER_ONE = "BUFFER_ONE", "Keep at most one slot waiting"
    BUFFER_ALL = "BUFFER_ALL", "Queue every slot"
    CANCEL_OTHER = "CANCEL_OTHER", "Cancel the previous run"


class CatchupPolicy(models.TextChoices):
    """Which of the slots missed while no beat ran are still run."""

    LATEST = "LATEST", "Only the most recent"
    ALL = "ALL", "All of them, oldest first (at most 100)"
    NONE = "NONE", "None"


class AIAgent(models.Model):
    class Status(models.TextChoices):
        IDLE = "IDLE", "Idle"
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running"
        ERROR = "ERROR", "Error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="agents",
        help_text="The user who manages this agent; only they (and staff) can see it.",
    )
    name = models.CharField(max_length=200, help_text="A name people recognise the agent by.")
    agent_type = models.CharField(
        max_length=64,
        help_text="The registered runner that executes this agent (demo, webhook, python, ...).",
    )
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.IDLE,
        help_text="Follows the agent's runs; set by the scheduler, not by hand.",
    )
    configuration = models.JSONField(
        default=dict,
        blank=True,
        help_text="Runner settings, stored and returned exactly as sent.",
    )
    schedule_expression = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        help_text="Five-field cron expression (minute hour day-of-month month day-of-week) "
        "or a macro such as @daily. Empty: not scheduled.",
    )
    schedule_enabled = models.BooleanField(
        default=False, help_text="Untick to pause the schedule without losing it."
    )
    schedule_timezone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="IANA timezone the cron expression is read in, e.g. Europe/Berlin.",
    )
    priority = models.PositiveSmallIntegerField(
        choices=Priority.choices,
        default=Priority.NORMAL,
        help_text="When runs must wait for a free slot, higher priorities start first.",
    )
    overlap_policy = models.CharField(
        max_length=16,
        choices=OverlapPolicy.choices,
        default=OverlapPolicy.BUFFER_ONE,
        help_text="What a slot does while the previous run is still queued or running.",
    )
    catchup_policy = models.CharField(
        max_length=16,
        choices=CatchupPolicy.choices,
        default=CatchupPolicy.LATEST,
        help_text="Which slots missed while no beat ran still run.",
    )
    catchup_window = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds a missed slot may be late and still run; empty: the "
        "SCHEDULER_CATCHUP_SECONDS setting.",
    )
    jitter_seconds = models.PositiveIntegerField(
        default=0,
        help_text="Each slot's run waits a delay in [0, jitter) seconds, fixed per agent and slot.",
    )
    pause_note = models.CharField(
        max_length=500, blank=True, default="", help_text="Why the schedule is paused."
    )
    paused_at = models.DateTimeField(
        null=True, blank=True, help_text="When the schedule was last paused; empty while enabled."
    )
    paused_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A pause that ends by itself: beat resumes the schedule at this time.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agent",
        help_text="The beat entry that fires this agent's schedule.",
    )
    next_run_at = models.DateTimeField(
        null=True, blank=True, help_text="When the schedule fires next; empty while paused."
    )
    last_run_at = models.DateTimeField(
        null=True, blank=True, help_text="When the agent last started a run."
    )
    retry_count = models.PositiveIntegerField(
        default=0, help_text="Failed attempts since the last success."
    )
    last_error = models.TextField(
        blank=True, default="", help_text="The error of the last failed attempt, if any."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI agent"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="agent_owner_created"),
            models.Index(fields=["schedule_enabled"], name="agent_schedule_enabled"),
            models.Index(
                fields=["paused_until"],
                condition=Q(paused_until__isnull=False),
                name="agent_snoozed",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_scheduled(self) -> bool:
        return bool(self.schedule_expression)


class ExecutionSession(models.Model):
    """One attempt to run an agent."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"
        CANCELLED = "CANCELLED", "Cancelled"

    class Trigger(models.TextChoices):
        SCHEDULE = "SCHEDULE", "Schedule"
        MANUAL = "MANUAL", "Manual"
        RETRY = "RETRY", "Retry"
        BACKFILL = "BACKFILL", "Backfill"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(AIAgent, on_delete=models.CASCADE, related_name="sessions")
    # The agent's owner, copied so admission can take waiting runs in turn
    # across users from one index, without joining the agents. Sessions go
    # with their agent, and the agent with its owner: no cascade of its own.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        db_index=False,
        help_text="The agent's owner when the run was queued.",
    )
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.QUEUED,
        help_text="Queued until a slot is free, then running, then finished one way or another.",
    )
    trigger = models.CharField(
        max_length=16,
        choices=Trigger.choices,
        help_text="What asked for the run: its schedule, a person, or a retry of a failure.",
    )
    attempt = models.PositiveIntegerField(
        default=1, help_text="1 for the first try of a run; retries count up from there."
    )
    rerun = models.PositiveIntegerField(
        default=0,
        help_text="0 for a slot's first run; a backfill with rerun counts up, so a slot "
        "can run again without clashing with its earlier runs.",
    )
    priority = models.PositiveSmallIntegerField(
        choices=Priority.choices,
        default=Priority.NORMAL,
        help_text="The agent's priority when the run was queued; orders the waiting runs.",
    )
    scheduled_for = models.DateTimeField(
        help_text="The cron slot this run belongs to, or when a manual run was asked for."
    )
    not_before = models.DateTimeField(
        help_text="A retry waits for its backoff: it is not started before this time."
    )
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker began the run."
    )
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When the run ended.")
    success = models.BooleanField(
        null=True, blank=True, help_text="Empty while the run is unfinished."
    )
    duration_ms = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="How long the run took, in milliseconds."
    )
    output_summary = models.TextField(
        blank=True, default="", help_text="What the agent reported when it finished."
    )
    error_message = models.TextField(blank=True, default="", help_text="Why the run failed.")
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done, 0-100.")
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While running, the worker keeps renewing this; past it the run is "
        "taken as lost and its slot is reclaimed.",
    )
    worker = models.CharField(
        max_length=200, blank=True, default="", help_text="The Celery worker that ran it."
    )
    log_truncated = models.BooleanField(
        default=False,
        help_text="The run wrote more log than a session keeps; the later lines were dropped.",
    )
    input = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the run was asked to work on (a JSON object given to the runner); "
        "a retry gets its run's.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["agent", "-created_at", "-id"], name="session_history"),
            models.Index(
                fields=["-priority", "created_at"],
                condition=Q(status="QUEUED"),
                name="session_waiting",
            ),
            models.Index(
                fields=["-priority", "owner", "created_at"],
                condition=Q(status="QUEUED"),
                name="session_waiting_by_owner",
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="RUNNING"),
                name="session_running_lease",
            ),
            # A schedule's overlap policy asks which of many agents still
            # have a run queued or running.
            models.Index(
                fields=["agent"],
                condition=Q(status__in=["QUEUED", "RUNNING"]),
                name="session_active",
            ),
            # Run statistics (agents.run_stats) read a window of an agent's
            # finished runs from this index alone, never touching the rows.
            models.Index(
                fields=["agent", "completed_at", "status", "duration_ms"],
                condition=Q(status__in=["SUCCEEDED", "FAILED", "CANCELLED"]),
                name="session_finished",
            ),
            # A cancelled run whose runner has not stopped yet still holds its slot.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="CANCELLED", lease_expires_at__isnull=False),
                name="session_stopping",
            ),
        ]
        constraints = [
            # A cron slot (and each of its retries) is recorded once, however
            # many beat processes fire it or however often a message is resent.
            models.UniqueConstraint(
                fields=["agent", "scheduled_for", "rerun", "attempt"],
                condition=~Q(trigger="MANUAL"),
                name="session_unique_slot_run_attempt",
            ),
            # The database itself guarantees one agent never runs twice at once.
            models.UniqueConstraint(
                fields=["agent"],
                condition=Q(status="RUNNING"),
                name="session_one_running_per_agent",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100),
                name="session_progress_percent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} attempt {self.attempt} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class SessionLogLine(models.Model):
    """One line a runner logged during its run (``context.log``).

    A session keeps at most MAX_LINES lines and MAX_BYTES of message text;
    past either the run's later lines are dropped and the session is marked
    ``log_truncated``.
    """

    class Level(models.TextChoices):
        DEBUG = "DEBUG", "Debug"
        INFO = "INFO", "Info"
        WARNING = "WARNING", "Warning"
        ERROR = "ERROR", "Error"

    MAX_LINES = 1000
    MAX_BYTES = 256 * 1024

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(
        ExecutionSession, on_delete=models.CASCADE, related_name="log_lines"
    )
    seq = models.PositiveIntegerField(help_text="The line's number in its session, from 1.")
    at = models.DateTimeField(help_text="When the runner logged it.")
    level = models.CharField(max_length=7, choices=Level.choices, default=Level.INFO)
    message = models.TextField()

    class Meta:
        constraints = [
            # Also the index of a session's lines in order, and of "after seq".
            models.UniqueConstraint(fields=["session", "seq"], name="session_log_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id} #{self.seq}"


class RunRequestKey(models.Model):
    """An ``Idempotency-Key`` a run request of an agent came with, and the run it queued.

    The unique (agent, key) makes the database decide between two requests
    racing with one key: the second insert fails and answers the first run.
    A key is good for KEY_LIFETIME; an older one is replaced by its next use
    and deleted by the daily retention prune.
    """

    KEY_LIFETIME = timedelta(hours=24)
    MAX_LENGTH = 255

    id = models.BigAutoField(primary_key=True)
    agent = models.ForeignKey(AIAgent, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=MAX_LENGTH)
    session = models.ForeignKey(ExecutionSession, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent", "key"], name="run_request_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}: {self.key}"


class AgentSessionCount(models.Model):
    """How many sessions an agent has, so its history can say ``total`` without counting.

    The database keeps it exact: triggers on ``agents_executionsession``
    (migration 0003) add what each insert inserted and subtract what each
    delete deleted, in the same transaction. Nothing in the application writes
    it. An agent that never had a session has no row.
    """

    agent = models.OneToOneField(
        AIAgent,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="session_count",
    )
    total = models.BigIntegerField(default=0, help_text="The agent's sessions, all statuses.")

    class Meta:
        db_table = "agents_sessioncount"

    def __str__(self) -> str:
        return f"{self.agent_id}: {self.total} sessions"

    @classmethod
    def total_for(cls, agent_id: uuid.UUID) -> int:
        """The agent's session count: one primary-key read instead of a count."""
        total = cls.objects.filter(agent_id=agent_id).values_list("total", flat=True).first()
        if total is None:
            # No row: the agent never had a session, or the database has no
            # triggers to keep one (a vendor other than PostgreSQL or SQLite).
            return ExecutionSession.objects.filter(agent_id=agent_id).count()
        return total


class RunDay(models.Model):
    """One agent's finished runs of one past UTC day, rolled up once that day is over.

    Statistics over days (``agents.run_stats``) read a day from here instead
    of its runs. Nothing finishes in a day that is over, so a row, once
    written, is final; a day with no runs has a row of zeros, so that it is
    not rolled up again. Rows outlive the sessions that retention prunes.
    """

    agent = models.ForeignKey(AIAgent, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    p50 = models.FloatField(null=True)
    p95 = models.FloatField(null=True)
    longest = models.PositiveBigIntegerField(null=True)
    durations = models.JSONField(
        default=dict, help_text="agents.durations.Durations.as_json() of the day's runs."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "day"], name="run_day_unique")]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.day}: {self.runs} runs"


class AuditEntry(models.Model):
    """One change to an agent or its schedule: when, who, through which surface, what.

    Written by the services in the transaction of the change (``agents.audit``).
    Entries outlive their agent, so the trail keeps who deleted it: the agent
    column is a plain reference the database does not tie to the agents table.
    """

    class Source(models.TextChoices):
        API = "API", "API"
        ADMIN = "ADMIN", "Admin"
        BEAT_ADMIN = "BEAT_ADMIN", "Beat admin"
        SYSTEM = "SYSTEM", "System"

    id = models.BigAutoField(primary_key=True)
    agent = models.ForeignKey(
        AIAgent,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    at = models.DateTimeField(default=timezone.now, help_text="When the change was made.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The user who made the change; empty for the system.",
    )
    actor_name = models.CharField(
        max_length=150,
        help_text='The user\'s name when they made the change, or "system".',
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=64, help_text="What was done, e.g. schedule.paused.")
    changes = models.JSONField(
        default=dict, blank=True, help_text="Each changed field: [old, new], as the API shows it."
    )

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["agent", "-at", "-id"], name="audit_history")]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.action} by {self.actor_name}"
