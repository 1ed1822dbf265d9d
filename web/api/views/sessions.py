from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import AgentSessionCount, ExecutionSession, SessionLogLine
from core.dates import iso
from scheduling import run_logs, runs
from web.api.cursors import next_page, read_cursor, unpack
from web.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, bounded_int, paginate
from web.api.schema import (
    AGENT_ID,
    CURSOR,
    IDEMPOTENCY_KEY,
    LOG_PARAMETERS,
    PAGE,
    SESSION_ID,
    ErrorSerializer,
    RunQueuedSerializer,
    SessionListSerializer,
    SessionLogSerializer,
)
from web.api.serializers import SessionSerializer, storable_object
from web.api.views.lookups import get_visible_agent, get_visible_session


class RunRequestSerializer(serializers.Serializer):
    input = serializers.JSONField(
        required=False,
        help_text="What the run works on: a JSON object of at most 64 KiB, handed to the "
        "runner as context.input and returned on the session as sent. Default {}.",
    )

    class Meta:
        ref_name = "RunRequest"

    def validate_input(self, value: Any) -> dict[str, Any]:
        storable_object(value, "Input")
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > runs.MAX_INPUT_BYTES:
            raise serializers.ValidationError(
                f"Input must be at most {runs.MAX_INPUT_BYTES // 1024} KiB as JSON; "
                f"this is {size:,} bytes."
            )
        return value


# Visible ASCII and inner spaces: what every HTTP stack carries unchanged.
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise ValidationError({"Idempotency-Key": ["Must be 1 to 255 printable ASCII characters."]})
    return key


@extend_schema(
    tags=["runs"],
    operation_id="runAgent",
    summary="Run an agent now, outside its schedule, optionally with an input",
    parameters=[AGENT_ID, IDEMPOTENCY_KEY],
    request=RunRequestSerializer,
    responses={202: RunQueuedSerializer},
)
@api_view(["POST"])
def run_agent(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    if not isinstance(request.data, dict):
        raise ValidationError("The request body must be a JSON object.")
    body = RunRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    run_input = body.validated_data.get("input")
    key = _idempotency_key(request)
    replayed = False
    if key is None:
        session = runs.run_now(agent, input=run_input)
    else:
        session, replayed = runs.run_now_once(agent, key, input=run_input)
    response = Response(
        {"session_id": str(session.pk), "status": session.status},
        status=status.HTTP_202_ACCEPTED,
    )
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


@extend_schema(
    tags=["runs"],
    operation_id="listSessions",
    summary="An agent's run history, newest first",
    parameters=[AGENT_ID, *PAGE, CURSOR],
    responses=SessionListSerializer,
)
@api_view(["GET"])
def agent_sessions(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    scope = f"sessions:{agent.pk}"
    history = agent.sessions.order_by("-created_at", "-id")
    total = AgentSessionCount.total_for(agent.pk)
    position = read_cursor(request, scope)
    if position is None:
        page = paginate(request, history, total=total)
        items, limit, offset = page.items, page.limit, page.offset
        more = len(items) == limit and offset + limit < total
    else:
        limit = bounded_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        rows = list(_after(history, position)[: limit + 1])
        items, offset, more = rows[:limit], None, len(rows) > limit
    last = items[-1] if items else None
    return Response(
        {
            "sessions": SessionSerializer(items, many=True).data,
            "pagination": {
                "total": total,
                "limit": limit,
                "offset": offset,
                "next": next_page(request, scope, [iso(last.created_at), str(last.pk)])
                if more and last is not None
                else None,
            },
        }
    )


def _after(history: QuerySet[ExecutionSession], position: list[Any]) -> QuerySet[ExecutionSession]:
    """The sessions after ``position`` (a page's last created_at and id) in the
    newest-first order. The plain ``<=`` on created_at is what makes it a
    range of the agent's history index rather than a filter over all of it."""
    at, pk = unpack(position, parse_datetime, uuid.UUID)
    return history.filter(created_at__lte=at).filter(
        Q(created_at__lt=at) | Q(created_at=at, id__lt=pk)
    )


@extend_schema(
    tags=["runs"],
    operation_id="getSession",
    summary="One run attempt",
    parameters=[SESSION_ID],
    responses=SessionSerializer,
)
@api_view(["GET"])
def session_detail(request: Request, session_id: str) -> Response:
    return Response(SessionSerializer(get_visible_session(request, session_id)).data)


@extend_schema(
    tags=["runs"],
    operation_id="cancelSession",
    summary="Cancel a queued or running session",
    parameters=[SESSION_ID],
    request=None,
    responses={
        200: SessionSerializer,
        400: OpenApiResponse(ErrorSerializer, description="The session already finished."),
    },
)
@api_view(["POST"])
def cancel_session(request: Request, session_id: str) -> Response:
    session = get_visible_session(request, session_id)
    if not runs.cancel_session(session):
        raise ValidationError(
            f"The session already finished ({session.status}); nothing to cancel."
        )
    session.refresh_from_db()
    return Response(SessionSerializer(session).data)


@extend_schema(
    tags=["runs"],
    operation_id="getSessionLogs",
    summary="The lines a run logged, oldest first, after a seq",
    parameters=[SESSION_ID, *LOG_PARAMETERS],
    responses=SessionLogSerializer,
)
@api_view(["GET"])
def session_logs(request: Request, session_id: str) -> Response:
    session = get_visible_session(request, session_id)
    after = bounded_int(request, "after", 0, 0, SessionLogLine.MAX_LINES)
    limit = bounded_int(request, "limit", 100, 1, SessionLogLine.MAX_LINES)
    lines = run_logs.lines_after(session, after, limit)
    return Response(
        {
            "lines": [
                {"seq": line.seq, "at": iso(line.at), "level": line.level, "message": line.message}
                for line in lines
            ],
            "truncated": session.log_truncated,
        }
    )
