"""Beat's in-memory index of when each agent's schedule fires next.

A heap keyed by the next fire instant, computed with :mod:`scheduling.cron` in
the schedule's own timezone, so beat follows the documented DST policy and
cron's day rule exactly as the schedule preview does. The index knows nothing
of the database: :mod:`scheduling.beat` feeds it rows and dispatches what it
hands out.

Missed slots
    A slot is fired late only while it is at most ``catchup`` old; of several
    missed slots only the most recent one fires, once. So a beat that was down
    (or could not reach the database) for two minutes fires an every-minute
    schedule once on return and goes on, and a daily schedule whose slot passed
    an hour ago waits for tomorrow. A schedule created or edited after a slot
    never fires for that slot.

Cron computations are cached per (expression, timezone, instant), and the
instants are whole minutes wherever that gives the same answer, so ten thousand
agents on the same schedule cost one computation per slot, not ten thousand.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from scheduling.cron import CronExpression, next_runs, parse_cron, previous_run


@dataclass(frozen=True)
class ScheduleSpec:
    """What decides an agent's run times: a cron expression and an IANA zone name.

    Beat builds specs from normalised expressions, so equal schedules compare equal.
    """

    expression: str
    timezone: str

    @property
    def cron(self) -> CronExpression:
        return _parsed(self.expression)


@lru_cache(maxsize=4096)
def _parsed(expression: str) -> CronExpression:
    return parse_cron(expression)


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


# Run times fall on whole minutes (a gap-end run falls on the transition, which
# is a whole minute in every zone's present rules), so the next run after any
# instant inside a minute is the next run after that minute's start, and the
# latest run at or before it is the latest at or before that minute's start.
# That makes the cache keys shared by every agent whose edit or catch-up
# moment falls in the same minute.


@lru_cache(maxsize=65_536)
def _next_after_minute(spec: ScheduleSpec, minute: datetime) -> datetime | None:
    runs = next_runs(spec.cron, spec.timezone, after=minute, count=1)
    return runs[0] if runs else None


@lru_cache(maxsize=65_536)
def _latest_at_or_before_minute(spec: ScheduleSpec, minute: datetime) -> datetime | None:
    return previous_run(spec.cron, spec.timezone, at_or_before=minute)


def next_fire(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first run strictly after ``after`` (None if the schedule never fires again)."""
    return _next_after_minute(spec, _minute(after))


def latest_fire(spec: ScheduleSpec, at_or_before: datetime) -> datetime | None:
    """The latest run at or before ``at_or_before``, or None."""
    return _latest_at_or_before_minute(spec, _minute(at_or_before))


def is_fire_time(spec: ScheduleSpec, moment: datetime) -> bool:
    """Whether ``moment`` is exactly one of the schedule's run times."""
    return latest_fire(spec, moment) == moment


@dataclass
class _Entry:
    spec: ScheduleSpec
    due: datetime | None
    version: int


@dataclass(frozen=True)
class Firing:
    """One popped entry: which slot to fire now (None: skipped) and when it is due next."""

    key: Hashable
    version: int
    due: datetime
    slot: datetime | None
    next_due: datetime | None


@dataclass
class DueBatch:
    """Everything due at one moment, grouped by the slot each should fire for."""

    firings: list[Firing] = field(default_factory=list)

    @property
    def slots(self) -> dict[datetime, list[Hashable]]:
        grouped: dict[datetime, list[Hashable]] = {}
        for firing in self.firings:
            if firing.slot is not None:
                grouped.setdefault(firing.slot, []).append(firing.key)
        return dict(sorted(grouped.items()))

    @property
    def skipped(self) -> list[Firing]:
        return [firing for firing in self.firings if firing.slot is None]

    def __len__(self) -> int:
        return len(self.firings)


class DueIndex:
    """Entries keyed by any hashable (beat uses the PeriodicTask id), each with its next due time.

    The heap holds ``(due, sequence, key, version)``; an entry that changes gets a
    new version and its old heap item is dropped when it surfaces, so an edit
    costs one push instead of a rebuild.
    """

    def __init__(self, *, catchup: timedelta) -> None:
        self.catchup = catchup
        self._entries: dict[Hashable, _Entry] = {}
        self._heap: list[tuple[datetime, int, Hashable, int]] = []
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def keys(self) -> Iterable[Hashable]:
        return self._entries.keys()

    def spec(self, key: Hashable) -> ScheduleSpec | None:
        entry = self._entries.get(key)
        return entry.spec if entry else None

    def due(self, key: Hashable) -> datetime | None:
        entry = self._entries.get(key)
        return entry.due if entry else None

    def upsert(
        self,
        key: Hashable,
        spec: ScheduleSpec,
        *,
        changed_at: datetime,
        now: datetime,
        seen_until: datetime | None = None,
    ) -> bool:
        """Add or change an entry; False (and nothing done) if its schedule is unchanged.

        The first slot due is the first run after ``changed_at`` (when the
        schedule was last edited), so a schedule noticed a few seconds after
        its edit still fires the slot its preview promised. ``seen_until`` says
        up to when the caller is sure the entry did not have this schedule (its
        last look at the rows); without one (start-up) the catch-up window
        applies, so a recently missed slot fires.
        """
        current = self._entries.get(key)
        if current is not None and current.spec == spec:
            return False
        floor = seen_until if seen_until is not None else now - self.catchup
        # A writer whose clock runs ahead must not push the first slot into the future.
        since = max(min(changed_at, now), floor)
        version = current.version + 1 if current else 0
        entry = _Entry(spec, next_fire(spec, since), version)
        self._entries[key] = entry
        self._push(key, entry)
        return True

    def remove(self, key: Hashable) -> bool:
        return self._entries.pop(key, None) is not None

    def next_due(self) -> datetime | None:
        """The earliest due time of a live entry (drops stale heap items on the way)."""
        while self._heap:
            due, _, key, version = self._heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry.version == version and entry.due == due:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: datetime) -> DueBatch:
        """Take every entry due at ``now`` out of the heap; give them back with ``settle``."""
        batch = DueBatch()
        while (due := self.next_due()) is not None and due <= now:
            _, _, key, version = heapq.heappop(self._heap)
            spec = self._entries[key].spec
            slot, next_due = self._fire_and_next(spec, due, now)
            batch.firings.append(Firing(key, version, due, slot, next_due))
        return batch

    def settle(self, batch: DueBatch, *, fired: bool) -> None:
        """After a dispatch: move fired entries on, or put them back to try again."""
        for firing in batch.firings:
            entry = self._entries.get(firing.key)
            if entry is None or entry.version != firing.version:
                continue  # removed or edited meanwhile; its new state is already queued
            entry.due = firing.next_due if fired or firing.slot is None else firing.due
            self._push(firing.key, entry)

    def _fire_and_next(
        self, spec: ScheduleSpec, due: datetime, now: datetime
    ) -> tuple[datetime | None, datetime | None]:
        slot = due
        following = next_fire(spec, due)
        if following is not None and following <= now:
            # More than one slot was missed: only the latest counts.
            slot = latest_fire(spec, now) or due
            following = next_fire(spec, slot)
        if now - slot > self.catchup:
            return None, following
        return slot, following

    def _push(self, key: Hashable, entry: _Entry) -> None:
        if entry.due is None:
            return
        self._sequence += 1
        heapq.heappush(self._heap, (entry.due, self._sequence, key, entry.version))
