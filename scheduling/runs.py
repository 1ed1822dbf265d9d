"""The life of a run: queued, admitted, running, finished, retried.

Every transition is a conditional update (``filter(status=...).update(...)``)
that goes on only if it changed exactly one row, so two workers, a re-sent
message or a reclaim racing a finishing run can never both act on a session.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When
from django.utils import timezone
from redis.exceptions import RedisError

from agents.models import AIAgent, ExecutionSession
from agents.text import storable_text
from core.redis import fast_redis
from observability import metrics
from realtime import events
from scheduling import later
from scheduling.cron import CronError, parse_cron
from scheduling.due_index import ScheduleSpec, is_fire_time, next_fire
from scheduling.services import refresh_next_run

logger = logging.getLogger(__name__)

Status = ExecutionSession.Status
Trigger = ExecutionSession.Trigger

# Any fixed number serves: it names the one advisory lock admission takes.
ADMISSION_LOCK_KEY = 7_411_903
# How long an admission request stands for the ones after it. A task
# normally starts within milliseconds; past this, requests go out again, so a
# lost or purged task delays admission by at most this much.
ADMISSION_REQUEST_TTL_MS = 2000
# The most of a run's output or error that is kept.
RESULT_TEXT_LIMIT = 10_000


# --- queueing -------------------------------------------------------------------


def queue_run(
    agent: AIAgent,
    *,
    trigger: str,
    scheduled_for: datetime,
    attempt: int = 1,
    not_before: datetime | None = None,
) -> ExecutionSession | None:
    """Record a run as QUEUED; None if this slot and attempt already exist."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                session = ExecutionSession.objects.create(
                    agent=agent,
                    trigger=trigger,
                    attempt=attempt,
                    priority=agent.priority,
                    scheduled_for=scheduled_for,
                    not_before=not_before or timezone.now(),
                )
        except IntegrityError:
            return None
        AIAgent.objects.filter(
            pk=agent.pk, status__in=[AIAgent.Status.IDLE, AIAgent.Status.ERROR]
        ).update(status=AIAgent.Status.QUEUED)
        transaction.on_commit(request_admission)
    return session


def run_now(agent: AIAgent) -> ExecutionSession:
    session = queue_run(agent, trigger=Trigger.MANUAL, scheduled_for=timezone.now())
    assert session is not None  # manual runs have no uniqueness rule
    return session


def dispatch_scheduled_run(agent_id: str, scheduled_for: datetime) -> ExecutionSession | None:
    """Beat fired an agent's schedule for the slot ``scheduled_for``."""
    agent = AIAgent.objects.filter(pk=agent_id).first()
    if agent is None or not (agent.schedule_enabled and agent.schedule_expression):
        return None
    cron = parse_cron(agent.schedule_expression)
    local_slot = scheduled_for.astimezone(_zone(agent.schedule_timezone))
    # Beat's crontab cannot say "the 13th or a Friday"; it fires on every
    # day and the cron day rule is applied here.
    if not cron.matches_day(local_slot.date()):
        refresh_next_run(agent, after=scheduled_for)
        return None
    session = queue_run(agent, trigger=Trigger.SCHEDULE, scheduled_for=scheduled_for)
    refresh_next_run(agent, after=scheduled_for)
    return session


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def request_admission() -> None:
    """Ask the workers for an admission pass.

    Requests coalesce: while one admission task waits in the broker, further
    requests join it instead of sending their own, since the pass clears the
    flag before it reads and so sees everything committed before the flag
    was set. A burst of a thousand queued runs costs a few passes, not a
    thousand.
    """
    from scheduling.tasks import admit

    if not _first_request(_flag_key(ADMISSION_FLAG), ttl_ms=ADMISSION_REQUEST_TTL_MS):
        return
    try:
        admit.apply_async(priority=0)
    except Exception:
        # The periodic tick admits as well; a broker hiccup only delays.
        _forget_request(_flag_key(ADMISSION_FLAG))
        logger.warning("Could not ask for admission", exc_info=True)


ADMISSION_FLAG = "admission-requested"
STATUS_WINDOW_FLAG = "status-window"
STATUS_TRAILING_FLAG = "status-trailing"


def _flag_key(flag: str) -> str:
    # Flags are per queue: deployments (or test runs) sharing one Redis have
    # their own workers. Celery's configuration, not Django's, is the one
    # that names the queue the tasks actually go to.
    return f"neonhub:{flag}:{current_app.conf.task_default_queue}"


