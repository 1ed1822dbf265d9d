"""The DST policy, through beat itself: its clock is driven across the 2026 transitions.

The policy (see ``scheduling.cron``): a fixed-time slot skipped by spring
forward runs once when the gap ends; a fixed-time slot in the repeated hour
runs once, at its first occurrence; wildcard schedules run at every real
instant whose wall time matches. Beat must create exactly the sessions the
preview (``scheduling.cron.next_runs``) lists.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent, ExecutionSession
from neonhub.celery import app as celery_app
from scheduling import beat as beat_module
from scheduling.beat import AgentScheduler
from scheduling.cron import next_runs, parse_cron
from scheduling.services import set_schedule
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

TRANSITIONS = [
    pytest.param("America/New_York", date(2026, 3, 8), id="new-york-spring-forward"),
    pytest.param("America/New_York", date(2026, 11, 1), id="new-york-fall-back"),
    pytest.param("Europe/Berlin", date(2026, 3, 29), id="berlin-spring-forward"),
    pytest.param("Europe/Berlin", date(2026, 10, 25), id="berlin-fall-back"),
]
EXPRESSIONS = ["30 2 * * *", "0 1 * * *", "30 1 * * *", "*/30 * * * *"]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def beat(monkeypatch):
    # Beat closes stale connections between ticks; here that would close the
    # connection holding the test's transaction.
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    monkeypatch.setattr(beat_module, "close_old_connections", lambda: None)

    def make(clock: Clock) -> AgentScheduler:
        scheduler = AgentScheduler(app=celery_app, clock=clock)
        monkeypatch.setattr(scheduler, "apply_entry", lambda entry, producer=None: None)
        return scheduler

    return make


def scheduled(expression: str, zone: str) -> AIAgent:
    # No worker runs here: every slot queues its own run, whatever is still queued.
    agent = set_schedule(
        AgentFactory(overlap_policy="BUFFER_ALL"), expression=expression, timezone_name=zone
    )
    long_ago = timezone.now() - timedelta(days=400)
    AIAgent.objects.filter(pk=agent.pk).update(updated_at=long_ago)
    PeriodicTask.objects.filter(pk=agent.periodic_task_id).update(date_changed=long_ago)
    return agent


def window(zone: str, day: date) -> tuple[datetime, datetime]:
    """Local noon-and-a-bit the day before to the day after, as UTC instants.

    Starting ten minutes past a slot keeps beat's start-up catch-up out of
    the comparison.
    """
    tz = ZoneInfo(zone)
    start = datetime.combine(day - timedelta(days=1), time(12, 10), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(12, 10), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def drive(scheduler: AgentScheduler, clock: Clock, end: datetime) -> int:
    """Wake beat as its tick asks (a little late, as a real sleep does) until ``end``.

    Every other wake-up comes a second early as well, which must fire nothing.
    """
    ticks = 0
    scheduler.tick_agents()
    for ticks in range(1, 1000):
        due = scheduler.agents.index.next_due()
        if due is None or due > end:
            break
        if ticks % 2:
            clock.now = due - timedelta(seconds=1)
            scheduler.tick_agents()
        clock.now = due + timedelta(milliseconds=250)
        scheduler.tick_agents()
    return ticks


def fired(agent: AIAgent) -> list[datetime]:
    return list(
        ExecutionSession.objects.filter(agent=agent)
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
    )


@pytest.mark.parametrize(("zone", "day"), TRANSITIONS)
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_beat_fires_exactly_the_previewed_slots_across_a_transition(beat, zone, day, expression):
    agent = scheduled(expression, zone)
    start, end = window(zone, day)
    clock = Clock(start)
    drive(beat(clock), clock, end)

    preview = [
        moment
        for moment in next_runs(parse_cron(expression), zone, after=start, count=200)
        if moment <= end
    ]
    assert preview, "the window must hold slots"
    assert fired(agent) == preview
    agent.refresh_from_db()
    assert agent.next_run_at == next_runs(parse_cron(expression), zone, after=preview[-1])[0]


# The policy spelled out, so the comparison above is not only "beat agrees with
# the preview": each case lists the UTC instants beat must fire between two UTC
# times around the transition.
POLICY = [
    pytest.param(
        "America/New_York",
        date(2026, 3, 8),
        "30 2 * * *",
        ("2026-03-08T00:00", "2026-03-09T00:00"),
        ["2026-03-08T07:00"],  # 02:30 never happens: 03:00 EDT, when the gap ends
        id="new-york-skipped-slot-runs-when-the-gap-ends",
    ),
    pytest.param(
        "America/New_York",
        date(2026, 11, 1),
        "30 1 * * *",
        ("2026-11-01T00:00", "2026-11-02T00:00"),
        ["2026-11-01T05:30"],  # 01:30 EDT only, not 01:30 EST
        id="new-york-repeated-slot-runs-once-first",
    ),
    pytest.param(
        "America/New_York",
        date(2026, 11, 1),
        "0 1 * * *",
        ("2026-11-01T00:00", "2026-11-02T00:00"),
        ["2026-11-01T05:00"],
        id="new-york-repeated-hour-start-runs-once",
    ),
    pytest.param(
        "America/New_York",
        date(2026, 3, 8),
        "*/30 * * * *",
        ("2026-03-08T06:00", "2026-03-08T07:30"),
        # Local 01:00 and 01:30 EST, then 03:00 EDT: nothing in the gap.
        ["2026-03-08T06:00", "2026-03-08T06:30", "2026-03-08T07:00"],
        id="new-york-every-30-minutes-skips-the-gap",
    ),
    pytest.param(
        "America/New_York",
        date(2026, 11, 1),
        "*/30 * * * *",
        ("2026-11-01T05:00", "2026-11-01T07:30"),
        # 01:00 and 01:30 twice (EDT, then EST), then 02:00 EST.
        [
            "2026-11-01T05:00",
            "2026-11-01T05:30",
            "2026-11-01T06:00",
            "2026-11-01T06:30",
            "2026-11-01T07:00",
        ],
        id="new-york-every-30-minutes-runs-the-repeated-hour-twice",
    ),
    pytest.param(
        "Europe/Berlin",
        date(2026, 3, 29),
        "30 2 * * *",
        ("2026-03-29T00:00", "2026-03-30T00:00"),
        ["2026-03-29T01:00"],  # 03:00 CEST
        id="berlin-skipped-slot-runs-when-the-gap-ends",
    ),
    pytest.param(
        "Europe/Berlin",
        date(2026, 3, 29),
        "*/30 * * * *",
        ("2026-03-29T00:30", "2026-03-29T01:30"),
        ["2026-03-29T00:30", "2026-03-29T01:00"],  # 01:30 CET, then 03:00 CEST
        id="berlin-every-30-minutes-skips-the-gap",
    ),
    pytest.param(
        "Europe/Berlin",
        date(2026, 10, 25),
        "30 2 * * *",
        ("2026-10-25T00:00", "2026-10-26T00:00"),
        ["2026-10-25T00:30"],  # 02:30 CEST only
        id="berlin-repeated-slot-runs-once-first",
    ),
    pytest.param(
        "Europe/Berlin",
        date(2026, 10, 25),
        "*/30 * * * *",
        ("2026-10-25T00:00", "2026-10-25T02:00"),
        # 02:00 and 02:30 CEST, then 02:00 and 02:30 CET.
        ["2026-10-25T00:00", "2026-10-25T00:30", "2026-10-25T01:00", "2026-10-25T01:30"],
        id="berlin-every-30-minutes-runs-the-repeated-hour-twice",
    ),
]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("zone", "day", "expression", "between", "expected"), POLICY)
def test_beat_follows_the_documented_policy_on_the_transition_night(
    beat, zone, day, expression, between, expected
):
    agent = scheduled(expression, zone)
    start, end = window(zone, day)
    clock = Clock(start)
    drive(beat(clock), clock, end)

    low, high = map(utc, between)
    night = [moment for moment in fired(agent) if low <= moment < high]
    assert night == [utc(moment) for moment in expected]
