"""How the API describes itself in OpenAPI (drf-spectacular).

The views hand back bare data; the renderer wraps it as ``{"success": true,
"data": ...}`` and the exception handler shapes every error. The schema says
the same: ``EnvelopeAutoSchema`` wraps each success response and adds the
error responses, ``api_paths_without_trailing_slash`` lists each path once
(every path also answers with a trailing slash), and the serializers below
describe the answers the views build by hand. They are used for
documentation only; nothing validates or renders through them.
"""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.contrib.rest_framework_simplejwt import (
    SimpleJWTScheme,
    TokenObtainPairSerializerExtension,
    TokenRefreshSerializerExtension,
)
from drf_spectacular.extensions import (
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_serializer,
)
from rest_framework import serializers

from agents.models import AIAgent, CatchupPolicy, OverlapPolicy, Priority, SessionLogLine
from agents.runners import registered_types
from scheduling.cron import KNOWN_ZONES, MAX_EXPRESSION_LENGTH
from scheduling.services import MAX_CATCHUP_WINDOW, MAX_JITTER_SECONDS
from web.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from web.api.serializers import (
    AgentSerializer,
    AuditEntrySerializer,
    PriorityField,
    SessionSerializer,
    SlotSerializer,
)

# --- envelopes --------------------------------------------------------------------


class Enveloped(serializers.Serializer):
    """A body that already is the whole envelope: the schema must not wrap it again."""


class ErrorSerializer(Enveloped):
    """The error envelope: every 4xx and 5xx answer of the API has this shape."""

    success = serializers.BooleanField(help_text="Always false.")
    error = serializers.CharField(help_text="One human sentence saying what went wrong.")
    details = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="Per-field messages, for validation errors: field name to a list of "
        "messages (nested for nested fields).",
    )

    class Meta:
        ref_name = "Error"


class MessageSerializer(Enveloped):
    """A success that carries a sentence instead of data (deletions)."""

    success = serializers.BooleanField(help_text="Always true.")
    message = serializers.CharField(help_text="What was done, in one sentence.")

    class Meta:
        ref_name = "Message"


def success_envelope(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "success": {"type": "boolean", "description": "Always true."},
            "data": schema,
        },
        "required": ["success", "data"],
    }


# --- answers built by hand in the views -------------------------------------------


class PaginationSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="How many items there are in all.")
    limit = serializers.IntegerField(help_text="The page size used.")
    offset = serializers.IntegerField(help_text="How many items were skipped.")


@extend_schema_serializer(many=False)
class AgentListSerializer(serializers.Serializer):
    agents = AgentSerializer(many=True)
    pagination = PaginationSerializer()

    class Meta:
        ref_name = "AgentList"


class CursorPaginationSerializer(PaginationSerializer):
    offset = serializers.IntegerField(
        allow_null=True, help_text="How many items were skipped; null on a page read by cursor."
    )
    next = serializers.CharField(
        allow_null=True,
        help_text="The URL of the next page, by cursor, at the cost of the first at any depth; "
        "null on the last page.",
    )

    class Meta:
        ref_name = "CursorPagination"


@extend_schema_serializer(many=False)
class SessionListSerializer(serializers.Serializer):
    sessions = SessionSerializer(many=True, help_text="Newest first.")
    pagination = CursorPaginationSerializer()

    class Meta:
        ref_name = "SessionList"


@extend_schema_serializer(many=False)
class AuditListSerializer(serializers.Serializer):
    entries = AuditEntrySerializer(many=True, help_text="Newest first.")
    pagination = PaginationSerializer()

    class Meta:
        ref_name = "AuditList"


class SlotPaginationSerializer(CursorPaginationSerializer):
    total = serializers.IntegerField(
        help_text="How many slots there are in all, counted at most 10,000 past this page: "
        "beyond that a lower bound (see totalIsExact), which still tells whether a next page "
        "exists."
    )
    total_is_exact = serializers.BooleanField(
        help_text="false when the ledger goes on more than 10,000 slots past this page (on "
        "a page read by cursor: more than 10,000 in all)."
    )

    class Meta:
        ref_name = "SlotPagination"


