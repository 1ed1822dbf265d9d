"""Beat's in-memory index of when each agent's schedule fires next.

A heap keyed by the next fire instant, computed with :mod:`scheduling.cron` in
the schedule's own timezone, so beat follows the documented DST policy and
cron's day rule exactly as the schedule preview does. The index knows nothing
of the database: :mod:`scheduling.beat` feeds it rows and dispatches what it
hands out.

Missed slots
    A slot more than a minute late (beat was down, stalled or cut off from the
    database) is missed, and each entry's :class:`CatchupRule` says which
    missed slots still fire: ``LATEST`` the most recent one, ``ALL`` each of
    them oldest first (at most :data:`CATCHUP_LIMIT`), ``NONE`` none; only
    slots at most the rule's window old count. The rest are handed out as
    missed, with the reason, for the slot ledger (at most the
    :data:`CATCHUP_LIMIT` most recent of one gap). So a beat that was down for
    two minutes fires an every-minute schedule once on return under
    ``LATEST`` and goes on, and a daily schedule whose slot passed an hour ago
    waits for tomorrow. A schedule created or edited after a slot never fires
    for that slot.

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

from core.dates import minute_text
from scheduling.cron import CronExpression, next_runs, parse_cron, previous_run, previous_runs

# A slot dispatched this late is on time under every policy: beat wakes a
# little after each slot, and a busy database can cost it seconds.
ON_TIME = timedelta(seconds=60)
# The most missed slots one catch-up fires (policy ALL) or records.
CATCHUP_LIMIT = 100


@dataclass(frozen=True)
class CatchupRule:
    """Which missed slots of an entry still fire: a policy and a window (None: the index's)."""

    policy: str = "LATEST"
    window: timedelta | None = None


DEFAULT_RULE = CatchupRule()


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
    rule: CatchupRule = DEFAULT_RULE


@dataclass(frozen=True)
class Firing:
    """One popped entry: the slots to fire now (oldest first; none if all were missed),
    the missed slots with why, and when it is due next."""

    key: Hashable
    version: int
    due: datetime
    slots: tuple[datetime, ...]
    next_due: datetime | None
    missed: tuple[tuple[datetime, str], ...] = ()

    @property
    def slot(self) -> datetime | None:
        """The latest slot fired, if any."""
        return self.slots[-1] if self.slots else None


@dataclass
class DueBatch:
    """Everything due at one moment, grouped by the slot each should fire for."""

    firings: list[Firing] = field(default_factory=list)

    @property
    def slots(self) -> dict[datetime, list[Hashable]]:
        grouped: dict[datetime, list[Hashable]] = {}
        for firing in self.firings:
            for slot in firing.slots:
                grouped.setdefault(slot, []).append(firing.key)
        return dict(sorted(grouped.items()))

    @property
    def skipped(self) -> list[Firing]:
        """Entries that fire nothing this time: every slot due was missed."""
        return [firing for firing in self.firings if not firing.slots]

    @property
    def missed(self) -> dict[Hashable, tuple[tuple[datetime, str], ...]]:
        return {firing.key: firing.missed for firing in self.firings if firing.missed}

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
        rule: CatchupRule = DEFAULT_RULE,
        last_fired: datetime | None = None,
    ) -> bool:
        """Add or change an entry; False (and nothing done) if nothing changed.

        The first slot due is the first run after ``changed_at`` (when the
        schedule was last edited), so a schedule noticed a few seconds after
        its edit still fires the slot its preview promised. ``seen_until`` says
        up to when the caller is sure the entry did not have this schedule (its
        last look at the rows). Without one (start-up) the slots since
        ``last_fired`` (the last slot a beat handled) are due again, so the
        ones missed while no beat ran fire or are recorded as missed; with no
        ``last_fired`` either, only the latest slot is, if it is within the
        catch-up window. A change of the rule alone keeps the entry's place.
        """
        current = self._entries.get(key)
        if current is not None and current.spec == spec:
            if current.rule == rule:
                return False
            current.rule = rule
            return True
        if seen_until is not None:
            floor = seen_until
        elif last_fired is not None:
            floor = last_fired
        else:
            # Nothing says what happened before: the latest slot may still
            # fire if it is recent enough, and nothing older is recorded.
            latest = latest_fire(spec, now)
            recent = latest is not None and now - latest <= self.window(rule)
            floor = latest - timedelta(minutes=1) if recent and latest else now
        # A writer whose clock runs ahead must not push the first slot into the future.
        since = max(min(changed_at, now), floor)
        version = current.version + 1 if current else 0
        entry = _Entry(spec, next_fire(spec, since), version, rule)
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
            _, _, key, _ = heapq.heappop(self._heap)
            entry = self._entries[key]
            batch.firings.append(self._fire(key, entry, due, now))
        return batch

    def settle(self, batch: DueBatch, *, fired: bool) -> None:
        """After a dispatch: move fired entries on, or put them back to try again."""
        for firing in batch.firings:
            entry = self._entries.get(firing.key)
            if entry is None or entry.version != firing.version:
                continue  # removed or edited meanwhile; its new state is already queued
            entry.due = firing.next_due if fired or not firing.slots else firing.due
            self._push(firing.key, entry)

    def window(self, rule: CatchupRule) -> timedelta:
        """How old a missed slot may be and still fire under ``rule``."""
        return max(rule.window if rule.window is not None else self.catchup, ON_TIME)

    def _fire(self, key: Hashable, entry: _Entry, due: datetime, now: datetime) -> Firing:
        spec, rule = entry.spec, entry.rule
        following = next_fire(spec, due)
        if (following is None or following > now) and now - due <= ON_TIME:
            return Firing(key, entry.version, due, (due,), following)  # on time: the usual case
        due_slots = _slots_back(spec, due, now)  # newest first
        window = self.window(rule)
        in_window = [slot for slot in due_slots if now - slot <= window]
        if rule.policy == "ALL":
            fired = in_window[:CATCHUP_LIMIT]
        elif rule.policy == "NONE":
            fired = [slot for slot in due_slots[:1] if now - slot <= ON_TIME]
        else:
            fired = in_window[:1]
        chosen = set(fired)
        missed = tuple(
            (slot, _missed_reason(rule, slot, now, window, fired))
            for slot in due_slots
            if slot not in chosen
        )[:CATCHUP_LIMIT]
        following = next_fire(spec, due_slots[0]) if due_slots else following
        return Firing(key, entry.version, due, tuple(reversed(fired)), following, missed)

    def _push(self, key: Hashable, entry: _Entry) -> None:
        if entry.due is None:
            return
        self._sequence += 1
        heapq.heappush(self._heap, (entry.due, self._sequence, key, entry.version))


