from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from agents.models import AgentSessionCount
from scheduling import runs
from web.api.pagination import paginate
from web.api.schema import (
    AGENT_ID,
    PAGE,
    SESSION_ID,
    ErrorSerializer,
    RunQueuedSerializer,
    SessionListSerializer,
)
from web.api.serializers import SessionSerializer
from web.api.views.lookups import get_visible_agent, get_visible_session


@extend_schema(
    tags=["runs"],
    operation_id="runAgent",
    summary="Run an agent now, outside its schedule",
    parameters=[AGENT_ID],
    request=None,
    responses={202: RunQueuedSerializer},
)
@api_view(["POST"])
def run_agent(request: Request, agent_id: str) -> Response:
    session = runs.run_now(get_visible_agent(request, agent_id))
    return Response(
        {"session_id": str(session.pk), "status": session.status},
        status=status.HTTP_202_ACCEPTED,
    )


@extend_schema(
    tags=["runs"],
    operation_id="listSessions",
    summary="An agent's run history, newest first",
    parameters=[AGENT_ID, *PAGE],
    responses=SessionListSerializer,
)
@api_view(["GET"])
def agent_sessions(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    page = paginate(
        request,
        agent.sessions.order_by("-created_at", "-id"),
        total=AgentSessionCount.total_for(agent.pk),
    )
    return Response(page.as_data("sessions", SessionSerializer(page.items, many=True).data))


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