@extend_schema_serializer(many=False)
class SlotListSerializer(serializers.Serializer):
    slots = SlotSerializer(many=True, help_text="Newest first.")
    pagination = SlotPaginationSerializer()

    class Meta:
        ref_name = "SlotList"


class LogLineSerializer(serializers.Serializer):
    seq = serializers.IntegerField(min_value=1, help_text="The line's number in its run, from 1.")
    at = serializers.DateTimeField(help_text="When the runner logged it.")
    level = serializers.ChoiceField(choices=SessionLogLine.Level.choices)
    message = serializers.CharField(allow_blank=True)

    class Meta:
        ref_name = "LogLine"


class SessionLogSerializer(serializers.Serializer):
    lines = LogLineSerializer(many=True, help_text="Oldest first, after the asked-for seq.")
    truncated = serializers.BooleanField(
        help_text=f"The run logged more than a session keeps ({SessionLogLine.MAX_LINES} lines, "
        f"{SessionLogLine.MAX_BYTES // 1024} KiB); the later lines were dropped."
    )

    class Meta:
        ref_name = "SessionLog"


class SchedulePreviewSerializer(serializers.Serializer):
    description = serializers.CharField(
        help_text='The schedule in plain English, e.g. "At 09:00 AM".'
    )
    upcoming_runs = serializers.ListField(
        child=serializers.DateTimeField(), help_text="The next 5 run times, from now."
    )
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="Fire times in the next year that the zone's clock changes skip or repeat, "
        "each saying what the DST policy does; empty without any.",
    )

    class Meta:
        ref_name = "SchedulePreview"


class TaskDetailsSerializer(serializers.Serializer):
    agent_id = serializers.UUIDField()
    agent_name = serializers.CharField()
    priority = serializers.IntegerField(
        min_value=1, max_value=4, help_text="LOW=1, NORMAL=2, HIGH=3, CRITICAL=4."
    )
    next_run_time = serializers.DateTimeField(allow_null=True)
    retry_count = serializers.IntegerField(help_text="Failed attempts since the last success.")
    last_error = serializers.CharField(allow_null=True)
    is_running = serializers.BooleanField()

    class Meta:
        ref_name = "TaskDetails"


class ScheduleSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    schedule_expression = serializers.CharField(allow_null=True)
    schedule_enabled = serializers.BooleanField()
    schedule_timezone = serializers.CharField()
    priority = PriorityField()
    next_run_at = serializers.DateTimeField(allow_null=True, help_text="null while disabled.")
    overlap_policy = serializers.ChoiceField(
        choices=OverlapPolicy.choices,
        help_text="What a slot does while the previous run is still queued or running.",
    )
    catchup_policy = serializers.ChoiceField(
        choices=CatchupPolicy.choices, help_text="Which slots missed while no beat ran still run."
    )
    catchup_window = serializers.IntegerField(
        allow_null=True,
        min_value=0,
        max_value=MAX_CATCHUP_WINDOW,
        help_text="Seconds a missed slot may be late and still run, as stored: null means the "
        "server's SCHEDULER_CATCHUP_SECONDS.",
    )
    jitter_seconds = serializers.IntegerField(
        min_value=0,
        max_value=MAX_JITTER_SECONDS,
        help_text="Each slot's run waits a delay in [0, jitter) seconds, fixed per slot.",
    )
    pause_note = serializers.CharField(
        allow_blank=True, help_text="Why the schedule is paused; empty while enabled."
    )
    paused_until = serializers.DateTimeField(
        allow_null=True, help_text="When a snoozed schedule resumes by itself; null otherwise."
    )
    paused_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the schedule was paused (read only): the missed slots a resume may run "
        "are those after it. null while enabled.",
    )
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="Fire times in the next year that the zone's clock changes skip or repeat, "
        "each saying what the DST policy does; empty without any.",
    )

    class Meta:
        ref_name = "Schedule"


