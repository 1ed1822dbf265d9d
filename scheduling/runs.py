"""The life of a run: queued, started, progressing, finished, retried, cancelled.

Every transition is a conditional update (``filter(status=...).update(...)``)
that goes on only if it changed exactly one row, so two workers, a re-sent
message or a reclaim racing a finishing run can never both act on a session.
Admission (QUEUED -> RUNNING under the cap) is ``scheduling.admission``.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Field, When
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession, RunRequestKey
from core.text import storable_text
from observability import metrics
from realtime import events
from scheduling import alerts, later, pacing, slots

logger = logging.getLogger(__name__)

Status = ExecutionSession.Status
Trigger = ExecutionSession.Trigger

# The most of a run's output or error that is kept.
RESULT_TEXT_LIMIT = 10_000
# The largest run input, as compact JSON in UTF-8.
MAX_INPUT_BYTES = 64 * 1024


def queue_run(
    agent: AIAgent,
    *,
    trigger: str,
    scheduled_for: datetime,
    attempt: int = 1,
    rerun: int = 0,
    not_before: datetime | None = None,
    input: dict[str, Any] | None = None,
) -> ExecutionSession | None:
    """Record a run as QUEUED; None if this slot, rerun and attempt already exist."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                session = ExecutionSession.objects.create(
                    agent=agent,
                    owner_id=agent.owner_id,
                    trigger=trigger,
                    attempt=attempt,
                    rerun=rerun,
                    priority=agent.priority,
                    scheduled_for=scheduled_for,
                    not_before=not_before or timezone.now(),
                    input=input or {},
                )
        except IntegrityError:
            return None
        AIAgent.objects.filter(
            pk=agent.pk, status__in=[AIAgent.Status.IDLE, AIAgent.Status.ERROR]
        ).update(status=AIAgent.Status.QUEUED)
        transaction.on_commit(pacing.request_admission)
    return session


def run_now(agent: AIAgent, *, input: dict[str, Any] | None = None) -> ExecutionSession:
    session = queue_run(agent, trigger=Trigger.MANUAL, scheduled_for=timezone.now(), input=input)
    assert session is not None  # manual runs have no uniqueness rule
    return session


def run_now_once(
    agent: AIAgent, key: str, *, input: dict[str, Any] | None = None
) -> tuple[ExecutionSession, bool]:
    """run_now, unless the agent had a run request with this ``Idempotency-Key``
    in the last 24 hours: then nothing is queued and that request's session is
    the answer. Returns the session and whether it is the earlier request's."""
    now = timezone.now()
    with transaction.atomic():
        RunRequestKey.objects.filter(
            agent=agent, key=key, created_at__lte=now - RunRequestKey.KEY_LIFETIME
        ).delete()
        try:
            with transaction.atomic():
                session = run_now(agent, input=input)
                RunRequestKey.objects.create(agent=agent, key=key, session=session)
            return session, False
        except IntegrityError:
            # A request with this key got there first (possibly a moment ago,
            # its insert making ours wait for its commit): its run is the answer.
            pass
        first = RunRequestKey.objects.select_related("session").get(agent=agent, key=key)
        return first.session, True


def start_run(session_id: str, worker: str) -> ExecutionSession | None:
    """The worker begins an admitted session; None if it is no longer ours to run."""
    now = timezone.now()
    with transaction.atomic():
        started = ExecutionSession.objects.filter(
            pk=session_id, status=Status.RUNNING, started_at__isnull=True
        ).update(
            started_at=now,
            worker=worker[:200],
            lease_expires_at=now + timedelta(seconds=settings.SCHEDULER_LEASE_SECONDS),
        )
        if not started:
            return None
        session = ExecutionSession.objects.select_related("agent").get(pk=session_id)
        AIAgent.objects.filter(pk=session.agent_id).update(
            status=AIAgent.Status.RUNNING, last_run_at=now
        )
        session.agent.status = AIAgent.Status.RUNNING
        session.agent.last_run_at = now
        if session.trigger == Trigger.SCHEDULE and session.attempt == 1:
            slots.mark_started(session.pk)
            alerts.run_started(session, session.agent)
        events.emit_started(session, session.agent)
        metrics.run_started(session)
    return session


def renew_lease(session_id: str) -> bool:
    """Keep the slot; False once the session stopped running (cancelled or reclaimed)."""
    return bool(
        ExecutionSession.objects.filter(pk=session_id, status=Status.RUNNING).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.SCHEDULER_LEASE_SECONDS)
        )
    )