def _first_request(key: str, *, ttl_ms: int) -> bool:
    """Set ``key`` unless it is set; True if this call set it (or Redis cannot say).

    The expiry bounds the harm of a request whose task was lost: later
    requests go out again once it passes.
    """
    try:
        return bool(fast_redis().set(key, 1, nx=True, px=ttl_ms))
    except RedisError:
        return True


def _forget_request(key: str) -> None:
    with contextlib.suppress(RedisError):
        fast_redis().delete(key)


# --- admission ------------------------------------------------------------------


def _lock_admission() -> None:
    # SQLite runs every transaction here as IMMEDIATE, which already
    # serialises writers; PostgreSQL needs an explicit lock.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADMISSION_LOCK_KEY])


def admit_waiting_runs(*, reclaim: bool = True) -> list[str]:
    """Start as many waiting runs as free slots allow, highest priority first.

    Returns the ids of the admitted sessions, whose execution has been sent
    to the workers. ``reclaim`` first frees the slots of lost runs; the pass a
    worker makes after each run leaves that to the periodic tick.
    """
    _forget_request(_flag_key(ADMISSION_FLAG))
    if reclaim:
        reclaim_lost_runs()
    now = timezone.now()
    admitted: list[tuple[str, int]] = []
    with transaction.atomic():
        _lock_admission()
        busy_agents = set(
            ExecutionSession.objects.filter(status=Status.RUNNING).values_list(
                "agent_id", flat=True
            )
        )
        free = settings.SCHEDULER_MAX_CONCURRENT - len(busy_agents)
        if free <= 0:
            return []
        waiting = (
            ExecutionSession.objects.filter(status=Status.QUEUED, not_before__lte=now)
            .exclude(agent_id__in=busy_agents)
            .order_by("-priority", "created_at")
            .values_list("id", "agent_id", "priority")
        )
        # A bounded read, not a cursor: SQLite gives no isolation between a
        # cursor and updates on the same connection.
        for session_id, agent_id, priority in list(waiting[: free * 10 + 100]):
            if agent_id in busy_agents:
                continue
            claimed = ExecutionSession.objects.filter(pk=session_id, status=Status.QUEUED).update(
                status=Status.RUNNING,
                lease_expires_at=now + timedelta(seconds=settings.SCHEDULER_LEASE_SECONDS),
            )
            if claimed:
                busy_agents.add(agent_id)
                admitted.append((str(session_id), priority))
                if len(admitted) >= free:
                    break
        transaction.on_commit(lambda: _announce_admitted(admitted))
    return [session_id for session_id, _ in admitted]


def _announce_admitted(admitted: list[tuple[str, int]]) -> None:
    _send_executions(admitted)
    if admitted:
        request_status_broadcast()


def _send_executions(admitted: list[tuple[str, int]]) -> None:
    from scheduling.tasks import execute_run

    for session_id, priority in admitted:
        # Redis serves priority 0 first; CRITICAL (4) maps to 0.
        execute_run.apply_async([session_id], priority=max(0, 8 - 2 * priority))


def reclaim_lost_runs() -> int:
    """Fail the runs whose worker stopped renewing their lease (killed, hung, timed out)."""
    now = timezone.now()
    lost = list(
        ExecutionSession.objects.filter(
            status=Status.RUNNING, lease_expires_at__lt=now
        ).values_list("id", "started_at")
    )
    reclaimed = 0
    for session_id, started_at in lost:
        timeout = settings.SCHEDULER_RUN_TIMEOUT
        if started_at is not None and now - started_at >= timedelta(seconds=timeout):
            message = f"Run timed out after {timeout} s."
        else:
            message = "Worker lost: the run stopped reporting and its slot was reclaimed."
        if finish_failed(session_id, message, only_if_lease_before=now):
            reclaimed += 1
    return reclaimed


# --- running --------------------------------------------------------------------


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
        refresh_agent_status(
            agent, finished=Status.SUCCEEDED, also={"retry_count": 0, "last_error": ""}
        )
        events.emit_completed(session, agent)
        metrics.run_finished(session)
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
                not_before=now + timedelta(seconds=delay),
            )
            transaction.on_commit(lambda: later.call_later(delay, request_admission))
        refresh_agent_status(agent, finished=Status.FAILED)
        events.emit_failed(session, agent, will_retry=will_retry)
        metrics.run_finished(session, will_retry=will_retry)
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


