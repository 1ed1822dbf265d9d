"""Alert rules: when an agent's incidents open and resolve.

- LATE and OVERRUN are found by ``check``, which the periodic tick calls
  (every ``SCHEDULER_CHECK_INTERVAL``, 5 s by default): a slot in the ledger
  still waiting ``lateAfterSeconds`` after it, a run still running
  ``maxDurationSeconds`` after it started. LATE resolves when that run starts,
  OVERRUN when it ends (both checked again by the tick, so a run that is
  cancelled, reclaimed or deleted cannot leave one open).
- FAILING and PAUSED are decided as a run's last attempt fails, in that
  transaction; a success resolves FAILING, resuming the schedule PAUSED.

Opening and resolving themselves, exactly once each, are ``scheduling.incidents``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents import audit
from agents.audit import SYSTEM, Actor
from agents.models import AIAgent, ExecutionSession
from core import outbound
from core.dates import minute_text
from scheduling import incidents, services
from scheduling.models import AlertChannel, AlertRule, Incident, ScheduleSlot

Kind = Incident.Kind
Status = ExecutionSession.Status

# The rule's thresholds, by field, with the largest value each takes: a
# week for the durations (a run's timeout is an hour), and a failure count
# past which the rule would never fire in practice.
THRESHOLDS = {
    "late_after_seconds": 7 * 86400,
    "max_duration_seconds": 7 * 86400,
    "failures_in_a_row": 1000,
    "pause_after_failures": 1000,
}
KIND_OF = {
    "late_after_seconds": Kind.LATE,
    "max_duration_seconds": Kind.OVERRUN,
    "failures_in_a_row": Kind.FAILING,
}
MAX_CHANNELS = 20
RULE_FIELDS = {
    "late_after_seconds": "lateAfterSeconds",
    "max_duration_seconds": "maxDurationSeconds",
    "failures_in_a_row": "failuresInARow",
    "pause_after_failures": "pauseAfterFailures",
}


class RuleFieldError(ValueError):
    """A rule field that cannot be stored; ``field`` is its Python name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Rules:
    late_after_seconds: int | None = None
    max_duration_seconds: int | None = None
    failures_in_a_row: int | None = None
    pause_after_failures: int | None = None
    channels: tuple[AlertChannel, ...] = ()
    failed_runs_in_a_row: int = 0


def rules_of(agent: AIAgent) -> Rules:
    rule = AlertRule.objects.filter(agent_id=agent.pk).first()
    if rule is None:
        return Rules()
    return Rules(
        **{field: getattr(rule, field) for field in THRESHOLDS},
        channels=tuple(rule.channels.order_by("name", "id")),
        failed_runs_in_a_row=rule.failed_runs_in_a_row,
    )


def check_target(kind: str, target: str) -> str:
    """A channel's target as stored, or a ValueError saying what is wrong with it.

    URLs obey the webhook agents' address rules: internal addresses are
    refused unless their host is in AGENT_WEBHOOK_ALLOWED_HOSTS.
    """
    if kind == AlertChannel.Kind.EMAIL:
        try:
            EmailValidator(message="Must be an email address.")(target)
        except DjangoValidationError as exc:
            raise ValueError(exc.messages[0]) from None
        return target
    try:
        outbound.parse_http_url(target)
        outbound.resolve_destination(target)
    except outbound.DestinationRefused as exc:
        raise ValueError(str(exc)) from None
    return target


