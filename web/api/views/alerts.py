"""Alert channels (a user's), alert rules (an agent's) and the incidents they open."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from agents.services import visible_agents
from core import outbound
from scheduling import alerts, notify
from scheduling.models import AlertChannel, Incident
from web.api.pagination import paginate
from web.api.renderers import MessageResponse
from web.api.schema import AGENT_ID, PAGE, MessageSerializer, PaginationSerializer
from web.api.serializers import StrictCharField, StrictChoiceField, StrictIntegerField
from web.api.views.lookups import api_actor, get_visible_agent, signed_in_user

CHANNEL_NOT_FOUND = "Alert channel not found"
Kind = AlertChannel.Kind


def visible_channels(request: Request) -> QuerySet[AlertChannel]:
    """Staff see every channel; everyone else only their own."""
    user = signed_in_user(request)
    channels = AlertChannel.objects.all()
    if getattr(user, "is_staff", False):
        return channels
    return channels.filter(owner_id=user.pk)


def _channel(request: Request, channel_id: str, *, for_update: bool = False) -> AlertChannel:
    try:
        pk = uuid.UUID(str(channel_id))
    except ValueError:
        raise NotFound(CHANNEL_NOT_FOUND) from None
    channels = visible_channels(request)
    if for_update:
        channels = channels.select_for_update()
    channel = channels.filter(pk=pk).first()
    if channel is None:
        raise NotFound(CHANNEL_NOT_FOUND)
    return channel


class ChannelSerializer(serializers.Serializer):
    """A channel as sent: POST needs every field, PATCH only those it changes."""

    name = StrictCharField(max_length=200, help_text="What the channel is called.")
    kind = StrictChoiceField(
        choices=Kind.choices, help_text="webhook (signed JSON), slack or email."
    )
    target = StrictCharField(
        max_length=outbound.MAX_URL_LENGTH,
        help_text="The URL (webhook, slack: an incoming-webhook URL) or the email address.",
    )

    class Meta:
        ref_name = "AlertChannelChange"

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Must not be blank.")
        return value.strip()


class ChannelOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Kind.choices)
    target = serializers.CharField()
    last_error = serializers.CharField(
        allow_null=True, help_text="Why the last notification failed; null once one is sent."
    )
    last_error_at = serializers.DateTimeField(allow_null=True)
    last_sent_at = serializers.DateTimeField(
        allow_null=True, help_text="When a notification last reached the channel."
    )
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "AlertChannel"

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["last_error"] = instance.last_error or None
        return data


class CreatedChannelSerializer(ChannelOutSerializer):
    secret = serializers.CharField(
        help_text="The key of the webhook bodies' X-NeonHub-Signature (HMAC-SHA256); "
        "answered only here, once."
    )

    class Meta:
        ref_name = "CreatedAlertChannel"


class RulesSerializer(serializers.Serializer):
    """An agent's alert rules; a threshold that is null (or not sent) is off."""

    late_after_seconds = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=alerts.THRESHOLDS["late_after_seconds"],
        help_text="LATE when a slot's run has not started this many seconds after the slot.",
    )
    max_duration_seconds = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=alerts.THRESHOLDS["max_duration_seconds"],
        help_text="OVERRUN when a run is still running this many seconds after it started.",
    )
    failures_in_a_row = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=alerts.THRESHOLDS["failures_in_a_row"],
        help_text="FAILING when this many runs in a row failed (retries exhausted).",
    )
    pause_after_failures = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=alerts.THRESHOLDS["pause_after_failures"],
        help_text="PAUSED: after this many failed runs in a row the schedule is paused, "
        "with a note saying why; resumed by hand.",
    )
    channels = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=alerts.MAX_CHANNELS,
        help_text="Ids of the alert channels every opening and resolution is sent to.",
    )

    class Meta:
        ref_name = "AlertRules"


class RulesOutSerializer(RulesSerializer):
    failed_runs_in_a_row = serializers.IntegerField(
        help_text="Runs that failed since the agent's last success."
    )

    class Meta:
        ref_name = "AlertRulesState"


class IncidentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    agent_id = serializers.UUIDField()
    agent_name = serializers.CharField(source="agent.name")
    kind = serializers.ChoiceField(choices=Incident.Kind.choices)
    message = serializers.CharField()
    session_id = serializers.UUIDField(
        allow_null=True, help_text="The late or overrunning run, or the failed one."
    )
    opened_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolution = serializers.CharField(help_text="Why it resolved; empty while open.")

    class Meta:
        ref_name = "Alert"


class IncidentListSerializer(serializers.Serializer):
    alerts = IncidentSerializer(many=True, help_text="Newest first.")
    pagination = PaginationSerializer()

    class Meta:
        ref_name = "AlertList"


CHANNEL_ID = OpenApiParameter(
    "channel_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The channel's id."
)
ALERT_FILTERS = [
    OpenApiParameter(
        "status",
        {"type": "string", "enum": ["open", "resolved"]},
        OpenApiParameter.QUERY,
        description="Only open or only resolved incidents. Default: both.",
    ),
    OpenApiParameter(
        "agentId",
        OpenApiTypes.UUID,
        OpenApiParameter.QUERY,
        description="Only this agent's (none if the user may not see it).",
    ),
]


def _checked(kind: str, target: str) -> str:
    try:
        return alerts.check_target(kind, target)
    except ValueError as exc:
        raise ValidationError({"target": [str(exc)]}) from None


# --- channels -------------------------------------------------------------------------