def cancel_session(session: ExecutionSession) -> bool:
    """Cancel a queued or running session; False if it had already finished."""
    now = timezone.now()
    with transaction.atomic():
        done = ExecutionSession.objects.filter(
            pk=session.pk, status__in=[Status.QUEUED, Status.RUNNING]
        ).update(
            status=Status.CANCELLED,
            success=False,
            completed_at=now,
            error_message="Cancelled.",
            lease_expires_at=None,
        )
        if not done:
            return False
        session.refresh_from_db()
        if session.started_at:
            ExecutionSession.objects.filter(pk=session.pk).update(
                duration_ms=_duration_ms(session.started_at, now)
            )
            session.duration_ms = _duration_ms(session.started_at, now)
        refresh_agent_status(session.agent, finished=Status.CANCELLED)
        metrics.run_finished(session)
        transaction.on_commit(_after_run_finished)
    return True


def refresh_agent_status(
    agent: AIAgent, *, finished: str | None = None, also: dict | None = None
) -> None:
    """Derive the agent's status from its sessions, in one statement.

    ``finished`` is the outcome of a run that just ended, which is then the
    latest; otherwise the latest finished session is looked up. ``also`` are
    further fields to write in the same update. ``agent.status`` in memory is
    left as it was: nothing after a finish reads it, and reading it back
    would cost a query per run.
    """
    sessions = ExecutionSession.objects.filter(agent_id=OuterRef("pk"))
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
    AIAgent.objects.filter(pk=agent.pk).update(
        status=Case(
            When(
                Exists(sessions.filter(status=Status.RUNNING, started_at__isnull=False)),
                then=Value(AIAgent.Status.RUNNING),
            ),
            When(
                Exists(sessions.filter(status__in=[Status.QUEUED, Status.RUNNING])),
                then=Value(AIAgent.Status.QUEUED),
            ),
            default=Value(settled),
        ),
        **(also or {}),
    )


def _after_run_finished() -> None:
    request_admission()
    request_status_broadcast()


STATUS_WINDOW_MS = 500
STATUS_WINDOW_MARGIN_MS = 20


def request_status_broadcast() -> None:
    """Broadcast the scheduler status soon, about twice a second at most.

    The first request in a quiet moment goes out at once and opens a half
    second window; requests within it share one trailing broadcast at its
    end, which reads the figures then and so reflects every run finished
    before it. The trailing one waits in this process, not in the broker
    (``later``), and opens the next window as it goes out.
    """
    if _first_request(_flag_key(STATUS_WINDOW_FLAG), ttl_ms=STATUS_WINDOW_MS):
        _send_status_broadcast()
    # The trailing flag outlives its timer: it is cleared when the broadcast
    # goes out, and expires by itself only if this process dies first.
    elif _first_request(_flag_key(STATUS_TRAILING_FLAG), ttl_ms=2 * STATUS_WINDOW_MS):
        later.call_later(_window_left_seconds(), _send_trailing_status_broadcast)


def _window_left_seconds() -> float:
    """Until just before the window closes: a request that found it closed
    while its trailing broadcast was still to come would go out at once, a
    second broadcast in the same moment."""
    try:
        left_ms = fast_redis().pttl(_flag_key(STATUS_WINDOW_FLAG))
    except RedisError:
        left_ms = STATUS_WINDOW_MS
    return max(0, left_ms - STATUS_WINDOW_MARGIN_MS) / 1000


def _send_trailing_status_broadcast() -> None:
    """Close the window with a broadcast and open the next one.

    Requests from here on need a broadcast of their own, since this one may
    read before they commit; they get the next window's trailing broadcast
    rather than one at once, which keeps a steady stream of runs at one
    broadcast per window.
    """
    with contextlib.suppress(RedisError):
        pipe = fast_redis().pipeline()
        pipe.delete(_flag_key(STATUS_TRAILING_FLAG))
        pipe.set(_flag_key(STATUS_WINDOW_FLAG), 1, px=STATUS_WINDOW_MS)
        pipe.execute()
    _send_status_broadcast()


def _send_status_broadcast() -> None:
    from scheduling.tasks import publish_status

    try:
        publish_status.apply_async(priority=0)
    except Exception:
        logger.warning("Could not ask for a status update", exc_info=True)


def session_is_running(session_id: str) -> bool:
    return ExecutionSession.objects.filter(pk=session_id, status=Status.RUNNING).exists()


# --- bulk dispatch (beat's index) ----------------------------------------------


