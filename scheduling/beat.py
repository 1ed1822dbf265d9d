"""Beat's scheduler: django-celery-beat's tables, with an index of its own for agents.

django-celery-beat's ``DatabaseScheduler`` rebuilds every entry whenever any
row changes and sends one message per due entry, one tick at a time; with
thousands of agents due in the same minute that takes seconds to minutes, and
an edit while ten thousand exist stalls it. :class:`AgentScheduler` keeps the
same tables as the source of truth (so the API, the agent admin, the beat
admin and the two-way mirror all keep working) but splits the entries:

* Agent entries (a ``PeriodicTask`` named ``agent:<id>`` running the dispatch
  task on a crontab, with its agent linked) live in a
  :class:`~scheduling.due_index.DueIndex`: run times come from
  :mod:`scheduling.cron` in the schedule's timezone, so beat fires exactly
  what the preview (``nextRunAt``, ``upcomingRuns``) shows, DST and cron's day
  rule included. At each slot every due agent is queued with bulk inserts of a
  few thousand rows each (:func:`scheduling.dispatch.dispatch_due_slots`) and one
  admission request, instead of one message and one task per agent.
* Every other entry (the scheduler's own tick and status entries, anything an
  operator adds) is handled by ``DatabaseScheduler`` itself, unchanged.

Changes reach the index incrementally, at most ``SCHEDULER_CHECK_INTERVAL``
after they commit: when ``PeriodicTasks.last_update`` moves, a listing of the
enabled agent entries' ids finds additions and removals and
``PeriodicTask.date_changed`` finds edits; an agent's ``updated_at`` finds
edits that only touch the agent (two expressions that share one widened
crontab). Only those rows are read again. A full comparison every few minutes
catches writes that bypass both (``QuerySet.update`` on a crontab).

Beat records its heartbeat on every tick, and a database or broker error
costs a tick, not the process: it is logged and the work is tried again. For
missed slots (beat down or cut off) see :mod:`scheduling.due_index`: the most
recent one fires once if it is at most ``SCHEDULER_CATCHUP_SECONDS`` old,
unless the agent's catch-up policy and window say otherwise; the others are
recorded MISSED in the slot ledger.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F, Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks
from django_celery_beat.schedulers import DatabaseScheduler

from agents.models import AIAgent
from observability.heartbeats import record_beat_heartbeat
from scheduling.cron import CronError, celery_crontab_fields, parse_cron
from scheduling.dispatch import dispatch_due_slots
from scheduling.due_index import CatchupRule, DueBatch, DueIndex, ScheduleSpec
from scheduling.services import CRONTAB_FIELDS, DISPATCH_TASK, PERIODIC_TASK_PREFIX

logger = logging.getLogger(__name__)

# The entries this scheduler indexes itself; the rest stay DatabaseScheduler's.
AGENT_TASKS = Q(
    name__startswith=PERIODIC_TASK_PREFIX,
    task=DISPATCH_TASK,
    crontab__isnull=False,
    agent__isnull=False,
)

# Rows whose change stamp is this close to the newest one seen are looked at
# again: a transaction may commit after a later one, and writers' clocks differ.
CHANGE_MARGIN = timedelta(seconds=60)
FULL_CHECK_INTERVAL = timedelta(minutes=5)
RETRY_AFTER_ERROR = 1.0  # s

_ROW_FIELDS = (
    "id",
    "date_changed",
    "crontab__minute",
    "crontab__hour",
    "crontab__day_of_month",
    "crontab__month_of_year",
    "crontab__day_of_week",
    "crontab__timezone",
    "last_run_at",
    "agent__id",
    "agent__schedule_expression",
    "agent__updated_at",
    "agent__catchup_policy",
    "agent__catchup_window",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def catchup_window() -> timedelta:
    """How old a missed slot may be and still fire (settings keep it at least a
    minute: beat wakes a little after each slot, and a slot fired late is not missed)."""
    return timedelta(seconds=settings.SCHEDULER_CATCHUP_SECONDS)


@dataclass(frozen=True)
class _Known:
    agent_id: uuid.UUID
    task_changed: datetime
    agent_changed: datetime


@dataclass
class IndexStats:
    """Counters for operators and benchmarks."""

    rows_read: int = 0  # full entry rows read from the database
    entries_changed: int = 0  # entries whose schedule was (re)computed
    full_checks: int = 0
    refreshes: int = 0
    slots_fired: int = 0
    runs_queued: int = 0
    runs_skipped: int = 0  # due but no longer scheduled, or missed beyond the catch-up window
    last_refresh_seconds: float = 0.0
    last_dispatch_seconds: float = 0.0


class AgentSchedules:
    """Keeps a :class:`DueIndex` in step with the agents' beat rows.

    Index keys are ``PeriodicTask`` ids; each maps to its agent's id.
    """

    def __init__(self, *, catchup: timedelta | None = None) -> None:
        self.index = DueIndex(catchup=catchup if catchup is not None else catchup_window())
        self.stats = IndexStats()
        self._known: dict[int, _Known] = {}
        self._last_change: datetime | None = None
        self._task_mark = _EPOCH
        self._agent_mark = _EPOCH
        self._next_full_check: datetime | None = None
        self._seen_until: datetime | None = None

    def agent_id(self, task_id: Hashable) -> uuid.UUID:
        # The index is keyed by what this class put in: beat rows' integer ids.
        return self._known[cast(int, task_id)].agent_id

    def refresh(self, now: datetime) -> None:
        """Apply the rows changed since the last call (all of them on the first call)."""
        started = time.perf_counter()
        self.stats.refreshes += 1
        if self._next_full_check is None or now >= self._next_full_check:
            self._full_check(now)
        else:
            self._incremental(now)
        # Rows read from now on were not in this state before this moment.
        self._seen_until = now
        self.stats.last_refresh_seconds = time.perf_counter() - started

    def _incremental(self, now: datetime) -> None:
        stale: set[int] = set()
        # Read the change stamp before the rows: a change committed in between
        # is then seen now and, its stamp being newer, again next time.
        last_change = PeriodicTasks.last_change()
        if last_change != self._last_change:
            enabled = set(
                PeriodicTask.objects.filter(AGENT_TASKS, enabled=True).values_list("id", flat=True)
            )
            for task_id in self._known.keys() - enabled:
                self._forget(task_id)
            stale |= enabled - self._known.keys()
            edited = PeriodicTask.objects.filter(
                AGENT_TASKS, date_changed__gte=self._task_mark - CHANGE_MARGIN
            ).values_list("id", "date_changed")
            stale |= {
                task_id
                for task_id, changed in edited
                if task_id in self._known and self._known[task_id].task_changed != changed
            }
            self._last_change = last_change
        edited_agents = AIAgent.objects.filter(
            periodic_task__isnull=False, updated_at__gte=self._agent_mark - CHANGE_MARGIN
        ).values_list("periodic_task_id", "updated_at")
        stale |= {
            task_id
            for task_id, changed in edited_agents
            if task_id in self._known and self._known[task_id].agent_changed != changed
        }
        if stale:
            self._load(sorted(stale), now)

    def _full_check(self, now: datetime) -> None:
        self.stats.full_checks += 1
        self._last_change = PeriodicTasks.last_change()
        rows = list(
            PeriodicTask.objects.filter(AGENT_TASKS, enabled=True).values_list(*_ROW_FIELDS)
        )
        self._apply(rows, now)
        for task_id in self._known.keys() - {row[0] for row in rows}:
            self._forget(task_id)
        self._next_full_check = now + FULL_CHECK_INTERVAL

    def _load(self, task_ids: list[int], now: datetime) -> None:
        rows = []
        for start in range(0, len(task_ids), 900):
            chunk = task_ids[start : start + 900]
            rows += PeriodicTask.objects.filter(
                AGENT_TASKS, enabled=True, id__in=chunk
            ).values_list(*_ROW_FIELDS)
        self._apply(rows, now)
        for task_id in set(task_ids) - {row[0] for row in rows}:
            self._forget(task_id)

    def _apply(self, rows: Iterable[tuple], now: datetime) -> None:
        for row in rows:
            self.stats.rows_read += 1
            (
                task_id,
                task_changed,
                *crontab,
                zone,
                last_fired,
                agent_id,
                expression,
                agent_changed,
                catchup_policy,
                catchup_window,
            ) = row
            # A stamp from a clock running ahead must not move the marks past ours.
            self._task_mark = max(self._task_mark, min(task_changed, now))
            self._agent_mark = max(self._agent_mark, min(agent_changed, now))
            spec = _spec(task_id, crontab, str(zone), expression)
            if spec is None:
                self._forget(task_id)
                continue
            self._known[task_id] = _Known(agent_id, task_changed, agent_changed)
            changed_at = max(task_changed, agent_changed)
            rule = CatchupRule(
                catchup_policy,
                None if catchup_window is None else timedelta(seconds=catchup_window),
            )
            if self.index.upsert(
                task_id,
                spec,
                changed_at=changed_at,
                now=now,
                seen_until=self._seen_until,
                rule=rule,
                last_fired=last_fired,
            ):
                self.stats.entries_changed += 1

    def _forget(self, task_id: int) -> None:
        self._known.pop(task_id, None)
        self.index.remove(task_id)


def _spec(
    task_id: int, crontab: list[str], zone: str, expression: str | None
) -> ScheduleSpec | None:
    """The schedule an agent entry runs on.

    The crontab row is the truth, but a crontab cannot say "the 13th or a
    Friday" (both day fields are widened to ``*``): when the agent's own
    expression widens to exactly this crontab, that expression is the schedule.
    """
    fields = dict(zip(CRONTAB_FIELDS, crontab, strict=True))
    try:
        if expression:
            own = parse_cron(expression)
            if celery_crontab_fields(own) == fields:
                return ScheduleSpec(own.normalized, zone)
        from_row = parse_cron(" ".join(crontab))
        return ScheduleSpec(from_row.normalized, zone)
    except CronError:
        logger.warning("Beat entry %s holds a schedule agents cannot use; skipping it", task_id)
        return None


class AgentScheduler(DatabaseScheduler):
    """See the module docstring. ``clock`` (aware UTC datetimes) is for tests."""

    def __init__(self, *args, clock: Callable[[], datetime] | None = None, **kwargs) -> None:
        self.clock = clock or _utc_now
        self.agents = AgentSchedules()
        self.check_interval = timedelta(milliseconds=settings.SCHEDULER_CHECK_INTERVAL)
        self._next_refresh: datetime | None = None
        self._last_refresh: datetime | None = None
        super().__init__(*args, **kwargs)

    def enabled_models_qs(self):
        return super().enabled_models_qs().exclude(AGENT_TASKS)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        # An agent entry left to DatabaseScheduler (no agent linked) still
        # names its slot, so a run keeps it even if the message waits.
        if entry.task == DISPATCH_TASK:
            slot = timezone.now().replace(second=0, microsecond=0)
            entry.kwargs = {**(entry.kwargs or {}), "scheduled_for": slot.isoformat()}
        return super().apply_async(entry, producer, advance, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        record_beat_heartbeat()
        wait = self.tick_agents()
        try:
            others = super().tick(*args, **kwargs)
        except Exception:
            logger.exception("Beat could not handle its other entries; trying again")
            close_old_connections()
            others = RETRY_AFTER_ERROR
        return max(0.0, min(wait, others))

    def tick_agents(self) -> float:
        """Fire every agent slot that is due; return the seconds until there is more to do."""
        now = self.clock()
        try:
            if self._refresh_needed(now):
                self.agents.refresh(now)
                self._last_refresh = now
                self._next_refresh = now + self.check_interval
            batch = self.agents.index.pop_due(now)
            if batch:
                self._dispatch(batch)
        except Exception:
            logger.exception("Beat could not dispatch agent schedules; trying again")
            close_old_connections()
            return RETRY_AFTER_ERROR
        assert self._next_refresh is not None
        wait = (self._next_refresh - now).total_seconds()
        next_due = self.agents.index.next_due()
        if next_due is not None:
            wait = min(wait, (next_due - now).total_seconds())
        return max(0.0, wait)

    def _refresh_needed(self, now: datetime) -> bool:
        if self._next_refresh is None or now >= self._next_refresh:
            return True
        # Look for edits once more just before firing a slot, so a schedule
        # changed a moment ago fires what its preview promised.
        next_due = self.agents.index.next_due()
        return (
            next_due is not None
            and next_due <= now
            and self._last_refresh is not None
            and now - self._last_refresh >= timedelta(seconds=1)
        )

    def _dispatch(self, batch: DueBatch) -> None:
        stats = self.agents.stats
        started = time.perf_counter()
        slots = {
            slot: [self.agents.agent_id(task_id) for task_id in task_ids]
            for slot, task_ids in batch.slots.items()
        }
        missed = {
            self.agents.agent_id(task_id): task_missed
            for task_id, task_missed in batch.missed.items()
        }
        try:
            results = dispatch_due_slots(slots, missed)
        except Exception:
            self.agents.index.settle(batch, fired=False)
            raise
        self.agents.index.settle(batch, fired=True)
        stats.last_dispatch_seconds = time.perf_counter() - started
        missed_count = sum(len(task_missed) for task_missed in missed.values())
        stats.runs_skipped += missed_count
        if missed_count:
            logger.warning(
                "Beat recorded %d agent slots as missed (catch-up policies and windows)",
                missed_count,
            )
        for result in results:
            stats.slots_fired += 1
            stats.runs_queued += result.queued
            stats.runs_skipped += result.skipped
            logger.info(
                "Beat queued %d runs for %s (%d already queued, %d no longer due) in %.3f s",
                result.queued,
                result.slot.isoformat(),
                result.duplicates,
                result.skipped,
                stats.last_dispatch_seconds,
            )
        self._record_last_runs(batch)

    def _record_last_runs(self, batch: DueBatch) -> None:
        """Keep the beat admin's "last run" column true; a plain update, so nothing reloads.

        It is also where a restarted beat takes up each entry: the latest slot
        handled, fired or recorded as missed.
        """
        handled: dict[tuple[datetime, int], list[int]] = {}
        for firing in batch.firings:
            latest = max([*firing.slots, *(slot for slot, _ in firing.missed)], default=None)
            if latest is not None:
                key = (latest, len(firing.slots))
                handled.setdefault(key, []).append(cast(int, firing.key))
        try:
            for (slot, fired), task_ids in handled.items():
                for start in range(0, len(task_ids), 900):
                    PeriodicTask.objects.filter(id__in=task_ids[start : start + 900]).update(
                        last_run_at=slot, total_run_count=F("total_run_count") + fired
                    )
        except Exception:
            logger.warning("Could not record the last run of agent entries", exc_info=True)


__all__ = ["AGENT_TASKS", "AgentScheduler", "AgentSchedules", "IndexStats"]