def _threshold(field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleFieldError(field, "Must be a whole number, or null to turn it off.")
    maximum = THRESHOLDS[field]
    if not 1 <= value <= maximum:
        raise RuleFieldError(field, f"Must be between 1 and {maximum}, or null to turn it off.")
    return value


def _snapshot(rules: Rules) -> dict[str, Any]:
    shown: dict[str, Any] = {RULE_FIELDS[field]: getattr(rules, field) for field in THRESHOLDS}
    shown["channels"] = [channel.name for channel in rules.channels]
    return shown


@transaction.atomic
def set_rules(
    agent: AIAgent,
    *,
    channels: Iterable[AlertChannel],
    actor: Actor = SYSTEM,
    late_after_seconds: object = None,
    max_duration_seconds: object = None,
    failures_in_a_row: object = None,
    pause_after_failures: object = None,
) -> Rules:
    """Replace the agent's rules; raises RuleFieldError and then changes nothing.

    A kind that is turned off has its open incident resolved. A PAUSED
    incident stays open until the schedule is resumed: turning the rule off
    does not resume it.
    """
    thresholds = {
        "late_after_seconds": late_after_seconds,
        "max_duration_seconds": max_duration_seconds,
        "failures_in_a_row": failures_in_a_row,
        "pause_after_failures": pause_after_failures,
    }
    values = {field: _threshold(field, value) for field, value in thresholds.items()}
    channel_list = list(dict.fromkeys(channels))
    if len(channel_list) > MAX_CHANNELS:
        raise RuleFieldError("channels", f"At most {MAX_CHANNELS} channels.")
    before = _snapshot(rules_of(agent))
    rule, _ = AlertRule.objects.select_for_update().get_or_create(agent=agent)
    for field, value in values.items():
        setattr(rule, field, value)
    rule.save()
    rule.channels.set(channel_list)
    after = rules_of(agent)
    audit.record(agent, actor, audit.Action.ALERTS_CHANGED, audit.diff(before, _snapshot(after)))
    turned_off = [kind for field, kind in KIND_OF.items() if values[field] is None]
    if turned_off:
        incidents.resolve_incidents(agent, turned_off, "Its alert rule was turned off.")
    return after


# --- a run's start and end -------------------------------------------------------


def run_started(session: ExecutionSession, agent: AIAgent) -> None:
    """A late slot's run has started."""
    incidents.resolve_incidents(agent, [Kind.LATE], "Its run started.", session_id=session.pk)


def run_ended(session: ExecutionSession, agent: AIAgent, *, final_failure: bool = False) -> None:
    """A run ended (``final_failure``: failed with no retry left), in its transaction."""
    rule = AlertRule.objects.filter(agent_id=agent.pk).first()
    if rule is None:
        return
    incidents.resolve_incidents(agent, [Kind.OVERRUN], "The run ended.", session_id=session.pk)
    if session.status == Status.SUCCEEDED:
        if rule.failed_runs_in_a_row:
            AlertRule.objects.filter(pk=rule.pk).update(failed_runs_in_a_row=0)
            incidents.resolve_incidents(agent, [Kind.FAILING], "A run succeeded.")
        return
    if not final_failure:
        return
    AlertRule.objects.filter(pk=rule.pk).update(failed_runs_in_a_row=F("failed_runs_in_a_row") + 1)
    failed = AlertRule.objects.values_list("failed_runs_in_a_row", flat=True).get(pk=rule.pk)
    last_error = (session.error_message or "no error given").splitlines()[0][:200]
    if rule.failures_in_a_row and failed >= rule.failures_in_a_row:
        incidents.open_incident(
            agent,
            Kind.FAILING,
            f"{failed} runs in a row failed; the last: {last_error}",
            session=session,
        )
    if rule.pause_after_failures and failed >= rule.pause_after_failures:
        _pause(agent, session, failed, last_error)


def _pause(agent: AIAgent, session: ExecutionSession, failed: int, last_error: str) -> None:
    current = AIAgent.objects.filter(pk=agent.pk).values("schedule_expression", "schedule_enabled")
    state = current.first()
    if not state or not state["schedule_expression"] or not state["schedule_enabled"]:
        return
    note = f"Paused after {failed} failed runs in a row; the last: {last_error}"
    services.set_schedule(agent, enabled=False, pause_note=note[:500], actor=SYSTEM)
    incidents.open_incident(agent, Kind.PAUSED, note, session=session)


# --- the tick's check ----------------------------------------------------------------


def check(now: datetime | None = None) -> int:
    """Open LATE and OVERRUN incidents that are due, resolve those whose run
    moved on; returns how many incidents this opened or resolved."""
    now = now or timezone.now()
    open_now = set(
        Incident.objects.filter(
            resolved_at__isnull=True, kind__in=[Kind.LATE, Kind.OVERRUN]
        ).values_list("agent_id", "kind")
    )
    changed = _resolve_moved_on(now)
    for agent_id, session_id, kind, message in _due(now):
        # The oldest late slot of an agent speaks for it; one incident per kind.
        if (agent_id, kind) not in open_now:
            open_now.add((agent_id, kind))
            changed += _open_for(agent_id, session_id, kind, message)
    return changed


def _due(now: datetime) -> Iterator[tuple[uuid.UUID, uuid.UUID, str, str]]:
    """(agent, session, kind, message) of every waiting slot and running run past
    its rule's threshold, oldest first within each kind."""
    waiting = (
        ScheduleSlot.objects.filter(
            outcome=ScheduleSlot.Outcome.QUEUED,
            session__isnull=False,
            agent__alert_rule__late_after_seconds__isnull=False,
            scheduled_for__lt=now,
        )
        .order_by("scheduled_for")
        .values_list(
            "agent_id", "session_id", "scheduled_for", "agent__alert_rule__late_after_seconds"
        )
    )
    for agent_id, session_id, scheduled_for, late_after in waiting:
        if session_id and late_after and scheduled_for + timedelta(seconds=late_after) <= now:
            yield (
                agent_id,
                session_id,
                Kind.LATE,
                f"The run of the {minute_text(scheduled_for)} slot has not started "
                f"{late_after} s after it.",
            )
    running = ExecutionSession.objects.filter(
        status=Status.RUNNING,
        started_at__isnull=False,
        agent__alert_rule__max_duration_seconds__isnull=False,
    ).values_list("agent_id", "pk", "started_at", "agent__alert_rule__max_duration_seconds")
    for agent_id, session_id, started_at, limit in running:
        if started_at and limit and started_at + timedelta(seconds=limit) <= now:
            yield (
                agent_id,
                session_id,
                Kind.OVERRUN,
                f"A run has been running for over {limit} s (started {minute_text(started_at)}).",
            )


def _open_for(agent_id: uuid.UUID, session_id: uuid.UUID, kind: str, message: str) -> int:
    with transaction.atomic():
        agent = AIAgent.objects.filter(pk=agent_id).first()
        session = ExecutionSession.objects.filter(pk=session_id).first()
        if agent is None or session is None:
            return 0
        return 1 if incidents.open_incident(agent, kind, message, session=session) else 0


def _resolve_moved_on(now: datetime) -> int:
    """LATE incidents whose run is no longer waiting, OVERRUN ones whose run is
    no longer running: started, cancelled, reclaimed or deleted."""
    changed = 0
    for incident in Incident.objects.filter(
        resolved_at__isnull=True, kind__in=[Kind.LATE, Kind.OVERRUN]
    ).select_related("agent", "session"):
        session = incident.session
        if session is not None and _still_holds(incident.kind, session):
            continue
        reason = "Its run started." if incident.kind == Kind.LATE else "The run ended."
        if session is None:
            reason = "Its run is gone."
        elif session.status == Status.CANCELLED:
            reason = "Its run was cancelled."
        with transaction.atomic():
            changed += incidents.resolve(incident, incident.agent, reason)
    return changed


def _still_holds(kind: str, session: ExecutionSession) -> bool:
    if kind == Kind.LATE:
        # Admitted but not yet picked up by a worker is still waiting.
        return session.status in (Status.QUEUED, Status.RUNNING) and session.started_at is None
    return session.status == Status.RUNNING
