"""Run statistics: one agent's over a window, and every visible agent's with their totals."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from agents.run_stats import DEFAULT_WINDOW, WINDOWS, Window, run_stats
from agents.services import visible_agents
from web.api.pagination import page_bounds
from web.api.schema import AGENT_ID, PAGE, PaginationSerializer
from web.api.views.lookups import get_visible_agent


def _window(request: Request) -> Window:
    name = request.query_params.get("window") or DEFAULT_WINDOW
    window = WINDOWS.get(name)
    if window is None:
        choices = ", ".join(WINDOWS)
        raise ValidationError({"window": [f"'window' must be one of {choices}, got {name!r}."]})
    return window


# --- schema (documentation only) ------------------------------------------------------

WINDOW = OpenApiParameter(
    "window",
    {"type": "string", "enum": list(WINDOWS), "default": DEFAULT_WINDOW},
    OpenApiParameter.QUERY,
    description="24h: the current UTC hour and the 23 before it, in hourly buckets; 7d and "
    "30d: the current UTC day and the 6 or 29 before it, in daily buckets.",
)


class DurationSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text="Median duration, ms.")
    p95 = serializers.FloatField(allow_null=True, help_text="95th percentile, ms.")
    max = serializers.IntegerField(allow_null=True, help_text="Longest run, ms.")

    class Meta:
        ref_name = "StatsDuration"


class BucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The hour's or day's start (UTC).")
    runs = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    duration_p95 = serializers.FloatField(allow_null=True, help_text="ms; null without runs.")

    class Meta:
        ref_name = "StatsBucket"


class StatsSerializer(serializers.Serializer):
    window = serializers.ChoiceField(choices=list(WINDOWS))
    runs = serializers.IntegerField(help_text="Runs that finished in the window.")
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    success_rate = serializers.FloatField(
        allow_null=True,
        help_text="succeeded / (succeeded + failed), cancelled runs left out; null when "
        "neither happened.",
    )
    duration = DurationSerializer(
        help_text="Over the finished runs that have a duration; percentiles interpolated "
        "linearly (percentile_cont), within 1 % for a 7d or 30d window of more than 50,000 "
        "runs."
    )
    buckets = BucketSerializer(many=True, help_text="Every bucket of the window, oldest first.")

    class Meta:
        ref_name = "AgentStats"


class AgentStatsRowSerializer(StatsSerializer):
    agent_id = serializers.UUIDField()
    name = serializers.CharField()

    class Meta:
        ref_name = "AgentStatsRow"


class StatsListSerializer(serializers.Serializer):
    window = serializers.ChoiceField(choices=list(WINDOWS))
    agents = AgentStatsRowSerializer(many=True, help_text="This page of the agent list.")
    totals = StatsSerializer(help_text="All the user's agents together, not only this page.")
    pagination = PaginationSerializer()

    class Meta:
        ref_name = "AgentStatsList"


# --- views ------------------------------------------------------------------------------


@extend_schema(
    tags=["agents"],
    operation_id="getAgentStats",
    summary="An agent's runs over a window: counts, success rate, duration percentiles, "
    "and the same per hour or day",
    parameters=[AGENT_ID, WINDOW],
    responses=StatsSerializer,
)
@api_view(["GET"])
def agent_stats(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    window = _window(request)
    return Response(run_stats([agent.pk], window).per_agent[agent.pk].as_data())


@extend_schema(
    tags=["agents"],
    operation_id="listAgentStats",
    summary="Every visible agent's run statistics over a window (a page of them, in the "
    "agent list's order), and their totals",
    parameters=[WINDOW, *PAGE],
    responses=StatsListSerializer,
)
@api_view(["GET"])
def agents_stats(request: Request) -> Response:
    window = _window(request)
    limit, offset = page_bounds(request)
    agents = visible_agents(request.user).order_by("-created_at", "id")
    page = list(agents.values_list("pk", "name")[offset : offset + limit])
    every = list(agents.values_list("pk", flat=True))
    # One pass over the window's runs of all the agents gives their totals and,
    # on the way, the figures of the agents on this page.
    stats = run_stats(every, window, totals=True)
    assert stats.totals is not None
    return Response(
        {
            "window": window.name,
            "agents": [
                {"agent_id": pk, "name": name, **stats.per_agent[pk].as_data()} for pk, name in page
            ],
            "totals": stats.totals.as_data(),
            "pagination": {"total": len(every), "limit": limit, "offset": offset},
        }
    )
