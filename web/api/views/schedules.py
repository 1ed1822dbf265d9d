from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import AIAgent, CatchupPolicy, OverlapPolicy
from agents.services import scheduled_agents, visible_agents
from scheduling import services
from scheduling.cron import MAX_EXPRESSION_LENGTH, CronError, TimezoneError
from scheduling.schedules import schedule_description, schedule_warnings, upcoming_runs
from scheduling.stats import running_agent_ids, scheduler_stats, task_details
from web.api.renderers import MessageResponse
from web.api.schema import (
    AGENT_ID,
    MessageSerializer,
    ScheduleDetailSerializer,
    SchedulerStatsSerializer,
    SchedulerStatusSerializer,
    ScheduleSerializer,
)
from web.api.serializers import (
    AwareDateTimeField,
    PriorityField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    TimezoneField,
)
from web.api.views.lookups import api_actor, get_visible_agent


def _seconds_range(maximum: int) -> dict[str, Any]:
    # Worded as the service words it, so the API and the admin refuse alike.
    message = f"Must be between 0 and {maximum} seconds."
    return {"min_value": message, "max_value": message}


class ScheduleChangeSerializer(serializers.Serializer):
    """A schedule: POST needs cronExpression, PATCH changes only the fields it sends."""

    # These fields validate requests and describe them in the schema, so the
    # two cannot disagree. PATCH validates them as partial.
    cron_expression = StrictCharField(
        max_length=MAX_EXPRESSION_LENGTH,
        help_text="Five-field cron expression (minute hour day-of-month month day-of-week) "
        "or a macro: @hourly, @daily, @weekly, @monthly, @yearly.",
    )
    priority = PriorityField(required=False, help_text="Default NORMAL.")
    enabled = StrictBooleanField(
        required=False, help_text="false pauses the schedule without losing it. Default true."
    )
    timezone = TimezoneField(
        required=False,
        help_text="IANA timezone the expression is read in, e.g. Europe/Berlin. Default UTC.",
    )
    overlap_policy = StrictChoiceField(
        choices=OverlapPolicy.choices,
        required=False,
        help_text="What a slot does while the agent's previous run is still queued or running: "
        "SKIP drops it, BUFFER_ONE keeps at most one waiting, BUFFER_ALL queues every slot, "
        "CANCEL_OTHER cancels the previous run. Default BUFFER_ONE.",
    )
    catchup_policy = StrictChoiceField(
        choices=CatchupPolicy.choices,
        required=False,
        help_text="Which slots missed while no beat ran still run: LATEST the most recent, "
        "ALL every one oldest first (at most 100), NONE none. Default LATEST.",
    )
    catchup_window = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=services.MAX_CATCHUP_WINDOW,
        error_messages=_seconds_range(services.MAX_CATCHUP_WINDOW),
        help_text="Seconds a missed slot may be late and still run; null: the server's "
        "SCHEDULER_CATCHUP_SECONDS. Default null.",
    )
    jitter_seconds = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=services.MAX_JITTER_SECONDS,
        error_messages=_seconds_range(services.MAX_JITTER_SECONDS),
        help_text="Each slot's run waits a delay in [0, jitter) seconds, fixed per agent and "
        "slot. Default 0.",
    )
    pause_note = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=services.MAX_PAUSE_NOTE,
        error_messages={
            "max_length": f"Must be at most {services.MAX_PAUSE_NOTE} characters long."
        },
        help_text="Why the schedule is paused; only with a pause (enabled false or pausedUntil) "
        "or on a paused schedule. Cleared on resume.",
    )
    paused_until = AwareDateTimeField(
        required=False,
        allow_null=True,
        help_text="Pause until this time (ISO 8601 with its offset, in the future), when the "
        "schedule resumes by itself; null clears it and leaves the schedule paused.",
    )

    class Meta:
        ref_name = "ScheduleChange"


# The request fields whose set_schedule argument is named differently.
SERVICE_ARGUMENTS = {"cron_expression": "expression", "timezone": "timezone_name"}


