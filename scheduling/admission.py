"""Admission: which waiting runs take the free slots of the caps.

One pass at a time (an advisory lock on PostgreSQL, SQLite's write lock),
highest priority first; each run is claimed with a conditional update and a
lease, and only claimed runs become broker messages.

Within a priority, one owner's runs go oldest first. When several owners'
runs wait at the same priority they take turns, one run each: round the
owners in id order, on from the owner served last at that priority (a note in
Redis; without it, from the owner of the run that has waited longest), and of
the next few owners in the round the one with the fewest runs going first.
Running sessions also count against ``SCHEDULER_MAX_CONCURRENT_PER_USER`` and
``SCHEDULER_TYPE_LIMITS``; a run whose owner or agent type is at its cap is
passed over and the runs behind it may go. Every cap counts ``RUNNING``
sessions, so a lost run's slot comes back when its lease is reclaimed.

The pass runs after every finished run, with thousands of runs waiting, so it
reads little: the head of the waiting runs in index order, as many as the free
slots need and a margin; only at a priority where more than one owner waits
does it read the next owners of the round (a skip scan of the
``session_waiting_by_owner`` index, one probe per owner, as many owners as
the free slots and a margin) and each one's runs as its turn comes.
"""

from __future__ import annotations

import contextlib
import heapq
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from redis.exceptions import RedisError

from agents.models import ExecutionSession
from core.redis import fast_redis
from scheduling import pacing, runs

Status = ExecutionSession.Status

# Any fixed number serves: it names the one advisory lock admission takes.
ADMISSION_LOCK_KEY = 7_411_903
EXECUTE_RUN_TASK = "scheduling.execute_run"
# A read that ran out of runs it could start before the slots were filled is
# repeated (what stopped its runs is then excluded) at most this often.
MAX_REREADS = 3
# Where the turns stand is a hint: lost, the round starts again from the
# owner of the oldest run. A day without a pass that takes turns forgets it.
TURNS_TTL_SECONDS = 86_400
# Owners served in this pass go behind every owner not served yet.
_SERVED = 1 << 62


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
    position: int
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
        sessions = ExecutionSession.objects.order_by()
        running = list(sessions.filter(status=Status.RUNNING).values_list(*holding))
        # Cancelled runs whose runner has not stopped yet still hold their slots.
        running += sessions.filter(status=Status.CANCELLED, lease_expires_at__gt=now).values_list(
            *holding
        )
        self.busy_agents: set[uuid.UUID] = set()
        self.by_owner: Counter = Counter()
        self.by_type: Counter = Counter()
        for agent_id, owner_id, agent_type in running:
            self.busy_agents.add(agent_id)
            self.by_owner[owner_id] += 1
            self.by_type[agent_type] += 1
        self.free = settings.SCHEDULER_MAX_CONCURRENT - len(running)
        self.admitted: list[tuple[str, int]] = []

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
            if len({row.owner_id for row in rows}) > 1 or _several_owners_wait(level):
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
        """Several owners wait at this priority: one run each in turn (see the module)."""
        size = self.free + 10
        last = _last_served(level)
        if last is not None:
            rotation = _rotation(level, after=last, batch=size)
        else:
            rotation = _rotation(
                level, start=head_rows[0].owner_id if head_rows else None, batch=size
            )
        seen: dict[Any, list[_Waiting]] = {}
        for seen_row in head_rows:
            seen.setdefault(seen_row.owner_id, []).append(seen_row)
        window = _Window(self, rotation, seen, complete, size)
        served = None
        while self.free > 0 and (turn := window.pop()) is not None:
            row = self.next_run_of(turn, level)
            if row is None:
                continue
            if self.claim(row):
                served = turn.owner_id
                window.served(turn)
            window.push(turn)
        if served is not None:
            _remember_served(level, served)

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


class _Window:
    """The next few owners of the round, the one with the fewest runs going first.

    Drawn from the rotation as owners drop out (no run left that could
    start, or their cap reached), so the pass reads only as many owners as
    it needs.
    """

    def __init__(
        self,
        admission: _Pass,
        rotation: Iterator[Any],
        seen: dict[Any, list[_Waiting]],
        complete: bool,
        size: int,
    ) -> None:
        self.admission = admission
        self.rotation = rotation
        self.seen = seen
        self.complete = complete
        self.size = size
        self.drawn = 0
        self.served_count = 0
        self.queue: list[tuple[int, int, _Turn]] = []

    def pop(self) -> _Turn | None:
        self.top_up()
        return heapq.heappop(self.queue)[2] if self.queue else None

    def push(self, turn: _Turn) -> None:
        if not self.admission.owner_is_full(turn.owner_id):
            heapq.heappush(
                self.queue, (self.admission.by_owner[turn.owner_id], turn.position, turn)
            )

    def served(self, turn: _Turn) -> None:
        # Behind every owner not served in this pass yet.
        self.served_count += 1
        turn.position = _SERVED + self.served_count

    def top_up(self) -> None:
        while len(self.queue) < self.size:
            owner_id = next(self.rotation, _DONE)
            if owner_id is _DONE:
                return
            self.drawn += 1
            turn = _Turn(owner_id, self.drawn, complete=self.complete)
            turn.rows.extend(self.seen.get(owner_id, ()))
            self.push(turn)


