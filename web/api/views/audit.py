"""An agent's audit trail: every change to it and its schedule, newest first."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from agents import audit
from web.api.pagination import paginate
from web.api.schema import AGENT_ID, PAGE, AuditListSerializer
from web.api.serializers import AuditEntrySerializer
from web.api.views.lookups import get_visible_agent


@extend_schema(
    tags=["agents"],
    operation_id="listAuditEntries",
    summary="Every change to an agent and its schedule, newest first: when, who, through "
    "what, and each field's old and new value",
    parameters=[AGENT_ID, *PAGE],
    responses=AuditListSerializer,
)
@api_view(["GET"])
def agent_audit(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    page = paginate(request, audit.entries_of(agent))
    return Response(page.as_data("entries", AuditEntrySerializer(page.items, many=True).data))
