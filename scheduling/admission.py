"""Admission: which waiting runs take the free slots of the global cap.

One pass at a time (an advisory lock on PostgreSQL, SQLite's write lock),
highest priority first, then oldest; each run is claimed with a conditional
update and a lease, and only claimed runs become broker messages.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.models import ExecutionSession
from scheduling import pacing, runs

Status = ExecutionSession.Status

# Any fixed number serves: it names the one advisory lock admission takes.
ADMISSION_LOCK_KEY = 7_411_903
EXECUTE_RUN_TASK = "scheduling.execute_run"


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
    pacing.admission_pass_starting()
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
        # Cancelled runs whose runner has not stopped yet still hold their slots.
        stopping = list(
            ExecutionSession.objects.filter(
                status=Status.CANCELLED, lease_expires_at__gt=now
            ).values_list("agent_id", flat=True)
        )
        free = settings.SCHEDULER_MAX_CONCURRENT - len(busy_agents) - len(stopping)
        busy_agents.update(stopping)
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
        pacing.request_status_broadcast()


def _send_executions(admitted: list[tuple[str, int]]) -> None:
    for session_id, priority in admitted:
        # Redis serves priority 0 first; CRITICAL (4) maps to 0.
        pacing.send_task(EXECUTE_RUN_TASK, session_id, priority=max(0, 8 - 2 * priority))


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
        if runs.finish_failed(str(session_id), message, only_if_lease_before=now):
            reclaimed += 1
    return reclaimed