_DONE = object()


def _turns_key(level: int) -> str:
    # Per queue, as pacing's flags are: stacks sharing a Redis database
    # (test runs) have their own workers and their own database.
    return f"neonhub:admission-turns:{current_app.conf.task_default_queue}:{level}"


def _last_served(level: int) -> Any:
    """The owner served last at this priority by a pass that took turns, if known."""
    try:
        value = fast_redis().get(_turns_key(level))
    except RedisError:
        return None
    if value is None:
        return None
    owner = ExecutionSession._meta.get_field("owner")
    return owner.target_field.to_python(value.decode() if isinstance(value, bytes) else value)


def _remember_served(level: int, owner_id: Any) -> None:
    with contextlib.suppress(RedisError):
        fast_redis().set(_turns_key(level), str(owner_id), ex=TURNS_TTL_SECONDS)


def _several_owners_wait(level: int) -> bool:
    """Whether runs of more than one owner wait at this priority: one statement, three
    index probes (the lowest and highest owner, and any run without one)."""
    sessions = ExecutionSession._meta.db_table
    queued = _queued_at_level("w")
    # ORDER BY ... LIMIT 1 rather than MIN or EXISTS: both databases then
    # walk the index and stop at its first entry.
    sql = f"""
        SELECT
            (SELECT w.owner_id FROM {sessions} w WHERE {queued} AND w.owner_id IS NOT NULL
             ORDER BY w.owner_id LIMIT 1),
            (SELECT w.owner_id FROM {sessions} w WHERE {queued} AND w.owner_id IS NOT NULL
             ORDER BY w.owner_id DESC LIMIT 1),
            (SELECT 1 FROM {sessions} w WHERE {queued} AND w.owner_id IS NULL LIMIT 1)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [level] * 3)
        lowest, highest, ownerless = cursor.fetchone()
    return lowest != highest or (lowest is not None and ownerless is not None)


def _queued_at_level(alias: str) -> str:
    # The status as a literal: PostgreSQL uses a partial index only for a
    # query whose condition it can see implies the index's.
    return f"{alias}.status = '{Status.QUEUED.value}' AND {alias}.priority = %s"


def _rotation(level: int, *, after: Any = None, start: Any = None, batch: int) -> Iterator[Any]:
    """The owners with runs waiting at this priority, in id order from just
    above ``after`` (or from ``start`` itself), round to the lowest and up to
    where it began; then None if ownerless runs wait too.

    Read lazily, ``batch`` owners at a time, so a pass that fills its slots
    from the first few owners reads no more of them.
    """
    bound = after if after is not None else start
    # Up from the start point...
    low, inclusive = bound, after is None
    while True:
        owners = _owners_from(level, low, inclusive=inclusive, limit=batch)
        yield from owners
        if len(owners) < batch:
            break
        low, inclusive = owners[-1], False
    # ...then round from the lowest, stopping where the round began.
    if bound is not None:
        low, inclusive = None, True
        while True:
            owners = _owners_from(level, low, inclusive=inclusive, limit=batch)
            for owner_id in owners:
                if owner_id > bound or (owner_id == bound and after is None):
                    break
                yield owner_id
            else:
                if len(owners) == batch:
                    low, inclusive = owners[-1], False
                    continue
            break
    if ExecutionSession.objects.filter(
        status=Status.QUEUED, priority=level, owner_id__isnull=True
    ).exists():
        yield None


def _owners_from(level: int, low: Any, *, inclusive: bool, limit: int) -> list[Any]:
    """Up to ``limit`` owners with runs waiting at this priority, in id order from ``low``.

    A skip scan of ``session_waiting_by_owner``: each step is one index
    probe for the next owner above the last, so the cost grows with the
    owners read, not with their runs.
    """
    sessions = ExecutionSession._meta.db_table
    queued = _queued_at_level("w")
    if low is None:
        first, params = "w.owner_id IS NOT NULL", [level]
    else:
        first, params = f"w.owner_id {'>=' if inclusive else '>'} %s", [level, low]
    sql = f"""
        WITH RECURSIVE owners(owner_id, step) AS (
            SELECT (
                SELECT w.owner_id FROM {sessions} w
                WHERE {queued} AND {first} ORDER BY w.owner_id LIMIT 1
            ), 1
            UNION ALL
            SELECT (
                SELECT w.owner_id FROM {sessions} w
                WHERE {queued} AND w.owner_id > owners.owner_id ORDER BY w.owner_id LIMIT 1
            ), owners.step + 1
            FROM owners WHERE owners.owner_id IS NOT NULL AND owners.step < %s
        )
        SELECT owner_id FROM owners WHERE owner_id IS NOT NULL
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, level, limit])
        return [owner_id for (owner_id,) in cursor.fetchall()]


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