def record_progress(session: ExecutionSession, progress: int, message: str) -> None:
    with transaction.atomic():
        ExecutionSession.objects.filter(pk=session.pk, status=Status.RUNNING).update(
            progress=progress
        )
        events.emit_progress(session, session.agent, progress, message)


def _duration_ms(started_at: datetime | None, completed_at: datetime) -> int | None:
    if started_at is None:
        return None
    return max(0, round((completed_at - started_at).total_seconds() * 1000))


def finish_succeeded(
    session_id: str,
    output: object,
    *,
    session: ExecutionSession | None = None,
    admit_inline: bool = False,
) -> bool:
    """Record a successful run.

    ``output`` is what the runner returned, stored as ``storable_text``
    makes it. ``session`` is the worker's copy from ``start_run`` (spares a
    read); ``admit_inline`` says the caller fills the freed slot itself,
    right after, and then has the new state broadcast.
    """
    now = timezone.now()
    with transaction.atomic():
        if session is None:
            session = ExecutionSession.objects.select_related("agent").filter(pk=session_id).first()
            if session is None:
                return False
        duration = _duration_ms(session.started_at, now)
        output = storable_text(output, limit=RESULT_TEXT_LIMIT)
        done = ExecutionSession.objects.filter(pk=session_id, status=Status.RUNNING).update(
            status=Status.SUCCEEDED,
            success=True,
            completed_at=now,
            duration_ms=duration,
            output_summary=output,
            progress=100,
            lease_expires_at=None,
        )
        if not done:
            return False
        session.status, session.success, session.completed_at = Status.SUCCEEDED, True, now
        session.duration_ms, session.output_summary, session.progress = duration, output, 100
        session.lease_expires_at = None
        agent = session.agent
        agent.retry_count, agent.last_error = 0, ""
        refresh_agent_status(agent, finished=Status.SUCCEEDED, clear_failures=True)
        events.emit_completed(session, agent)
        metrics.run_finished(session)
        alerts.run_ended(session, agent)
        if not admit_inline:
            transaction.on_commit(_after_run_finished)
    return True


def finish_failed(
    session_id: str,
    error: str,
    *,
    only_if_lease_before: datetime | None = None,
    admit_inline: bool = False,
) -> bool:
    """Record a failed attempt and queue its retry, if any is left."""
    now = timezone.now()
    error = storable_text(error, limit=RESULT_TEXT_LIMIT)
    with transaction.atomic():
        session = ExecutionSession.objects.select_related("agent").filter(pk=session_id).first()
        if session is None:
            return False
        running = ExecutionSession.objects.filter(pk=session_id, status=Status.RUNNING)
        if only_if_lease_before is not None:
            running = running.filter(lease_expires_at__lt=only_if_lease_before)
        done = running.update(
            status=Status.FAILED,
            success=False,
            completed_at=now,
            duration_ms=_duration_ms(session.started_at, now),
            error_message=error,
            lease_expires_at=None,
        )
        if not done:
            return False
        session.refresh_from_db()
        AIAgent.objects.filter(pk=session.agent_id).update(
            retry_count=F("retry_count") + 1, last_error=error
        )
        agent = AIAgent.objects.get(pk=session.agent_id)
        will_retry = session.attempt <= settings.SCHEDULER_MAX_RETRIES
        if will_retry:
            delay = backoff_seconds(session.attempt)
            queue_run(
                agent,
                trigger=Trigger.RETRY,
                scheduled_for=session.scheduled_for,
                attempt=session.attempt + 1,
                rerun=session.rerun,
                not_before=now + timedelta(seconds=delay),
                input=session.input,
            )
            transaction.on_commit(lambda: later.call_later(delay, pacing.request_admission))
        refresh_agent_status(agent, finished=Status.FAILED)
        events.emit_failed(session, agent, will_retry=will_retry)
        metrics.run_finished(session, will_retry=will_retry)
        alerts.run_ended(session, agent, final_failure=not will_retry)
        if not admit_inline:
            transaction.on_commit(_after_run_finished)
    return True


def backoff_seconds(failed_attempt: int) -> float:
    """Delay before retrying after attempt ``n`` failed: min(base * 2^(n-1), max) ms, plus jitter.

    The jitter only ever lengthens the wait (by up to a quarter, within the
    maximum), so a retry never fires sooner than the contract says.
    """
    base = settings.SCHEDULER_BACKOFF_BASE * 2 ** (failed_attempt - 1)
    delay_ms = min(base, settings.SCHEDULER_BACKOFF_MAX)
    jittered = min(
        delay_ms * random.uniform(1.0, 1.25), max(delay_ms, settings.SCHEDULER_BACKOFF_MAX)
    )
    return jittered / 1000


