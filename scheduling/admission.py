"""Admission: which waiting runs take the free slots of the caps.

One pass at a time (an advisory lock on PostgreSQL, SQLite's write lock),
highest priority first; each run is claimed with a conditional update and a
lease, and only claimed runs become broker messages.

Within a priority, runs of one owner go oldest first. When several owners'
runs wait at the same priority they take turns: the owner with the fewest
running sessions first, then the one served least recently (their agents'
``last_run_at``), then the one whose oldest run has waited longest. Running
sessions also count against ``SCHEDULER_MAX_CONCURRENT_PER_USER`` and
``SCHEDULER_TYPE_LIMITS``; a run whose owner or agent type is at its cap is
passed over and the runs behind it may go. Every cap counts ``RUNNING``
sessions, so a lost run's slot comes back when its lease is reclaimed.

The pass runs after every finished run, with thousands of runs waiting, so it
reads little: the head of the waiting runs in index order, as many as the free
slots need and a margin; only at a priority where more than one owner waits
does it list those owners (a skip scan of the ``session_waiting_by_owner``
index, one probe per owner) and read each one's runs as its turn comes.
"""

from __future__ import annotations

import heapq
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession
from scheduling import pacing, runs

Status = ExecutionSession.Status

# Any fixed number serves: it names the one advisory lock admission takes.
ADMISSION_LOCK_KEY = 7_411_903
EXECUTE_RUN_TASK = "scheduling.execute_run"
# A read that ran out of runs it could start before the slots were filled is
# repeated (what stopped its runs is then excluded) at most this often.
MAX_REREADS = 3


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
    with transaction.atomic():
        _lock_admission()
        admission = _Pass(timezone.now())
        if admission.free <= 0:
            return []
        admission.fill()
        admitted = admission.admitted
        transaction.on_commit(lambda: _announce_admitted(admitted))
    return [session_id for session_id, _ in admitted]


@dataclass(frozen=True)
class _Waiting:
    id: uuid.UUID
    agent_id: uuid.UUID
    priority: int
    # Null for a session recorded without queue_run: it counts for no user.
    owner_id: Any
    # Read only when type limits are set ("" otherwise).
    agent_type: str


@dataclass
class _Turn:
    """One owner's place in the turns at a priority, and the runs read for them."""

    owner_id: Any
    served: tuple
    oldest: Any
    rows: deque[_Waiting] = field(default_factory=deque)
    complete: bool = False
    reads: int = 0


