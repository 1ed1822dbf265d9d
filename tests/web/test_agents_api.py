from __future__ import annotations

import json
import uuid

import pytest

from agents.models import AIAgent
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def test_it_creates_an_agent_with_camel_case_fields(api, user):
    response = api.post(
        "/api/agents",
        {"name": "Writer", "agentType": "demo", "configuration": {"steps": 2, "stepSeconds": 0.5}},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["name"] == "Writer"
    assert data["agentType"] == "demo"
    assert data["status"] == "IDLE"
    assert data["priority"] == "NORMAL"
    assert data["scheduleExpression"] is None
    assert data["scheduleEnabled"] is False
    assert data["scheduleTimezone"] == "UTC"
    assert data["nextRunAt"] is None and data["lastRunAt"] is None
    assert data["createdAt"].endswith("Z")
    uuid.UUID(data["id"])
    assert AIAgent.objects.get(pk=data["id"]).owner == user


def test_it_stores_configuration_keys_exactly_as_sent(api):
    configuration = {"stepSeconds": 0, "steps": 1, "snake_key": 1, "nested": {"camelKey": 2}}
    response = api.post(
        "/api/agents",
        {"name": "A", "agentType": "demo", "configuration": configuration},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["data"]["configuration"] == configuration
    agent = AIAgent.objects.get(pk=response.json()["data"]["id"])
    assert agent.configuration == configuration
    fetched = api.get(f"/api/agents/{agent.pk}").json()["data"]
    assert fetched["configuration"] == configuration


def test_it_rejects_an_unknown_agent_type_listing_the_valid_ones(api):
    response = api.post("/api/agents", {"name": "A", "agentType": "nope"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert "demo" in body["error"] and "webhook" in body["error"] and "python" in body["error"]
    assert "agentType" in body["details"]


def test_it_requires_a_name(api):
    response = api.post("/api/agents", {"agentType": "demo"}, format="json")
    assert response.status_code == 400
    assert response.json()["details"]["name"]


def test_it_rejects_a_blank_name(api):
    response = api.post("/api/agents", {"name": "   ", "agentType": "demo"}, format="json")
    assert response.status_code == 400


def test_it_rejects_configuration_that_is_not_an_object(api):
    response = api.post(
        "/api/agents", {"name": "A", "agentType": "demo", "configuration": [1]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["success"] is False


@pytest.mark.parametrize(
    "configuration", [{"output": "a\x00b"}, {"output": "a\ud800b"}, {"k\x00": 1}, {"l": ["\udc80"]}]
)
def test_it_rejects_configuration_text_the_database_cannot_store(api, configuration):
    # Surrogates travel escaped (\ud800), as JSON allows them to.
    body = json.dumps({"name": "A", "agentType": "demo", "configuration": configuration})
    response = api.post("/api/agents", body, content_type="application/json")
    assert response.status_code == 400
    assert "without NUL" in response.json()["error"]
    assert not AIAgent.objects.exists()


def test_it_validates_the_runner_configuration(api):
    response = api.post(
        "/api/agents",
        {"name": "A", "agentType": "demo", "configuration": {"steps": "many"}},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "steps" in body["error"]
    assert body["details"]["configuration"]["steps"]


def test_it_answers_malformed_json_with_a_400_envelope(api):
    response = api.post("/api/agents", "{not json", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert "JSON" in body["error"]


def test_it_lists_only_the_users_own_agents_newest_first(api, user, other_user):
    older = AgentFactory(owner=user)
    newer = AgentFactory(owner=user)
    AgentFactory(owner=other_user)
    response = api.get("/api/agents")
    assert response.status_code == 200
    data = response.json()["data"]
    assert [a["id"] for a in data["agents"]] == [str(newer.pk), str(older.pk)]
    assert data["pagination"] == {"total": 2, "limit": 20, "offset": 0}


def test_staff_see_every_agent(staff_user, other_user):
    from conftest import client_for

    AgentFactory(owner=other_user)
    response = client_for(staff_user).get("/api/agents")
    assert response.json()["data"]["pagination"]["total"] == 1


def test_it_paginates_with_limit_and_offset(api, user):
    for _ in range(5):
        AgentFactory(owner=user)
    data = api.get("/api/agents?limit=2&offset=4").json()["data"]
    assert len(data["agents"]) == 1
    assert data["pagination"] == {"total": 5, "limit": 2, "offset": 4}


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "offset=-1", "offset=x"])
def test_it_rejects_pagination_out_of_bounds(api, query):
    response = api.get(f"/api/agents?{query}")
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_an_offset_past_the_end_gives_an_empty_page(api, user):
    AgentFactory(owner=user)
    data = api.get("/api/agents?offset=50").json()["data"]
    assert data["agents"] == [] and data["pagination"]["total"] == 1


def test_it_retrieves_updates_and_deletes_an_agent(api, user):
    agent = AgentFactory(owner=user)
    assert api.get(f"/api/agents/{agent.pk}").json()["data"]["name"] == agent.name
    response = api.patch(f"/api/agents/{agent.pk}", {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Renamed"
    response = api.delete(f"/api/agents/{agent.pk}")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Agent deleted successfully"}
    assert not AIAgent.objects.filter(pk=agent.pk).exists()


def test_patch_ignores_read_only_fields(api, user):
    agent = AgentFactory(owner=user)
    response = api.patch(f"/api/agents/{agent.pk}", {"status": "RUNNING"}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "IDLE"


def test_patch_validates_configuration_against_the_type(api, user):
    agent = AgentFactory(owner=user)
    response = api.patch(
        f"/api/agents/{agent.pk}", {"configuration": {"failTimes": -1}}, format="json"
    )
    assert response.status_code == 400


def test_put_behaves_like_patch(api, user):
    agent = AgentFactory(owner=user)
    response = api.put(f"/api/agents/{agent.pk}", {"name": "Put"}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Put"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_users_agent_is_not_found(api, other_user, method):
    agent = AgentFactory(owner=other_user)
    response = getattr(api, method)(f"/api/agents/{agent.pk}", {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Agent not found"}
    assert AIAgent.objects.filter(pk=agent.pk).exists()


@pytest.mark.parametrize("agent_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_agent_is_not_found(api, agent_id):
    response = api.get(f"/api/agents/{agent_id}")
    assert response.status_code == 404
    assert response.json()["error"] == "Agent not found"


@pytest.mark.parametrize("path", ["/api/agents", "/api/agents/"])
def test_it_answers_with_and_without_trailing_slash(api, user, path):
    assert api.get(path).status_code == 200
    assert api.post(path, {"name": "A", "agentType": "demo"}, format="json").status_code == 201


def test_detail_answers_with_and_without_trailing_slash(api, user):
    agent = AgentFactory(owner=user)
    assert api.get(f"/api/agents/{agent.pk}/").status_code == 200
    assert api.patch(f"/api/agents/{agent.pk}/", {"name": "B"}, format="json").status_code == 200
    assert api.delete(f"/api/agents/{agent.pk}/").status_code == 200


def test_it_requires_authentication(anonymous):
    response = anonymous.get("/api/agents")
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert response.json()["error"]


def test_it_rejects_a_bad_token(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    response = anonymous.get("/api/agents")
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_a_wrong_method_gets_a_405_envelope(api, user):
    agent = AgentFactory(owner=user)
    response = api.post(f"/api/agents/{agent.pk}", {}, format="json")
    assert response.status_code == 405
    assert response.json()["success"] is False
    assert "POST" in response.json()["error"]


def test_an_unknown_api_path_gets_a_404_envelope(api):
    response = api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Not found."}


def test_the_browsable_api_renders_for_a_logged_in_session(client, user):
    from tests.factories import PASSWORD

    client.login(username=user.username, password=PASSWORD)
    response = client.get("/api/agents", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"pagination" in response.content