@dataclass(frozen=True)
class SlotDispatch:
    """What one slot's bulk dispatch did."""

    slot: datetime
    queued: int  # sessions this call recorded
    duplicates: int  # already recorded for this slot (another beat, a re-send)
    skipped: int  # agents no longer scheduled for this slot


def dispatch_due_slots(due: Mapping[datetime, Iterable[object]]) -> list[SlotDispatch]:
    """Record the scheduled runs of many agents at once, one slot at a time.

    ``due`` maps each slot to the ids of the agents beat found due in it. For
    each slot: one read of those agents, then, in batches of a few thousand
    (highest priority first), one ``INSERT`` of QUEUED sessions that skips the
    rows the uniqueness rule already holds (so two beats, or a beat and the
    per-agent dispatch task, still record a slot once) and a few updates of the
    agents, each batch committed on its own so runs become visible as they are
    written; then one admission request for everything. (Asking earlier would
    set the workers running against the rest of the writes.) An agent whose
    schedule no longer includes the slot (edited meanwhile, paused, removed)
    is left alone. Safe to repeat after a failure part-way.
    """
    results = [_dispatch_slot(slot, list(agent_ids)) for slot, agent_ids in due.items()]
    if any(result.queued for result in results):
        transaction.on_commit(request_admission)
    return results


def _dispatch_slot(slot: datetime, agent_ids: list[object]) -> SlotDispatch:
    rows: list[tuple[object, int, ScheduleSpec]] = []
    for chunk in _chunks(agent_ids, _parameter_batch()):
        for agent_id, priority, expression, zone in AIAgent.objects.filter(
            pk__in=chunk, schedule_enabled=True, schedule_expression__isnull=False
        ).values_list("id", "priority", "schedule_expression", "schedule_timezone"):
            rows.append((agent_id, priority, ScheduleSpec(expression, zone)))

    valid: dict[ScheduleSpec, bool] = {}
    wanted: list[tuple[object, int, ScheduleSpec]] = []
    for agent_id, priority, spec in rows:
        if spec not in valid:
            valid[spec] = _fires_at(spec, slot)
        if valid[spec]:
            wanted.append((agent_id, priority, spec))
    wanted.sort(key=lambda row: -row[1])

    recorded = 0
    for batch in _chunks(wanted, _dispatch_batch()):
        recorded += _queue_batch(slot, batch)
    return SlotDispatch(
        slot=slot,
        queued=recorded,
        duplicates=len(wanted) - recorded,
        skipped=len(agent_ids) - len(wanted),
    )


def _queue_batch(slot: datetime, batch: list[tuple[object, int, ScheduleSpec]]) -> int:
    now = timezone.now()
    sessions = [
        ExecutionSession(
            agent_id=agent_id,
            trigger=Trigger.SCHEDULE,
            attempt=1,
            priority=priority,
            scheduled_for=slot,
            not_before=now,
        )
        for agent_id, priority, _ in batch
    ]
    by_next_run: dict[datetime | None, list[object]] = {}
    for agent_id, _, spec in batch:
        by_next_run.setdefault(next_fire(spec, slot), []).append(agent_id)
    with transaction.atomic():
        ExecutionSession.objects.bulk_create(sessions, ignore_conflicts=True)
        recorded = 0
        # The insert skips conflicts silently; ours are the rows with our ids.
        for chunk in _chunks([session.pk for session in sessions], _parameter_batch()):
            ours = ExecutionSession.objects.filter(pk__in=chunk)
            recorded += ours.count()
            AIAgent.objects.filter(
                pk__in=ours.values("agent_id"),
                status__in=[AIAgent.Status.IDLE, AIAgent.Status.ERROR],
            ).update(status=AIAgent.Status.QUEUED)
        for next_run_at, ids in by_next_run.items():
            for chunk in _chunks(ids, _parameter_batch()):
                AIAgent.objects.filter(pk__in=chunk).update(next_run_at=next_run_at)
    return recorded


def _fires_at(spec: ScheduleSpec, slot: datetime) -> bool:
    try:
        return is_fire_time(spec, slot)
    except (CronError, ValueError):
        logger.warning("Agent schedule %r in %s cannot be used", spec.expression, spec.timezone)
        return False


def _parameter_batch() -> int:
    # SQLite caps the parameters of one statement; 900 stays below every build's cap.
    return 900 if connection.vendor == "sqlite" else 10_000


def _dispatch_batch() -> int:
    # Big enough that statements stay few, small enough that the first runs
    # are visible well before the last are written.
    return min(_parameter_batch(), 2000)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