def _slots_back(spec: ScheduleSpec, due: datetime, now: datetime) -> list[datetime]:
    """The schedule's slots in [due, now], newest first, at most CATCHUP_LIMIT + 1 of them
    (enough to fire or record a catch-up's worth and know that there were more)."""
    return list(_slots_back_to_minute(spec, due, _minute(now)))


# Agents with the same schedule that were due at the same slot catch up on the
# same slots (after a beat restart that is most of them): one scan serves all.
@lru_cache(maxsize=4096)
def _slots_back_to_minute(
    spec: ScheduleSpec, due: datetime, minute: datetime
) -> tuple[datetime, ...]:
    runs = previous_runs(
        spec.cron, spec.timezone, at_or_before=minute, count=CATCHUP_LIMIT + 1, since=due
    )
    return tuple(reversed(runs))


def _missed_reason(
    rule: CatchupRule, slot: datetime, now: datetime, window: timedelta, fired: list[datetime]
) -> str:
    if now - slot > window:
        return (
            "Missed: no beat dispatched it in time; it was beyond the catch-up window "
            f"of {int(window.total_seconds())} s."
        )
    if rule.policy == "NONE":
        return "Missed: the catch-up policy NONE runs no missed slot."
    if rule.policy == "ALL":
        return f"Missed: the catch-up policy ALL runs at most {CATCHUP_LIMIT} missed slots."
    return "Missed: the catch-up policy LATEST ran only the most recent missed slot" + (
        f" ({minute_text(fired[0])})." if fired else "."
    )