def _schedule_summary(agent: AIAgent) -> dict[str, Any]:
    return {
        "id": str(agent.pk),
        "name": agent.name,
        "schedule_expression": agent.schedule_expression,
        "schedule_enabled": agent.schedule_enabled,
        "schedule_timezone": agent.schedule_timezone,
        "priority": PriorityField().to_representation(agent.priority),
        "next_run_at": agent.next_run_at,
        "overlap_policy": agent.overlap_policy,
        "catchup_policy": agent.catchup_policy,
        "catchup_window": agent.catchup_window,
        "jitter_seconds": agent.jitter_seconds,
        "pause_note": agent.pause_note,
        "paused_until": agent.paused_until,
        "paused_at": agent.paused_at,
        "warnings": schedule_warnings(agent),
    }


def _schedule_detail(agent: AIAgent) -> dict[str, Any]:
    data = {
        **_schedule_summary(agent),
        "last_run_at": agent.last_run_at,
        "status": agent.status,
        "description": schedule_description(agent),
        "upcoming_runs": upcoming_runs(agent),
        "task_details": task_details(agent),
    }
    return data


def _change_schedule(request: Request, agent: AIAgent, *, creating: bool) -> AIAgent:
    serializer = ScheduleChangeSerializer(data=request.data, partial=not creating)
    serializer.is_valid(raise_exception=True)
    values = serializer.validated_data
    # Only the fields sent reach the service: set_schedule leaves the rest alone.
    changes = {SERVICE_ARGUMENTS.get(field, field): value for field, value in values.items()}
    with schedule_field_errors():
        return services.set_schedule(agent, actor=api_actor(request), **changes)


@contextmanager
def schedule_field_errors() -> Iterator[None]:
    """Answer the schedule service's refusals as a 400 naming the field."""
    try:
        yield
    except (CronError, services.NoSchedule) as exc:
        raise ValidationError({"cron_expression": [str(exc)]}) from None
    except TimezoneError as exc:
        raise ValidationError({"timezone": [str(exc)]}) from None
    except services.ScheduleFieldError as exc:
        raise ValidationError({exc.field: [str(exc)]}) from None


@extend_schema(tags=["schedules"], parameters=[AGENT_ID])
@extend_schema(
    methods=["GET"],
    operation_id="getSchedule",
    summary="An agent's schedule, its next 5 runs and its beat entry",
    responses=ScheduleDetailSerializer,
)
@extend_schema(
    methods=["POST"],
    operation_id="setSchedule",
    summary="Schedule an agent (or replace its schedule)",
    request=ScheduleChangeSerializer,
    responses=ScheduleSerializer,
)
@extend_schema(
    methods=["PATCH"],
    operation_id="changeSchedule",
    summary="Change an existing schedule; pause or resume with enabled",
    request=ScheduleChangeSerializer,
    responses=ScheduleSerializer,
)
@extend_schema(
    methods=["DELETE"],
    operation_id="deleteSchedule",
    summary="Unschedule an agent",
    responses={200: MessageSerializer},
)
@api_view(["GET", "POST", "PATCH", "DELETE"])
def agent_schedule(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    if request.method == "GET":
        return Response(_schedule_detail(agent))
    if request.method == "DELETE":
        services.remove_schedule(agent, actor=api_actor(request))
        return MessageResponse("Agent unscheduled successfully")
    if not isinstance(request.data, dict):
        raise ValidationError("The request body must be a JSON object.")
    agent = _change_schedule(request, agent, creating=request.method == "POST")
    return Response(_schedule_summary(agent))


@extend_schema(
    tags=["schedules"],
    operation_id="getAgentSchedulerStatus",
    summary="The scheduler's figures, seen from one agent",
    parameters=[AGENT_ID],
    responses=SchedulerStatsSerializer,
)
@api_view(["GET"])
def agent_schedule_status(request: Request, agent_id: str) -> Response:
    get_visible_agent(request, agent_id)
    return Response(scheduler_stats())


@extend_schema(
    tags=["schedules"],
    operation_id="getSchedulerStatus",
    summary="The scheduler's figures and every scheduled agent the user can see",
    responses=SchedulerStatusSerializer,
)
@api_view(["GET"])
def scheduler_status(request: Request) -> Response:
    agents = list(
        scheduled_agents()
        .filter(pk__in=visible_agents(request.user).values("pk"))
        .order_by("next_run_at", "name")
    )
    running = running_agent_ids(agents)
    stats = scheduler_stats()
    stats["tasks"] = [task_details(agent, is_running=agent.pk in running) for agent in agents]
    return Response(stats)
