"""Actions on a schedule beyond its fields: resuming with a policy, and backfill."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import AIAgent
from agents.services import AGENT_NOT_FOUND
from core.dates import iso
from scheduling import backfill, resume
from scheduling.cron import CronError
from scheduling.services import NoSchedule, ScheduleFieldError
from web.api.schema import AGENT_ID, BackfillResultSerializer, ResumeResultSerializer
from web.api.serializers import StrictBooleanField
from web.api.views.lookups import api_actor, get_visible_agent


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with its UTC offset; a time without one is refused, not guessed at."""

    default_error_messages = {
        "invalid": "Must be an ISO 8601 time such as 2026-01-02T09:00:00Z.",
        "naive": "Must carry its UTC offset, as in 2026-01-02T09:00:00Z.",
    }

    def to_internal_value(self, value: Any) -> datetime:
        parsed = None
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
        if parsed is None:
            self.fail("invalid")
        if parsed.utcoffset() is None:
            self.fail("naive")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            # 0001-01-01T00:00+01:00 is before the first UTC moment there is.
            self.fail("invalid")


class ResumeSerializer(serializers.Serializer):
    policy = serializers.ChoiceField(
        choices=resume.ResumePolicy.choices,
        error_messages={
            "invalid_choice": "Unknown policy {input!r}: use SKIP_MISSED, RUN_LATEST or RUN_ALL."
        },
        help_text="Which of the slots missed while paused run: none, the most recent, or "
        f"all of them oldest first (the most recent {resume.RUN_ALL_LIMIT} at most).",
    )
    dry_run = StrictBooleanField(
        required=False,
        default=False,
        help_text="true: change nothing, only say which slots would run now.",
    )

    class Meta:
        ref_name = "ScheduleResume"


class BackfillSerializer(serializers.Serializer):
    start = AwareDateTimeField(help_text="The first moment of the range (included).")
    end = AwareDateTimeField(help_text="The end of the range (excluded); not in the future.")
    rerun = StrictBooleanField(
        required=False,
        default=False,
        help_text="true: slots that already had a run run again. Default false: they are "
        "left alone and counted in skipped.",
    )

    class Meta:
        ref_name = "BackfillRequest"


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.")
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _refused(exc: Exception) -> ValidationError:
    if isinstance(exc, ScheduleFieldError):
        return ValidationError({exc.field: [str(exc)]})
    if isinstance(exc, CronError):
        return ValidationError({"cron_expression": [f"The stored schedule cannot be used: {exc}"]})
    return ValidationError(str(exc))


@extend_schema(
    tags=["schedules"],
    operation_id="resumeSchedule",
    summary="Resume a paused schedule, running the missed slots a policy asks for",
    parameters=[AGENT_ID],
    request=ResumeSerializer,
    responses=ResumeResultSerializer,
)
@api_view(["POST"])
def resume_schedule(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    values = _valid(ResumeSerializer, request.data)
    try:
        result = resume.resume_schedule(
            agent, policy=values["policy"], dry_run=values["dry_run"], actor=api_actor(request)
        )
    except AIAgent.DoesNotExist:
        raise NotFound(AGENT_NOT_FOUND) from None
    except (ScheduleFieldError, NoSchedule, CronError) as exc:
        raise _refused(exc) from None
    return Response(
        {"runs": [iso(slot) for slot in result.runs], "schedule_enabled": result.schedule_enabled}
    )


@extend_schema(
    tags=["schedules"],
    operation_id="backfillAgent",
    summary="Run the slots of an agent's schedule in a past range",
    parameters=[AGENT_ID],
    request=BackfillSerializer,
    responses={202: BackfillResultSerializer},
)
@api_view(["POST"])
def backfill_agent(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    values = _valid(BackfillSerializer, request.data)
    try:
        result = backfill.backfill(
            agent,
            start=values["start"],
            end=values["end"],
            rerun=values["rerun"],
            actor=api_actor(request),
        )
    except AIAgent.DoesNotExist:
        raise NotFound(AGENT_NOT_FOUND) from None
    except (ScheduleFieldError, NoSchedule, CronError) as exc:
        raise _refused(exc) from None
    return Response(
        {
            "queued": len(result.slots),
            "skipped": result.skipped,
            "slots": [iso(slot) for slot in result.slots],
        },
        status=status.HTTP_202_ACCEPTED,
    )
