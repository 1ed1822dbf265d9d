from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from agents import services
from scheduling import services as schedules
from web.api.pagination import paginate
from web.api.renderers import MessageResponse
from web.api.schema import ID, PAGE, AgentListSerializer, MessageSerializer
from web.api.serializers import AgentSerializer
from web.api.views.lookups import api_actor, get_visible_agent, signed_in_user


@extend_schema(tags=["agents"])
@extend_schema_view(
    list=extend_schema(
        operation_id="listAgents",
        summary="List the agents",
        parameters=PAGE,
        responses=AgentListSerializer,
    ),
    create=extend_schema(operation_id="createAgent", summary="Create an agent"),
    retrieve=extend_schema(operation_id="getAgent", summary="Get an agent", parameters=[ID]),
    partial_update=extend_schema(
        operation_id="updateAgent",
        summary="Change an agent's name, type or configuration",
        parameters=[ID],
    ),
    update=extend_schema(
        operation_id="replaceAgent",
        summary="Same as PATCH",
        parameters=[ID],
        request=AgentSerializer(partial=True),
        deprecated=True,
    ),
    destroy=extend_schema(
        operation_id="deleteAgent",
        summary="Delete an agent and its schedule",
        parameters=[ID],
        responses={200: MessageSerializer},
    ),
)
class AgentViewSet(viewsets.ViewSet):
    """Agents the signed-in user manages (staff: all agents)."""

    serializer_class = AgentSerializer
    # Any id, dots included, reaches the lookup and gets its "Agent not found",
    # as on the other agent paths.
    lookup_value_regex = "[^/]+"

    def list(self, request: Request) -> Response:
        page = paginate(
            request, services.visible_agents(request.user).order_by("-created_at", "id")
        )
        return Response(page.as_data("agents", AgentSerializer(page.items, many=True).data))

    def create(self, request: Request) -> Response:
        serializer = AgentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent = services.create_agent(
            owner=signed_in_user(request),
            name=serializer.validated_data["name"],
            agent_type=serializer.validated_data["agent_type"],
            configuration=serializer.validated_data.get("configuration", {}),
            actor=api_actor(request),
        )
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(AgentSerializer(get_visible_agent(request, pk)).data)

    def partial_update(self, request: Request, pk: str) -> Response:
        agent = get_visible_agent(request, pk)
        serializer = AgentSerializer(agent, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        agent = services.update_agent(agent, actor=api_actor(request), **serializer.validated_data)
        return Response(AgentSerializer(agent).data)

    def update(self, request: Request, pk: str) -> Response:
        # PUT behaves as PATCH: read-only fields a client echoes back are ignored.
        return self.partial_update(request, pk)

    def destroy(self, request: Request, pk: str) -> Response:
        schedules.delete_agent(get_visible_agent(request, pk), actor=api_actor(request))
        return MessageResponse("Agent deleted successfully")
