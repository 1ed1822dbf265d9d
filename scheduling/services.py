"""Agent schedules and the django-celery-beat rows behind them.

Each scheduled agent owns exactly one ``CrontabSchedule`` and one
``PeriodicTask``; nothing else writes them (an edit made in the beat admin is
mirrored back onto the agent by ``scheduling.signals``). Rows are only saved
when something really changed: each save marks beat's schedule as changed,
and a stock DatabaseScheduler (which a deployment may still use) reloads
every row when it is.
"""

from __future__ import annotations

import contextvars
import enum
import json
import logging
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from agents import audit
from agents.audit import SYSTEM, Actor
from agents.models import AIAgent, CatchupPolicy, OverlapPolicy
from scheduling import incidents
from scheduling.cron import (
    CronError,
    CronExpression,
    celery_crontab_fields,
    next_run,
    parse_cron,
    validate_timezone,
)
from scheduling.models import Incident

DISPATCH_TASK = "scheduling.dispatch_scheduled_run"
PERIODIC_TASK_PREFIX = "agent:"

# Set while this module writes beat rows, so the mirror in signals.py does
# not echo our own writes back onto the agent.
_writing_beat_rows: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "writing_beat_rows", default=False
)

logger = logging.getLogger(__name__)


class NoSchedule(LookupError):
    """The agent has no schedule to change."""


