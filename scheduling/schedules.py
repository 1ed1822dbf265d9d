"""An agent's schedule in words and times, as the API, the dashboard, the
admin and the status command show it.

A stored expression the parser now refuses (written before a stricter rule,
or edited behind the service's back) is shown as it is and has no upcoming
runs: showing a schedule must never fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from agents.models import AIAgent
from scheduling.cron import (
    CronError,
    describe,
    dst_warnings,
    next_runs,
    parse_cron,
    validate_timezone,
)

UPCOMING_RUNS = 5


def schedule_description(agent: AIAgent, *, with_zone: bool = False) -> str | None:
    """The schedule in words, None without one; ``with_zone`` names a zone other than UTC."""
    if not agent.schedule_expression:
        return None
    try:
        text = describe(parse_cron(agent.schedule_expression))
    except CronError:
        return agent.schedule_expression
    if with_zone and agent.schedule_timezone != "UTC":
        text = f"{text} ({agent.schedule_timezone})"
    return text


def upcoming_runs(agent: AIAgent, *, even_paused: bool = False) -> list[datetime]:
    """The next ``UPCOMING_RUNS`` fire times; none for a paused schedule unless ``even_paused``."""
    if not agent.schedule_expression or not (agent.schedule_enabled or even_paused):
        return []
    try:
        cron = parse_cron(agent.schedule_expression)
        return next_runs(cron, agent.schedule_timezone, after=timezone.now(), count=UPCOMING_RUNS)
    except (CronError, ValueError):
        return []


def schedule_warnings(agent: AIAgent, *, after: datetime | None = None) -> list[str]:
    """What the DST policy does to fire times the zone skips or repeats in the next year.

    A paused schedule is warned about too: the sentences describe the schedule as it would run.
    """
    if not agent.schedule_expression:
        return []
    try:
        cron = parse_cron(agent.schedule_expression)
        return dst_warnings(cron, agent.schedule_timezone, after=after or timezone.now())
    except (CronError, ValueError):
        return []


@dataclass(frozen=True)
class SchedulePreview:
    description: str
    upcoming_runs: list[datetime]
    warnings: list[str]


def preview_schedule(
    expression: object, timezone_name: object, *, after: datetime | None = None
) -> SchedulePreview:
    """A schedule no agent has yet, shown as an agent's would be once it is set.

    Unlike the functions above it refuses what setting the schedule would
    refuse, raising CronError or TimezoneError with the same sentences.
    """
    cron = parse_cron(expression)
    zone = str(validate_timezone(timezone_name))
    now = after or timezone.now()
    return SchedulePreview(
        description=describe(cron),
        upcoming_runs=next_runs(cron, zone, after=now, count=UPCOMING_RUNS),
        warnings=dst_warnings(cron, zone, after=now),
    )
