"""A schedule shown before it is set: what the dashboard's editor says as you type."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import AIAgent
from scheduling.cron import MAX_EXPRESSION_LENGTH
from scheduling.schedules import preview_schedule
from web.api.schema import PREVIEW_PARAMETERS, SchedulePreviewSerializer
from web.api.serializers import StrictCharField, TimezoneField
from web.api.views.schedules import schedule_field_errors


class PreviewQuerySerializer(serializers.Serializer):
    """The query, read with the fields a schedule body is read with, so both refuse alike."""

    cron_expression = StrictCharField(max_length=MAX_EXPRESSION_LENGTH)
    timezone = TimezoneField(required=False)


# Query parameters are not case-converted like bodies: they take the body's
# camelCase names, and errors name them as a body's would be named.
QUERY_FIELDS = {"cronExpression": "cron_expression", "timezone": "timezone"}


@extend_schema(
    tags=["schedules"],
    operation_id="previewSchedule",
    summary="A cron expression in words, its next 5 runs and its DST warnings, before it is set",
    parameters=PREVIEW_PARAMETERS,
    responses=SchedulePreviewSerializer,
)
@api_view(["GET"])
def schedule_preview(request: Request) -> Response:
    query = PreviewQuerySerializer(
        data={
            field: request.query_params[name]
            for name, field in QUERY_FIELDS.items()
            if name in request.query_params
        }
    )
    query.is_valid(raise_exception=True)
    zone = query.validated_data.get(
        "timezone", AIAgent._meta.get_field("schedule_timezone").get_default()
    )
    with schedule_field_errors():
        preview = preview_schedule(query.validated_data["cron_expression"], zone)
    return Response(
        {
            "description": preview.description,
            "upcoming_runs": preview.upcoming_runs,
            "warnings": preview.warnings,
        }
    )