class ScheduleDetailSerializer(ScheduleSerializer):
    last_run_at = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField(choices=AIAgent.Status.choices)
    description = serializers.CharField(
        allow_null=True, help_text='The schedule in plain English, e.g. "At 09:00 AM".'
    )
    upcoming_runs = serializers.ListField(
        child=serializers.DateTimeField(), help_text="The next 5 run times; empty while disabled."
    )
    task_details = TaskDetailsSerializer(allow_null=True, help_text="null without a schedule.")

    class Meta:
        ref_name = "ScheduleDetail"


class SchedulerStatsSerializer(serializers.Serializer):
    is_running = serializers.BooleanField(
        help_text="True only while a beat process has reported in recently."
    )
    scheduled_tasks_count = serializers.IntegerField(help_text="Agents with an enabled schedule.")
    running_agents_count = serializers.IntegerField()
    queued_tasks_count = serializers.IntegerField(help_text="Runs waiting for a free slot.")
    max_concurrent_agents = serializers.IntegerField()

    class Meta:
        ref_name = "SchedulerStats"


class SchedulerStatusSerializer(SchedulerStatsSerializer):
    tasks = TaskDetailsSerializer(
        many=True, help_text="Every scheduled agent the user can see, next run first."
    )

    class Meta:
        ref_name = "SchedulerStatus"


class RunQueuedSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()
    status = serializers.CharField(
        help_text="QUEUED: a worker starts it when a slot is free. A replayed request "
        "(Idempotency-Key) answers the earlier run's status now."
    )

    class Meta:
        ref_name = "RunQueued"


class PriorityFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "web.api.serializers.PriorityField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return {"type": "string", "enum": [priority.name for priority in Priority]}


# Our subclasses of simplejwt's classes are described as simplejwt's are.


class JWTScheme(SimpleJWTScheme):
    target_class = "web.api.authentication.JWTAuthentication"


class TokenObtainPairExtension(TokenObtainPairSerializerExtension):
    target_class = "web.api.serializers.TokenObtainPairSerializer"


class TokenRefreshExtension(TokenRefreshSerializerExtension):
    target_class = "web.api.serializers.TokenRefreshSerializer"


class TimezoneFieldExtension(OpenApiSerializerFieldExtension):
    """The zones a schedule accepts, once, as a component of their own."""

    target_class = "web.api.serializers.TimezoneField"

    def get_name(self) -> str:
        return "Timezone"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        return {"type": "string", "enum": sorted(KNOWN_ZONES)}


class AgentSerializerExtension(OpenApiSerializerExtension):
    """``configuration`` is a JSONField, which alone would document "any value";
    a request's ``agentType`` must name a registered runner, and its ``name``
    must hold more than white space."""

    target_class = "web.api.serializers.AgentSerializer"

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        properties = schema["properties"]
        properties["configuration"] = {
            "type": "object",
            "additionalProperties": {},
            "description": "Runner settings, stored and returned exactly as sent: their keys "
            "are never case-converted. See the agent types for what each runner reads.",
        }
        if direction == "request":
            properties["agent_type"]["enum"] = registered_types()
            properties["name"]["pattern"] = r"\S"
        return schema


class SessionSerializerExtension(OpenApiSerializerExtension):
    """``duration`` is null until the attempt has finished."""

    target_class = "web.api.serializers.SessionSerializer"

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["properties"]["duration"] = {
            **schema["properties"]["duration"],
            "nullable": True,
            "description": "Milliseconds from start to finish; null until finished.",
        }
        return schema


# --- parameters -------------------------------------------------------------------