@extend_schema(tags=["alerts"])
@extend_schema(
    methods=["GET"],
    operation_id="listAlertChannels",
    summary="The user's alert channels",
    responses=ChannelOutSerializer(many=True),
)
@extend_schema(
    methods=["POST"],
    operation_id="createAlertChannel",
    summary="Add an alert channel; the answer holds its webhook secret, once",
    request=ChannelSerializer,
    responses={201: CreatedChannelSerializer},
)
@api_view(["GET", "POST"])
def alert_channels(request: Request) -> Response:
    if request.method == "GET":
        return Response(ChannelOutSerializer(visible_channels(request), many=True).data)
    body = ChannelSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    values = body.validated_data
    target = _checked(values["kind"], values["target"])
    channel = AlertChannel.objects.create(
        owner_id=signed_in_user(request).pk,
        name=values["name"],
        kind=values["kind"],
        target=target,
        secret=secrets.token_hex(32),
    )
    data = CreatedChannelSerializer(channel).data
    data["secret"] = channel.secret
    return Response(data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["alerts"], parameters=[CHANNEL_ID])
@extend_schema(
    methods=["GET"],
    operation_id="getAlertChannel",
    summary="One alert channel, with its last error",
    responses=ChannelOutSerializer,
)
@extend_schema(
    methods=["PATCH"],
    operation_id="changeAlertChannel",
    summary="Rename a channel or change its kind or target",
    request=ChannelSerializer,
    responses=ChannelOutSerializer,
)
@extend_schema(
    methods=["DELETE"],
    operation_id="deleteAlertChannel",
    summary="Delete a channel; rules stop sending to it",
    responses={200: MessageSerializer},
)
@api_view(["GET", "PATCH", "DELETE"])
def alert_channel(request: Request, channel_id: str) -> Response:
    if request.method == "GET":
        return Response(ChannelOutSerializer(_channel(request, channel_id)).data)
    with transaction.atomic():
        channel = _channel(request, channel_id, for_update=True)
        if request.method == "DELETE":
            channel.delete()
            return MessageResponse("Alert channel deleted")
        body = ChannelSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        kind = values.get("kind", channel.kind)
        target = values.get("target", channel.target)
        if "kind" in values or "target" in values:
            target = _checked(kind, target)
        channel.name = values.get("name", channel.name)
        channel.kind, channel.target = kind, target
        channel.save(update_fields=["name", "kind", "target"])
    return Response(ChannelOutSerializer(channel).data)


@extend_schema(
    tags=["alerts"],
    operation_id="testAlertChannel",
    summary="Send a test notification to the channel now and say whether it arrived",
    parameters=[CHANNEL_ID],
    request=None,
    responses=inline_serializer(
        "AlertChannelTest",
        {
            "delivered": serializers.BooleanField(),
            "error": serializers.CharField(allow_null=True),
        },
    ),
)
@api_view(["POST"])
def test_alert_channel(request: Request, channel_id: str) -> Response:
    channel = _channel(request, channel_id)
    error = notify.send_test(channel)
    return Response({"delivered": error is None, "error": error})


# --- rules ------------------------------------------------------------------------------


def rules_data(agent: Any) -> dict[str, Any]:
    rules = alerts.rules_of(agent)
    return {
        **{field: getattr(rules, field) for field in alerts.THRESHOLDS},
        "channels": [str(channel.pk) for channel in rules.channels],
        "failed_runs_in_a_row": rules.failed_runs_in_a_row,
    }


@extend_schema(tags=["alerts"], parameters=[AGENT_ID])
@extend_schema(
    methods=["GET"],
    operation_id="getAlertRules",
    summary="An agent's alert rules and the channels they notify",
    responses=RulesOutSerializer,
)
@extend_schema(
    methods=["PUT"],
    operation_id="setAlertRules",
    summary="Replace an agent's alert rules; a threshold left out or null is off",
    request=RulesSerializer,
    responses=RulesOutSerializer,
)
@api_view(["GET", "PUT"])
def agent_alert_rules(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    if request.method == "GET":
        return Response(rules_data(agent))
    if not isinstance(request.data, dict):
        raise ValidationError("The request body must be a JSON object.")
    body = RulesSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    values = dict(body.validated_data)
    channel_ids = values.pop("channels", [])
    with transaction.atomic():
        found = {
            channel.pk: channel for channel in visible_channels(request).filter(pk__in=channel_ids)
        }
        if len(found) != len(set(channel_ids)):
            raise NotFound(CHANNEL_NOT_FOUND)
        try:
            alerts.set_rules(
                agent,
                channels=[found[pk] for pk in channel_ids],
                actor=api_actor(request),
                **values,
            )
        except alerts.RuleFieldError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
    return Response(rules_data(agent))


# --- incidents --------------------------------------------------------------------------


@extend_schema(
    tags=["alerts"],
    operation_id="listAlerts",
    summary="The incidents of the user's agents, newest first",
    parameters=[*ALERT_FILTERS, *PAGE],
    responses=IncidentListSerializer,
)
@api_view(["GET"])
def alert_list(request: Request) -> Response:
    incidents = Incident.objects.filter(agent__in=visible_agents(request.user)).select_related(
        "agent"
    )
    wanted = request.query_params.get("status")
    if wanted not in (None, "", "open", "resolved"):
        raise ValidationError({"status": ["Must be open or resolved."]})
    if wanted == "open":
        incidents = incidents.filter(resolved_at__isnull=True)
    elif wanted == "resolved":
        incidents = incidents.filter(resolved_at__isnull=False)
    agent_id = request.query_params.get("agentId")
    if agent_id:
        try:
            incidents = incidents.filter(agent_id=uuid.UUID(agent_id))
        except ValueError:
            raise ValidationError({"agentId": ["Must be an agent's id."]}) from None
    page = paginate(request, incidents.order_by("-opened_at", "-id"))
    return Response(page.as_data("alerts", IncidentSerializer(page.items, many=True).data))
