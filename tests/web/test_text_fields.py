"""Every text field of every request refuses what is not a string.

DRF's CharField turns 5 into "5" and 1.5 into "1.5": ``{"name": 5}`` made an
agent called "5". The fields are read from the OpenAPI schema, so a new text
field is covered as soon as it is documented; each is sent numbers, booleans,
arrays and objects inside an otherwise valid body, and must be refused with a
400 naming it, changing nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework_simplejwt.tokens import RefreshToken

from agents.models import AIAgent
from scheduling.models import AlertChannel
from scheduling.services import set_schedule
from tests.factories import PASSWORD, AgentFactory

pytestmark = pytest.mark.django_db

NOT_STRINGS = [5, 1.5, True, ["x"], {"x": "y"}]

# A valid body for each operation that takes one; each text field is spoilt in turn.
VALID_BODIES = {
    "obtainToken": lambda user: {"username": user.username, "password": PASSWORD},
    "refreshToken": lambda user: {"refresh": str(RefreshToken.for_user(user))},
    "createAgent": lambda user: {"name": "Writer", "agentType": "demo"},
    "updateAgent": lambda user: {"name": "Writer"},
    "replaceAgent": lambda user: {"name": "Writer"},
    "setSchedule": lambda user: {"cronExpression": "@daily"},
    "changeSchedule": lambda user: {"priority": "HIGH"},
    "resumeSchedule": lambda user: {"policy": "RUN_ALL"},
    "backfillAgent": lambda user: {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    "createAlertChannel": lambda user: {"name": "Ops", "kind": "email", "target": "o@example.com"},
    "changeAlertChannel": lambda user: {"name": "Ops"},
}


def text_fields() -> list[tuple[str, str, str, str]]:
    """(operationId, method, path, field) for every string property of a request body."""
    spec = SchemaGenerator().get_schema(request=None, public=True)
    schemas = spec["components"]["schemas"]

    def resolved(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema or "allOf" in schema:
            ref = schema["$ref"] if "$ref" in schema else schema["allOf"][0]["$ref"]
            schema = schemas[ref.rsplit("/", 1)[-1]]
        return schema

    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            for field, schema in resolved(body["schema"])["properties"].items():
                if resolved(schema).get("type") == "string" and not schema.get("readOnly"):
                    found.append((operation["operationId"], method, path, field))
    return found


TEXT_FIELDS = text_fields()


def test_the_text_fields_are_found():
    fields = {(operation, field) for operation, _, _, field in TEXT_FIELDS}
    assert {
        ("createAgent", "name"),
        ("createAgent", "agentType"),
        ("setSchedule", "cronExpression"),
        ("setSchedule", "timezone"),
        ("setSchedule", "priority"),
        ("obtainToken", "username"),
        ("obtainToken", "password"),
        ("refreshToken", "refresh"),
    } <= fields
    assert {operation for operation, _ in fields} == set(VALID_BODIES)


@pytest.fixture
def agent(user) -> AIAgent:
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression="0 9 * * *")
    return AIAgent.objects.get(pk=agent.pk)


def snapshot() -> list[dict[str, Any]]:
    return list(AIAgent.objects.order_by("pk").values())


@pytest.mark.parametrize("value", NOT_STRINGS, ids=lambda value: type(value).__name__)
@pytest.mark.parametrize(
    ("operation", "method", "path", "field"),
    TEXT_FIELDS,
    ids=[f"{operation} {field}" for operation, _, _, field in TEXT_FIELDS],
)
def test_a_text_field_refuses_a_value_that_is_not_a_string(
    api, user, agent, operation, method, path, field, value
):
    body = {**VALID_BODIES[operation](user), field: value}
    channel = AlertChannel.objects.create(
        owner=user, name="Mine", kind="email", target="me@example.com", secret="-"
    )
    url = path.replace("{id}", str(agent.pk)).replace("{agent_id}", str(agent.pk))
    url = url.replace("{channel_id}", str(channel.pk))
    before = snapshot()

    response = getattr(api, method)(url, body, format="json")

    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["success"] is False
    assert field in answer["details"], answer
    assert snapshot() == before
    assert list(AlertChannel.objects.values_list("name", flat=True)) == ["Mine"]


def test_a_number_as_a_name_is_refused_in_words(api):
    response = api.post("/api/agents", {"name": 5, "agentType": "demo"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "Must be a string, not a number.",
        "details": {"name": ["Must be a string, not a number."]},
    }
    assert not AIAgent.objects.exists()