def cancel_session(session: ExecutionSession, *, reason: str = "Cancelled.") -> bool:
    """Cancel a queued or running session; False if it had already finished.

    A run whose runner had started keeps its lease: admission counts it as
    holding its slot (and its agent) until the runner has stopped
    (``runner_stopped``) or the lease runs out, so the next run of the agent
    never overlaps the one being cancelled.
    """
    now = timezone.now()
    with transaction.atomic():
        done = ExecutionSession.objects.filter(
            pk=session.pk, status__in=[Status.QUEUED, Status.RUNNING]
        ).update(
            status=Status.CANCELLED,
            success=False,
            completed_at=now,
            error_message=reason,
            lease_expires_at=Case(
                When(started_at__isnull=False, then=F("lease_expires_at")), default=None
            ),
        )
        if not done:
            return False
        session.refresh_from_db()
        if session.started_at:
            ExecutionSession.objects.filter(pk=session.pk).update(
                duration_ms=_duration_ms(session.started_at, now)
            )
            session.duration_ms = _duration_ms(session.started_at, now)
        else:
            slots.mark_cancelled(session.pk, f"{reason.rstrip('.')} before its run started.")
        refresh_agent_status(session.agent, finished=Status.CANCELLED)
        metrics.run_finished(session)
        alerts.run_ended(session, session.agent)
        transaction.on_commit(_after_run_finished)
    return True


def runner_stopped(session_id: str) -> None:
    """The runner of a cancelled run has returned: its slot is free now, not at lease end."""
    if ExecutionSession.objects.filter(
        pk=session_id, status=Status.CANCELLED, lease_expires_at__isnull=False
    ).update(lease_expires_at=None):
        transaction.on_commit(pacing.request_admission)


def refresh_agent_status(
    agent: AIAgent, *, finished: str | None = None, clear_failures: bool = False
) -> None:
    """Derive the agent's status from its sessions, in one statement.

    ``finished`` is the outcome of a run that just ended, which is then the
    latest; otherwise the latest finished session is looked up.
    ``clear_failures`` also resets the retry count and the last error in the
    same update. ``agent.status`` in memory is left as it was: nothing after
    a finish reads it, and reading it back would cost a query per run.
    """
    if finished is None:
        # The history index, not completed_at: stops at the newest finished
        # row instead of sorting an agent's whole history.
        latest = (
            ExecutionSession.objects.filter(agent_id=agent.pk, status__in=ExecutionSession.FINISHED)
            .order_by("-created_at", "-id")
            .values_list("status", flat=True)
            .first()
        )
    else:
        latest = finished
    settled = AIAgent.Status.ERROR if latest == Status.FAILED else AIAgent.Status.IDLE
    statement = _agent_status_update(clear_failures=clear_failures)
    id_field = AIAgent._meta.get_field("id")
    assert isinstance(id_field, Field)
    with connection.cursor() as cursor:
        cursor.execute(
            statement,
            [
                Status.RUNNING,
                AIAgent.Status.RUNNING,
                Status.QUEUED,
                Status.RUNNING,
                AIAgent.Status.QUEUED,
                settled,
                id_field.get_db_prep_value(agent.pk, connection),
            ],
        )


def _agent_status_update(*, clear_failures: bool) -> str:
    # Written out rather than built from Case, When and Exists: compiling
    # that expression was a fifth of a run's CPU in the worker, for a
    # statement whose shape never changes.
    quote = connection.ops.quote_name
    agents, sessions = quote(AIAgent._meta.db_table), quote(ExecutionSession._meta.db_table)
    agent_id = f"{agents}.{quote('id')}"
    failures = f", {quote('retry_count')} = 0, {quote('last_error')} = ''" if clear_failures else ""
    return (
        f"UPDATE {agents} SET status = CASE"
        f" WHEN EXISTS (SELECT 1 FROM {sessions} s WHERE s.agent_id = {agent_id}"
        " AND s.status = %s AND s.started_at IS NOT NULL) THEN %s"
        f" WHEN EXISTS (SELECT 1 FROM {sessions} s WHERE s.agent_id = {agent_id}"
        f" AND s.status IN (%s, %s)) THEN %s ELSE %s END{failures}"
        f" WHERE {agent_id} = %s"
    )


def _after_run_finished() -> None:
    pacing.request_admission()
    pacing.request_status_broadcast()


def session_is_running(session_id: str) -> bool:
    return ExecutionSession.objects.filter(pk=session_id, status=Status.RUNNING).exists()