class _Pass:
    """One admission pass: what runs, which caps are full, what it has claimed."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.per_user = settings.SCHEDULER_MAX_CONCURRENT_PER_USER
        self.type_limits: dict[str, int] = settings.SCHEDULER_TYPE_LIMITS
        holding = ("agent_id", "owner_id", "agent__agent_type")
        running = list(ExecutionSession.objects.filter(status=Status.RUNNING).values_list(*holding))
        # Cancelled runs whose runner has not stopped yet still hold their slots.
        running += ExecutionSession.objects.filter(
            status=Status.CANCELLED, lease_expires_at__gt=now
        ).values_list(*holding)
        self.busy_agents: set[uuid.UUID] = set()
        self.by_owner: Counter = Counter()
        self.by_type: Counter = Counter()
        for agent_id, owner_id, agent_type in running:
            self.busy_agents.add(agent_id)
            self.by_owner[owner_id] += 1
            self.by_type[agent_type] += 1
        self.free = settings.SCHEDULER_MAX_CONCURRENT - len(running)
        self.admitted: list[tuple[str, int]] = []
        self.turns_taken = 0

    # --- caps -----------------------------------------------------------------------

    def owner_is_full(self, owner_id: Any) -> bool:
        return bool(self.per_user and owner_id is not None) and (
            self.by_owner[owner_id] >= self.per_user
        )

    def type_is_full(self, agent_type: str) -> bool:
        limit = self.type_limits.get(agent_type)
        return limit is not None and self.by_type[agent_type] >= limit

    def may_start(self, row: _Waiting) -> bool:
        return not (
            row.agent_id in self.busy_agents
            or self.owner_is_full(row.owner_id)
            or self.type_is_full(row.agent_type)
        )

    def claim(self, row: _Waiting) -> bool:
        claimed = ExecutionSession.objects.filter(pk=row.id, status=Status.QUEUED).update(
            status=Status.RUNNING,
            lease_expires_at=self.now + timedelta(seconds=settings.SCHEDULER_LEASE_SECONDS),
        )
        if claimed:
            self.busy_agents.add(row.agent_id)
            self.by_owner[row.owner_id] += 1
            self.by_type[row.agent_type] += 1
            self.admitted.append((str(row.id), row.priority))
            self.free -= 1
        return bool(claimed)

    # --- reads ----------------------------------------------------------------------

    def batch(self) -> int:
        return self.free * 10 + 100

    def waiting(self) -> QuerySet:
        """The waiting runs that may start now, less those a full cap holds back."""
        waiting = ExecutionSession.objects.filter(status=Status.QUEUED, not_before__lte=self.now)
        if self.busy_agents:
            waiting = waiting.exclude(agent_id__in=self.busy_agents)
        if self.per_user:
            full = [o for o in self.by_owner if o is not None and self.owner_is_full(o)]
            if full:
                waiting = waiting.exclude(owner_id__in=full)
        if self.type_limits:
            full_types = [t for t in self.type_limits if self.type_is_full(t)]
            if full_types:
                waiting = waiting.exclude(agent__agent_type__in=full_types)
        return waiting

    def read(self, waiting: QuerySet, limit: int) -> list[_Waiting]:
        # A bounded read, not a cursor: SQLite gives no isolation between a
        # cursor and updates on the same connection.
        # The agent's type costs a join, made only when some type has a limit.
        typed = bool(self.type_limits)
        fields = ["id", "agent_id", "priority", "owner_id"] + ["agent__agent_type"] * typed
        return [
            _Waiting(row[0], row[1], row[2], row[3], row[4] if typed else "")
            for row in waiting.values_list(*fields)[:limit]
        ]

    # --- the pass -------------------------------------------------------------------

    def fill(self) -> None:
        limit = self.batch()
        head = self.read(self.waiting().order_by("-priority", "created_at"), limit)
        head_full = len(head) == limit
        level = head[0].priority if head else None
        while level is not None and self.free > 0:
            rows = [row for row in head if row.priority == level]
            # The head holds every run of this priority that could start.
            complete = not head_full or head[-1].priority < level
            if _several_owners_wait(level):
                self.take_turns(level, rows, complete)
            else:
                self.take_in_order(level, rows, complete)
            level = self.next_level(level, head, head_full)

    def next_level(self, level: int, head: list[_Waiting], head_full: bool) -> int | None:
        lower = [row.priority for row in head if row.priority < level]
        if lower:
            return lower[0]
        if not head_full or self.free <= 0:
            return None
        return (
            self.waiting()
            .filter(priority__lt=level)
            .order_by("-priority")
            .values_list("priority", flat=True)
            .first()
        )

    def take_in_order(self, level: int, rows: list[_Waiting], complete: bool) -> None:
        """One owner waits at this priority: oldest first, as the index gives them."""
        for _ in range(MAX_REREADS + 1):
            for row in rows:
                if self.free <= 0:
                    return
                if self.may_start(row):
                    self.claim(row)
            if complete or self.free <= 0:
                return
            limit = self.batch()
            rows = self.read(self.waiting().filter(priority=level).order_by("created_at"), limit)
            complete = len(rows) < limit

    def take_turns(self, level: int, head_rows: list[_Waiting], complete: bool) -> None:
        """Several owners wait at this priority: one run each in turn, as the order says."""
        turns = [
            _Turn(owner_id=owner_id, served=served, oldest=oldest, complete=complete)
            for owner_id, served, oldest in _owners_waiting(level)
            if not self.owner_is_full(owner_id)
        ]
        by_owner = {turn.owner_id: turn for turn in turns}
        for seen in head_rows:
            if seen.owner_id in by_owner:
                by_owner[seen.owner_id].rows.append(seen)
        queue = [(self.turn_order(turn), index, turn) for index, turn in enumerate(turns)]
        heapq.heapify(queue)
        while queue and self.free > 0:
            _, index, turn = heapq.heappop(queue)
            row = self.next_run_of(turn, level)
            if row is None:
                continue
            if self.claim(row):
                self.turns_taken += 1
                # Served now: behind everyone this pass has not served yet.
                turn.served = (2, self.turns_taken)
            if not self.owner_is_full(turn.owner_id):
                heapq.heappush(queue, (self.turn_order(turn), index, turn))

    def turn_order(self, turn: _Turn) -> tuple:
        return (self.by_owner[turn.owner_id], turn.served, turn.oldest)

    def next_run_of(self, turn: _Turn, level: int) -> _Waiting | None:
        while True:
            while turn.rows:
                row = turn.rows.popleft()
                if self.may_start(row):
                    return row
            if turn.complete or turn.reads > MAX_REREADS:
                return None
            turn.reads += 1
            limit = self.free + 10
            owner = (
                {"owner_id__isnull": True} if turn.owner_id is None else {"owner_id": turn.owner_id}
            )
            rows = self.read(
                self.waiting().filter(priority=level, **owner).order_by("created_at"), limit
            )
            turn.rows.extend(rows)
            turn.complete = len(rows) < limit


def _several_owners_wait(level: int) -> bool:
    """Whether runs of more than one owner wait at this priority: at most three index probes."""
    waiting = ExecutionSession.objects.filter(status=Status.QUEUED, priority=level)
    lowest = (
        waiting.filter(owner_id__isnull=False)
        .order_by("owner_id")
        .values_list("owner_id", flat=True)
        .first()
    )
    if lowest is None:
        return False
    return (
        waiting.filter(owner_id__gt=lowest).exists()
        or waiting.filter(owner_id__isnull=True).exists()
    )


def _owners_waiting(level: int) -> list[tuple[Any, tuple, Any]]:
    """Each owner with runs waiting at this priority: (owner, when last served, oldest run).

    The owners come from a skip scan of ``session_waiting_by_owner`` (each
    step the next owner above the last, one index probe), so the cost grows
    with the owners, not with their runs. The times are compared only with
    each other, as the database returns them (SQLite gives text).
    """
    sessions = ExecutionSession._meta.db_table
    agents = AIAgent._meta.db_table
    # The status as a literal: PostgreSQL uses a partial index only for a
    # query whose condition it can see implies the index's.
    queued = f"w.status = '{Status.QUEUED.value}' AND w.priority = %s"
    sql = f"""
        WITH RECURSIVE owners(owner_id) AS (
            SELECT (
                SELECT w.owner_id FROM {sessions} w
                WHERE {queued} AND w.owner_id IS NOT NULL ORDER BY w.owner_id LIMIT 1
            )
            UNION ALL
            SELECT (
                SELECT w.owner_id FROM {sessions} w
                WHERE {queued} AND w.owner_id > owners.owner_id ORDER BY w.owner_id LIMIT 1
            )
            FROM owners WHERE owners.owner_id IS NOT NULL
        )
        SELECT owners.owner_id,
            (SELECT MAX(a.last_run_at) FROM {agents} a WHERE a.owner_id = owners.owner_id),
            (
                SELECT w.created_at FROM {sessions} w
                WHERE {queued} AND w.owner_id = owners.owner_id ORDER BY w.created_at LIMIT 1
            )
        FROM owners WHERE owners.owner_id IS NOT NULL
        UNION ALL
        SELECT NULL, NULL, (
            SELECT w.created_at FROM {sessions} w
            WHERE {queued} AND w.owner_id IS NULL ORDER BY w.created_at LIMIT 1
        )
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [level] * 4)
        rows = cursor.fetchall()
    return [
        # Never served goes before served at any time.
        (owner_id, (0,) if served is None else (1, served), oldest)
        for owner_id, served, oldest in rows
        if oldest is not None
    ]


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