class ScheduleFieldError(ValueError):
    """A schedule field holds a value the scheduler cannot use; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


MAX_CATCHUP_WINDOW = 2_678_400  # s, 31 days
MAX_JITTER_SECONDS = 3600
MAX_PAUSE_NOTE = 500


class _Unset(enum.Enum):
    """A field the caller did not send (None is a value some fields take)."""

    UNSET = enum.auto()


UNSET = _Unset.UNSET


def periodic_task_name(agent: AIAgent) -> str:
    return f"{PERIODIC_TASK_PREFIX}{agent.pk}"


def is_writing_beat_rows() -> bool:
    return _writing_beat_rows.get()


@contextmanager
def _beat_rows_writer():
    token = _writing_beat_rows.set(True)
    try:
        yield
    finally:
        _writing_beat_rows.reset(token)


def compute_next_run(agent: AIAgent, *, after: datetime | None = None) -> datetime | None:
    if not (agent.schedule_expression and agent.schedule_enabled):
        return None
    return next_run(
        parse_cron(agent.schedule_expression),
        agent.schedule_timezone,
        after=after or timezone.now(),
    )


@transaction.atomic
def set_schedule(
    agent: AIAgent,
    *,
    expression: str | _Unset = UNSET,
    timezone_name: str | _Unset = UNSET,
    priority: int | _Unset = UNSET,
    enabled: bool | _Unset = UNSET,
    overlap_policy: str | _Unset = UNSET,
    catchup_policy: str | _Unset = UNSET,
    catchup_window: int | _Unset | None = UNSET,
    jitter_seconds: int | _Unset = UNSET,
    pause_note: str | _Unset = UNSET,
    paused_until: datetime | _Unset | None = UNSET,
    actor: Actor = SYSTEM,
    action: str | None = None,
) -> AIAgent:
    """Create or change the agent's schedule.

    Raises CronError / TimezoneError / NoSchedule / ScheduleFieldError, and
    then changes nothing. A pause records when it began (resuming with a
    policy runs the slots missed since); ``paused_until`` pauses until then;
    resuming clears the note and the snooze. A real change is recorded in the
    audit trail as ``action`` (by default what the change did: set, pause, ...).
    """
    agent = AIAgent.objects.select_for_update().get(pk=agent.pk)
    before = audit.snapshot(agent, audit.SCHEDULE_FIELDS)
    new_expression = agent.schedule_expression if expression is UNSET else expression
    if expression is UNSET and not new_expression:
        raise NoSchedule("This agent has no schedule yet: create one with POST first.")
    cron = parse_cron(new_expression)
    was_enabled = agent.schedule_enabled and bool(agent.periodic_task_id)
    if timezone_name is not UNSET:
        agent.schedule_timezone = str(validate_timezone(timezone_name))
    if expression is not UNSET:
        agent.schedule_expression = cron.source
        if enabled is UNSET and not agent.periodic_task_id:
            agent.schedule_enabled = True
    if enabled is not UNSET:
        agent.schedule_enabled = enabled
    if priority is not UNSET:
        agent.priority = priority
    _apply_policies(
        agent,
        overlap_policy=overlap_policy,
        catchup_policy=catchup_policy,
        catchup_window=catchup_window,
        jitter_seconds=jitter_seconds,
    )
    _apply_pause(
        agent,
        was_enabled=was_enabled,
        enabled=enabled,
        pause_note=pause_note,
        paused_until=paused_until,
    )
    agent.next_run_at = compute_next_run(agent)
    _sync_beat_rows(agent, cron)
    agent.save()
    if agent.schedule_enabled and not was_enabled:
        incidents.resolve_incidents(agent, [Incident.Kind.PAUSED], "The schedule was resumed.")
    after = audit.snapshot(agent, audit.SCHEDULE_FIELDS)
    audit.record(
        agent, actor, action or audit.schedule_action(before, after), audit.diff(before, after)
    )
    return agent


def _choice(field: str, value: object, choices: type[enum.Enum]) -> str:
    names = [str(member.value) for member in choices]
    if not isinstance(value, str) or value not in names:
        raise ScheduleFieldError(
            field, f"Unknown value {value!r}: use {', '.join(names[:-1])} or {names[-1]}."
        )
    return value


def _whole_number(field: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScheduleFieldError(field, "Must be a whole number of seconds.")
    if not 0 <= value <= maximum:
        raise ScheduleFieldError(field, f"Must be between 0 and {maximum} seconds.")
    return value


def _apply_policies(
    agent: AIAgent,
    *,
    overlap_policy: str | _Unset,
    catchup_policy: str | _Unset,
    catchup_window: int | _Unset | None,
    jitter_seconds: int | _Unset,
) -> None:
    if overlap_policy is not UNSET:
        agent.overlap_policy = _choice("overlap_policy", overlap_policy, OverlapPolicy)
    if catchup_policy is not UNSET:
        agent.catchup_policy = _choice("catchup_policy", catchup_policy, CatchupPolicy)
    if catchup_window is not UNSET:
        agent.catchup_window = (
            None
            if catchup_window is None
            else _whole_number("catchup_window", catchup_window, MAX_CATCHUP_WINDOW)
        )
    if jitter_seconds is not UNSET:
        agent.jitter_seconds = _whole_number("jitter_seconds", jitter_seconds, MAX_JITTER_SECONDS)


def _apply_pause(
    agent: AIAgent,
    *,
    was_enabled: bool,
    enabled: bool | _Unset,
    pause_note: str | _Unset,
    paused_until: datetime | _Unset | None,
) -> None:
    now = timezone.now()
    if paused_until is not UNSET and paused_until is not None:
        if not isinstance(paused_until, datetime) or timezone.is_naive(paused_until):
            raise ScheduleFieldError("paused_until", "Must be a time with its UTC offset.")
        if paused_until <= now:
            raise ScheduleFieldError("paused_until", "Must be in the future.")
        if enabled is True:
            raise ScheduleFieldError(
                "paused_until", "A snoozed schedule is paused: do not resume it in the same change."
            )
        # A snooze is a pause that ends by itself.
        agent.schedule_enabled = False
    if pause_note is not UNSET:
        if not isinstance(pause_note, str):
            raise ScheduleFieldError("pause_note", "Must be a string.")
        if len(pause_note) > MAX_PAUSE_NOTE:
            raise ScheduleFieldError(
                "pause_note", f"Must be at most {MAX_PAUSE_NOTE} characters long."
            )
        if pause_note and agent.schedule_enabled:
            raise ScheduleFieldError(
                "pause_note", "A note is kept only while the schedule is paused: pause it too."
            )
    if agent.schedule_enabled:
        agent.pause_note, agent.paused_until, agent.paused_at = "", None, None
        return
    if was_enabled or agent.paused_at is None:
        agent.paused_at = now
    if pause_note is not UNSET:
        agent.pause_note = pause_note
    if paused_until is not UNSET:
        agent.paused_until = paused_until


@transaction.atomic
def remove_schedule(agent: AIAgent, *, actor: Actor = SYSTEM) -> AIAgent:
    before = audit.snapshot(agent, audit.SCHEDULE_FIELDS)
    _clear_schedule(agent)
    incidents.resolve_incidents(agent, [Incident.Kind.PAUSED], "The schedule was removed.")
    after = audit.snapshot(agent, audit.SCHEDULE_FIELDS)
    audit.record(agent, actor, audit.Action.SCHEDULE_REMOVED, audit.diff(before, after))
    return agent


def _clear_schedule(agent: AIAgent) -> None:
    task = agent.periodic_task
    agent.periodic_task = None
    agent.schedule_expression = None
    agent.schedule_enabled = False
    agent.next_run_at = None
    agent.pause_note, agent.paused_at, agent.paused_until = "", None, None
    if agent.pk and AIAgent.objects.filter(pk=agent.pk).exists():
        agent.save(
            update_fields=[
                "periodic_task",
                "schedule_expression",
                "schedule_enabled",
                "next_run_at",
                "pause_note",
                "paused_at",
                "paused_until",
                "updated_at",
            ]
        )
    if task is not None:
        with _beat_rows_writer():
            crontab = task.crontab
            task.delete()
            if crontab is not None and not crontab.periodictask_set.exists():
                crontab.delete()


@transaction.atomic
def delete_agent(agent: AIAgent, *, actor: Actor = SYSTEM) -> None:
    # One entry says it all: the schedule goes with the agent, unrecorded.
    audit.record(agent, actor, audit.Action.AGENT_DELETED, audit.deleted(agent))
    # The beat entry must go with the agent, or beat would keep firing it.
    _clear_schedule(agent)
    agent.delete()


def _sync_beat_rows(agent: AIAgent, cron: CronExpression) -> None:
    fields = {**celery_crontab_fields(cron), "timezone": agent.schedule_timezone}
    task = agent.periodic_task
    with _beat_rows_writer():
        crontab = task.crontab if task is not None else None
        if crontab is None or _shared(crontab, task):
            # Never edit a row another task also points at: that would
            # reschedule (or, on delete, remove) someone else's agent.
            crontab = CrontabSchedule()
        if _apply(crontab, fields):
            crontab.full_clean()
            crontab.save()
        wanted = {
            "name": periodic_task_name(agent),
            "task": DISPATCH_TASK,
            "crontab": crontab,
            "interval": None,
            "solar": None,
            "clocked": None,
            "args": json.dumps([str(agent.pk)]),
            "kwargs": "{}",
            "enabled": agent.schedule_enabled,
            "one_off": False,
            "description": f"Runs agent {agent.name!r} ({agent.agent_type}).",
        }
        if task is None:
            task = PeriodicTask()
        if _apply(task, wanted):
            task.full_clean()
            task.save()
    agent.periodic_task = task


def _shared(crontab: CrontabSchedule, task: PeriodicTask | None) -> bool:
    others = crontab.periodictask_set.all()
    if task is not None and task.pk:
        others = others.exclude(pk=task.pk)
    return others.exists()


def _apply(instance, values: dict) -> bool:
    """Set the values that differ; report whether anything did."""
    changed = False
    for field, value in values.items():
        current = getattr(instance, field)
        if field == "timezone":
            current = str(current) if current is not None else None
            value = str(value)
        if current != value:
            setattr(instance, field, value)
            changed = True
    return changed or instance.pk is None


CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def mirror_beat_edits(tasks: Iterable[PeriodicTask]) -> None:
    """Mirror edits of agents' beat entries; one whose schedule agents cannot
    use is logged and left, so the other entries still follow."""
    for task in tasks:
        if not task.name.startswith(PERIODIC_TASK_PREFIX):
            continue
        try:
            mirror_beat_edit(task)
        except CronError:
            logger.warning("Beat entry %s holds a schedule agents cannot use", task.name)


@transaction.atomic
def mirror_beat_edit(task: PeriodicTask) -> None:
    """Bring an agent in line with its PeriodicTask after an edit in the beat admin."""
    agent = AIAgent.objects.select_for_update().filter(periodic_task=task).first()
    if agent is None or task.crontab is None:
        return
    before = audit.snapshot(agent, audit.SCHEDULE_FIELDS)
    crontab = task.crontab
    actual = {field: str(getattr(crontab, field)) for field in CRONTAB_FIELDS}
    current = parse_cron(agent.schedule_expression) if agent.schedule_expression else None
    # The stored crontab may be a widened form of the agent's expression (see
    # celery_crontab_fields); only a real difference is a new expression.
    if current is None or celery_crontab_fields(current) != actual:
        agent.schedule_expression = parse_cron(
            " ".join(actual[field] for field in CRONTAB_FIELDS)
        ).source
    agent.schedule_timezone = str(crontab.timezone)
    pause: dict[str, object] = {}
    if task.enabled and not agent.schedule_enabled:
        pause = {"pause_note": "", "paused_at": None, "paused_until": None}
    elif agent.schedule_enabled and not task.enabled:
        pause = {"paused_at": timezone.now()}
    agent.schedule_enabled = task.enabled
    agent.next_run_at = compute_next_run(agent)
    AIAgent.objects.filter(pk=agent.pk).update(
        schedule_expression=agent.schedule_expression,
        schedule_timezone=agent.schedule_timezone,
        schedule_enabled=agent.schedule_enabled,
        next_run_at=agent.next_run_at,
        updated_at=timezone.now(),
        **pause,
    )
    for field, value in pause.items():
        setattr(agent, field, value)
    after = audit.snapshot(agent, audit.SCHEDULE_FIELDS)
    audit.record(
        agent,
        audit.beat_admin_actor(),
        audit.schedule_action(before, after),
        audit.diff(before, after),
    )


def forget_deleted_task(agent_id: str) -> None:
    """The beat admin deleted an agent's PeriodicTask: the agent is no longer scheduled."""
    try:
        agent_uuid = uuid.UUID(agent_id)
    except ValueError:
        return
    with transaction.atomic():
        agent = AIAgent.objects.select_for_update().filter(pk=agent_uuid).first()
        if agent is None:
            return
        before = audit.snapshot(agent, audit.SCHEDULE_FIELDS)
        agent.schedule_expression, agent.schedule_enabled, agent.next_run_at = None, False, None
        agent.save(
            update_fields=["schedule_expression", "schedule_enabled", "next_run_at", "updated_at"]
        )
        after = audit.snapshot(agent, audit.SCHEDULE_FIELDS)
        removed = audit.diff(before, after)
        audit.record(agent, audit.beat_admin_actor(), audit.Action.SCHEDULE_REMOVED, removed)


def refresh_next_run(agent: AIAgent, *, after: datetime | None = None) -> None:
    agent.next_run_at = compute_next_run(agent, after=after)
    AIAgent.objects.filter(pk=agent.pk).update(next_run_at=agent.next_run_at)