AGENT_ID = OpenApiParameter(
    "agent_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The agent's id."
)
ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The agent's id.")
SESSION_ID = OpenApiParameter(
    "session_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The session's id."
)
PAGE = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        OpenApiParameter.QUERY,
        description=f"Page size, 1 to {MAX_LIMIT}.",
    ),
    OpenApiParameter(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        OpenApiParameter.QUERY,
        description=f"How many items to skip, at most {MAX_OFFSET:,}.",
    ),
]
CURSOR = OpenApiParameter(
    "cursor",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    description="The page after the one that gave it as `pagination.next`; not with `offset`.",
)
SLOT_RANGE = [
    OpenApiParameter(
        "from",
        OpenApiTypes.DATETIME,
        OpenApiParameter.QUERY,
        description="Only slots at or after this time (ISO 8601 with its offset; in a URL, "
        "+ is written %2B).",
    ),
    OpenApiParameter(
        "to",
        OpenApiTypes.DATETIME,
        OpenApiParameter.QUERY,
        description="Only slots before this time; must be later than `from`.",
    ),
]
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    OpenApiParameter.HEADER,
    description="1 to 255 printable ASCII characters. A request that repeats a key used for "
    "the same agent in the last 24 hours queues nothing and answers the earlier request's "
    "session (with `Idempotent-Replayed: true`); the body is not compared.",
)
LOG_PARAMETERS = [
    OpenApiParameter(
        "after",
        {"type": "integer", "minimum": 0, "maximum": SessionLogLine.MAX_LINES, "default": 0},
        OpenApiParameter.QUERY,
        description="Only lines with a greater seq: the last seq already read.",
    ),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": SessionLogLine.MAX_LINES, "default": 100},
        OpenApiParameter.QUERY,
        description=f"At most this many lines, 1 to {SessionLogLine.MAX_LINES}.",
    ),
]
PREVIEW_PARAMETERS = [
    OpenApiParameter(
        "cronExpression",
        {"type": "string", "minLength": 1, "maxLength": MAX_EXPRESSION_LENGTH},
        OpenApiParameter.QUERY,
        required=True,
        description="The expression, as a schedule's cronExpression.",
    ),
    OpenApiParameter(
        "timezone",
        # The component the schedule bodies' timezone field defines.
        {"$ref": "#/components/schemas/Timezone"},
        OpenApiParameter.QUERY,
        description="The IANA timezone it is read in. Default UTC.",
    ),
]


# --- the schema class and the path hook -------------------------------------------


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


# OpenAPI links: the answers that hand out ids, and the operations that take
# them, so clients and stateful fuzzers can go on to objects that exist.
AGENT_OPERATIONS = {
    "getAgent": "path.id",
    "updateAgent": "path.id",
    "replaceAgent": "path.id",
    "deleteAgent": "path.id",
    "getSchedule": "path.agent_id",
    "setSchedule": "path.agent_id",
    "changeSchedule": "path.agent_id",
    "deleteSchedule": "path.agent_id",
    "getAgentSchedulerStatus": "path.agent_id",
    "runAgent": "path.agent_id",
    "listSessions": "path.agent_id",
    "listSlots": "path.agent_id",
    "listAuditEntries": "path.agent_id",
    "getAlertRules": "path.agent_id",
    "setAlertRules": "path.agent_id",
    "getAgentStats": "path.agent_id",
}
SCHEDULED_AGENT_OPERATIONS = {"resumeSchedule": "path.agent_id", "backfillAgent": "path.agent_id"}
CHANNEL_OPERATIONS = {
    "getAlertChannel": "path.channel_id",
    "changeAlertChannel": "path.channel_id",
    "deleteAlertChannel": "path.channel_id",
    "testAlertChannel": "path.channel_id",
}
SESSION_OPERATIONS = {
    "getSession": "path.session_id",
    "getSessionLogs": "path.session_id",
    "cancelSession": "path.session_id",
}


def _links(operations: dict[str, str], id_at: str) -> dict[str, Any]:
    return {
        operation_id: {"operationId": operation_id, "parameters": {parameter: id_at}}
        for operation_id, parameter in operations.items()
    }


LINKS = {
    ("createAgent", "201"): _links(AGENT_OPERATIONS, "$response.body#/data/id"),
    ("runAgent", "202"): _links(SESSION_OPERATIONS, "$response.body#/data/sessionId"),
    ("createAlertChannel", "201"): _links(CHANNEL_OPERATIONS, "$response.body#/data/id"),
    # Only a scheduled agent can be resumed or backfilled.
    ("setSchedule", "200"): _links(SCHEDULED_AGENT_OPERATIONS, "$response.body#/data/id"),
    ("changeSchedule", "200"): _links(SCHEDULED_AGENT_OPERATIONS, "$response.body#/data/id"),
}

RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds until the rate-limit window resets.",
    }
}


class EnvelopeAutoSchema(AutoSchema):
    """Describes responses as clients receive them: inside the envelope, errors included."""

    def map_parsers(self) -> list[str]:
        # The form parsers serve the browsable API; clients send JSON.
        return ["application/json"]

    def _get_response_for_code(
        self,
        serializer: Any,
        status_code: str,
        media_types: Any = None,
        direction: str = "response",
    ) -> dict[str, Any]:
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if status_code.startswith("2") and not _is_enveloped(serializer):
            for media in response.get("content", {}).values():
                media["schema"] = success_envelope(media["schema"])
        if status_code == "429":
            response["headers"] = RETRY_AFTER
        links = LINKS.get((self.get_operation_id(), status_code))
        if links:
            response["links"] = links
        return response

    def _get_response_bodies(
        self, direction: Literal["request", "response"] = "response"
    ) -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, response in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return dict(sorted(responses.items()))

    def _error_responses(self) -> dict[str, OpenApiResponse]:
        errors: dict[str, OpenApiResponse] = {}
        has_body = self.method in ("POST", "PUT", "PATCH") and bool(self.get_request_serializer())
        takes_input = has_body or any(
            parameter.get("in") == "query" for parameter in self._get_parameters()
        )
        # Any request may name a charset in its Content-Type that cannot be read.
        if takes_input:
            errors["400"] = _error(
                "The request is not valid: `error` names the first problem, `details` "
                "lists them per field. Also for a Content-Type charset that is no text encoding."
            )
        else:
            errors["400"] = _error("The Content-Type names a charset that is no text encoding.")
        if self.view.get_authenticators():
            errors["401"] = _error("The access token is missing, expired or not valid.")
        else:
            errors["401"] = _error("The credentials or the token are not valid.")
        if "{" in self.path:
            errors["404"] = _error(
                "No such item, or one that belongs to another user (the answer is the same, "
                'so ids do not leak), e.g. "Agent not found".'
            )
        errors["405"] = _error("The path does not take this method.")
        errors["429"] = _error("Too many requests: wait for `Retry-After` seconds.")
        return errors


def _is_enveloped(serializer: Any) -> bool:
    if isinstance(serializer, OpenApiResponse):
        serializer = serializer.response
    return isinstance(force_instance(serializer), Enveloped)


def api_paths_without_trailing_slash(endpoints: list[tuple]) -> list[tuple]:
    """Each /api/ path once, without its trailing slash.

    The URL patterns end in ``/?`` so both spellings answer; the schema shows
    one. Paths outside /api/ (pages, health checks) are not part of this
    contract's envelope and stay out of it.
    """
    seen: set[tuple[str, str]] = set()
    result = []
    for path, path_regex, method, callback in endpoints:
        if not path.startswith("/api/"):
            continue
        path = path.rstrip("/")
        if (path, method) in seen:
            continue
        seen.add((path, method))
        result.append((path, path_regex, method, callback))
    return result


# --- resume and backfill ----------------------------------------------------------


class ResumeResultSerializer(serializers.Serializer):
    runs = serializers.ListField(
        child=serializers.DateTimeField(),
        help_text="The missed slots that run (with dryRun: would run), oldest first; RUN_ALL "
        "runs the most recent 100 at most. Slots that already have a run are not listed.",
    )
    schedule_enabled = serializers.BooleanField(
        help_text="false only after a dry run of a paused schedule."
    )

    class Meta:
        ref_name = "ScheduleResumed"


class BackfillResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Slots that got a BACKFILL run.")
    skipped = serializers.IntegerField(
        help_text="Slots left alone because they already had a run (without rerun)."
    )
    slots = serializers.ListField(
        child=serializers.DateTimeField(), help_text="The slots queued, oldest first."
    )

    class Meta:
        ref_name = "BackfillQueued"
