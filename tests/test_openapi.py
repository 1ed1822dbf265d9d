"""The OpenAPI schema (/api/schema/) and its UI (/api/docs/) describe the real API."""

from __future__ import annotations

import copy
import re
from datetime import timedelta
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec

from scheduling import pacing, runs
from scheduling.models import ScheduleSlot
from scheduling.slots import insert_slots
from tests.factories import PASSWORD, AgentFactory, SessionFactory

PATHS = {
    "/api/auth/token",
    "/api/auth/token/refresh",
    "/api/agents",
    "/api/agents/{id}",
    "/api/agents/{agent_id}/schedule",
    "/api/agents/{agent_id}/schedule/status",
    "/api/agents/{agent_id}/schedule/resume",
    "/api/agents/{agent_id}/backfill",
    "/api/agents/scheduler/status",
    "/api/agents/{agent_id}/run",
    "/api/agents/{agent_id}/sessions",
    "/api/agents/{agent_id}/slots",
    "/api/agents/{agent_id}/audit",
    "/api/agents/{agent_id}/stats",
    "/api/agents/stats",
    "/api/agents/{agent_id}/alerts",
    "/api/alert-channels",
    "/api/alert-channels/{channel_id}",
    "/api/alert-channels/{channel_id}/test",
    "/api/alerts",
    "/api/schedule/preview",
    "/api/sessions/{session_id}",
    "/api/sessions/{session_id}/cancel",
    "/api/sessions/{session_id}/logs",
}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def json_schema(response: dict[str, Any]) -> dict[str, Any]:
    return response["content"]["application/json"]["schema"]


# --- the schema itself -------------------------------------------------------------


def test_the_schema_generates_without_warnings_and_is_valid_openapi(tmp_path):
    target = tmp_path / "schema.yaml"
    # Raises on any warning or error, and checks against the OpenAPI 3.0 JSON schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    document = yaml.safe_load(target.read_text())
    assert document["openapi"].startswith("3.0")
    validate_spec(document)


def test_every_path_is_listed_once_without_a_trailing_slash(spec):
    assert set(spec["paths"]) == PATHS
    operation_ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(operation_ids) == len(set(operation_ids))


def test_success_answers_are_described_inside_the_envelope(spec):
    for path, method, operation in operations(spec):
        successes = {code: r for code, r in operation["responses"].items() if code < "300"}
        assert len(successes) == 1, (path, method)
        (schema,) = (json_schema(response) for response in successes.values())
        if method == "delete":
            assert schema == {"$ref": "#/components/schemas/Message"}, path
        else:
            assert schema["required"] == ["success", "data"], (path, method)
            assert schema["properties"]["success"]["type"] == "boolean"


def test_errors_are_described_with_the_error_envelope(spec):
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"success", "error", "details"}
    assert sorted(error["required"]) == ["error", "success"]
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        expected = {"400", "401", "405", "429"} | ({"404"} if "{" in path else set())
        assert expected <= set(responses), (path, method)
        for code, response in responses.items():
            if code >= "400":
                assert json_schema(response) == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in responses["429"]["headers"]
    run = spec["paths"]["/api/agents/{agent_id}/run"]["post"]["responses"]
    assert set(run) == {"202", "400", "401", "404", "405", "429"}
    assert "400" in spec["paths"]["/api/agents"]["post"]["responses"]
    assert "400" in spec["paths"]["/api/agents"]["get"]["responses"]  # limit / offset


def test_field_names_are_camel_case(spec):
    def names(schema: Any):
        if isinstance(schema, dict):
            for name, value in schema.get("properties", {}).items():
                yield name
                yield from names(value)
            for key in ("items", "allOf", "oneOf", "anyOf"):
                if key in schema:
                    yield from names(schema[key])
        elif isinstance(schema, list):
            for item in schema:
                yield from names(item)

    found = set(names(list(spec["components"]["schemas"].values())))
    assert {"agentType", "scheduleExpression", "nextRunAt", "upcomingRuns", "sessionId"} <= found
    assert not [name for name in found if "_" in name]


def test_auth_is_a_jwt_bearer_token(spec):
    scheme = spec["components"]["securitySchemes"]["jwtAuth"]
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for path, method, operation in operations(spec):
        if path.startswith("/api/auth/"):
            assert "security" not in operation, path
        else:
            assert {"jwtAuth": []} in operation["security"], (path, method)


LISTS = (
    "/api/agents",
    "/api/agents/{agent_id}/sessions",
    "/api/agents/{agent_id}/slots",
    "/api/agents/{agent_id}/audit",
    "/api/agents/stats",
)


def test_lists_take_limit_and_offset(spec):
    for path in LISTS:
        parameters = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert parameters["limit"]["schema"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "default": 20,
        }
        assert parameters["offset"]["in"] == "query"


def test_offsets_go_up_to_a_billion(spec):
    for path in LISTS:
        parameters = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert parameters["offset"]["schema"] == {
            "type": "integer",
            "minimum": 0,
            "maximum": 1_000_000_000,
            "default": 0,
        }


def request_schema(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    reference = json_schema(spec["paths"][path][method]["requestBody"])["$ref"]
    return spec["components"]["schemas"][reference.rsplit("/", 1)[-1]]


def component(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    (reference,) = schema["allOf"]
    return spec["components"]["schemas"][reference["$ref"].rsplit("/", 1)[-1]]


def test_request_bodies_say_what_the_api_refuses(spec):
    for path, method in [("/api/agents", "post"), ("/api/agents/{id}", "patch")]:
        properties = request_schema(spec, path, method)["properties"]
        assert set(properties) == {"name", "agentType", "configuration"}, (path, method)
        name = properties["name"]
        assert (name["minLength"], name["maxLength"], name["pattern"]) == (1, 200, r"\S")
        agent_type = properties["agentType"]
        assert (agent_type["minLength"], agent_type["maxLength"]) == (1, 64)
        assert component(spec, agent_type)["enum"] == ["demo", "python", "webhook"]
    for method in ("post", "patch"):
        properties = request_schema(spec, "/api/agents/{agent_id}/schedule", method)["properties"]
        cron = properties["cronExpression"]
        assert (cron["type"], cron["minLength"], cron["maxLength"]) == ("string", 1, 200)
        zones = component(spec, properties["timezone"])["enum"]
        assert zones == sorted(zones) and {"UTC", "Europe/Berlin", "Asia/Kathmandu"} <= set(zones)
        assert not {"Factory", "localtime", "posixrules"} & set(zones)
    for path in ("/api/auth/token", "/api/auth/token/refresh"):
        for field in request_schema(spec, path, "post")["properties"].values():
            assert field["minLength"] == 1, path


def test_only_post_needs_a_cron_expression_and_put_is_documented_as_patch(spec):
    schedule = "/api/agents/{agent_id}/schedule"
    assert request_schema(spec, schedule, "post")["required"] == ["cronExpression"]
    assert "required" not in request_schema(spec, schedule, "patch")
    agent = spec["paths"]["/api/agents/{id}"]
    assert agent["put"]["requestBody"] == agent["patch"]["requestBody"]
    assert "required" not in request_schema(spec, "/api/agents/{id}", "put")


def test_links_lead_from_new_objects_to_every_operation_on_them(spec):
    by_id = {operation["operationId"]: (path, operation) for path, _, operation in operations(spec)}
    targets = {}
    for source in ("createAgent", "runAgent", "setSchedule", "createAlertChannel"):
        _, operation = by_id[source]
        (response,) = (r for code, r in operation["responses"].items() if code < "300")
        for name, link in response["links"].items():
            _, target = by_id[link["operationId"]]
            assert name == link["operationId"]
            ((parameter, expression),) = link["parameters"].items()
            assert parameter.removeprefix("path.") in {
                p["name"] for p in target["parameters"] if p["in"] == "path"
            }
            targets[link["operationId"]] = expression
    taking_ids = {
        operation["operationId"] for path, _, operation in operations(spec) if "{" in path
    }
    assert set(targets) == taking_ids
    assert targets["getAgent"] == "$response.body#/data/id"
    assert targets["cancelSession"] == "$response.body#/data/sessionId"


def test_ids_in_paths_are_uuids(spec):
    for path, _, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["schema"] == {"type": "string", "format": "uuid"}, path


# --- real answers against the schema ------------------------------------------------


def strict(schema: Any) -> Any:
    """The schema with undocumented object keys forbidden.

    drf-spectacular writes a nullable reference as ``allOf: [$ref]`` next to
    ``nullable: true``, which tools read as "the reference or null" but a
    strict OpenAPI 3.0 validator does not (``nullable`` needs a ``type``
    beside it); it is spelled out here the way the tools read it.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    if result.get("nullable") and "allOf" in result and "type" not in result:
        result = {"anyOf": [{"allOf": result.pop("allOf")}, {"enum": [None]}], **result}
    return result


class Checker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.components = strict(copy.deepcopy(spec["components"]))
        self.checked: set[tuple[str, str, str]] = set()

    def __call__(self, response, template: str, method: str) -> dict[str, Any]:
        code = str(response.status_code)
        operation = self.spec["paths"][template][method]
        assert code in operation["responses"], (template, method, code, response.content)
        schema = {
            **strict(json_schema(operation["responses"][code])),
            "components": self.components,
        }
        body = response.json()
        OAS30ReadValidator(schema, format_checker=oas30_format_checker).validate(body)
        self.checked.add((template, method, code))
        return body


@pytest.fixture
def no_broker(monkeypatch):
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)


@pytest.mark.django_db
def test_real_answers_match_the_schema(spec, api, anonymous, user, no_broker):
    check = Checker(spec)

    body = check(
        anonymous.post(
            "/api/auth/token", {"username": user.username, "password": PASSWORD}, format="json"
        ),
        "/api/auth/token",
        "post",
    )
    refresh = body["data"]["refresh"]
    check(
        anonymous.post("/api/auth/token", {"username": user.username, "password": "no"}),
        "/api/auth/token",
        "post",
    )
    check(
        anonymous.post("/api/auth/token/refresh", {"refresh": refresh}, format="json"),
        "/api/auth/token/refresh",
        "post",
    )
    check(anonymous.get("/api/agents"), "/api/agents", "get")

    created = check(
        api.post(
            "/api/agents",
            {"name": "Writer", "agentType": "demo", "configuration": {"steps": 1}},
            format="json",
        ),
        "/api/agents",
        "post",
    )
    agent_id = created["data"]["id"]
    check(
        api.post("/api/agents", {"name": "", "agentType": "x"}, format="json"),
        "/api/agents",
        "post",
    )
    check(api.get("/api/agents?limit=5"), "/api/agents", "get")
    check(api.get("/api/agents?limit=500"), "/api/agents", "get")
    check(api.delete("/api/agents"), "/api/agents", "post")  # a 405, documented everywhere
    check(api.get(f"/api/agents/{agent_id}"), "/api/agents/{id}", "get")
    check(
        api.patch(f"/api/agents/{agent_id}", {"name": "W"}, format="json"),
        "/api/agents/{id}",
        "patch",
    )
    check(api.get(f"/api/agents/{AgentFactory().pk}"), "/api/agents/{id}", "get")

    schedule = f"/api/agents/{agent_id}/schedule"
    template = "/api/agents/{agent_id}/schedule"
    check(api.get(schedule), template, "get")  # no schedule yet
    check(api.post(schedule, {"cronExpression": "0 9 * * *"}, format="json"), template, "post")
    dst = {"cronExpression": "30 2 * * *", "timezone": "Europe/Berlin"}
    assert check(api.post(schedule, dst, format="json"), template, "post")["data"]["warnings"]
    check(api.get(schedule), template, "get")  # with DST warnings
    check(api.post(schedule, {"cronExpression": "99 * * * *"}, format="json"), template, "post")
    check(api.patch(schedule, {"enabled": False}, format="json"), template, "patch")
    check(
        api.patch(schedule, {"enabled": True, "priority": "HIGH"}, format="json"), template, "patch"
    )
    check(api.get(schedule), template, "get")
    policies = {
        "overlapPolicy": "CANCEL_OTHER",
        "catchupPolicy": "ALL",
        "catchupWindow": 600,
        "jitterSeconds": 30,
    }
    check(api.patch(schedule, policies, format="json"), template, "patch")
    snooze = {"pausedUntil": "2099-01-01T00:00:00Z", "pauseNote": "Holidays"}
    assert check(api.patch(schedule, snooze, format="json"), template, "patch")["data"][
        "pausedUntil"
    ]
    check(api.get(schedule), template, "get")  # paused, with a note and an end
    check(api.patch(schedule, {"jitterSeconds": "30"}, format="json"), template, "patch")
    check(
        api.patch(schedule, {"enabled": True, "catchupWindow": None}, format="json"),
        template,
        "patch",
    )
    check(api.get(f"{schedule}/status"), "/api/agents/{agent_id}/schedule/status", "get")

    slots = f"/api/agents/{agent_id}/slots"
    slots_template = "/api/agents/{agent_id}/slots"
    check(api.get(slots), slots_template, "get")  # none yet
    queued_slot = SessionFactory(agent_id=agent_id, trigger="SCHEDULE")
    insert_slots(
        [
            ScheduleSlot(
                agent_id=agent_id,
                scheduled_for=queued_slot.scheduled_for,
                outcome="QUEUED",
                session=queued_slot,
                reason="Queued.",
            ),
            ScheduleSlot(
                agent_id=agent_id,
                scheduled_for=queued_slot.scheduled_for - timedelta(minutes=1),
                outcome="SKIPPED",
                reason="The previous run was still running.",
            ),
        ]
    )
    assert len(check(api.get(slots), slots_template, "get")["data"]["slots"]) == 2
    check(api.get(f"{slots}?from=2026-01-01T00:00:00&limit=1"), slots_template, "get")
    check(
        api.get(f"{slots}?from=2026-01-01T00:00:00Z&to=2099-01-01T00:00:00Z"), slots_template, "get"
    )

    preview = "/api/schedule/preview"
    body = check(
        api.get(preview, {"cronExpression": "30 2 * * *", "timezone": "Europe/Berlin"}),
        preview,
        "get",
    )
    assert body["data"]["warnings"]
    check(api.get(preview, {"cronExpression": "0 9 * * *"}), preview, "get")
    check(api.get(preview, {"cronExpression": "99 * * * *"}), preview, "get")
    resume = "/api/agents/{agent_id}/schedule/resume"
    check(api.patch(schedule, {"enabled": False}, format="json"), template, "patch")
    preview = {"policy": "RUN_ALL", "dryRun": True}
    check(api.post(f"{schedule}/resume", preview, format="json"), resume, "post")
    check(api.post(f"{schedule}/resume", {"policy": "ALL"}, format="json"), resume, "post")
    check(api.post(f"{schedule}/resume", {"policy": "RUN_LATEST"}, format="json"), resume, "post")
    backfill = "/api/agents/{agent_id}/backfill"
    day = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    check(api.post(f"/api/agents/{agent_id}/backfill", day, format="json"), backfill, "post")
    late = {**day, "end": "2999-01-01T00:00:00Z"}
    check(api.post(f"/api/agents/{agent_id}/backfill", late, format="json"), backfill, "post")
    check(api.get("/api/agents/scheduler/status"), "/api/agents/scheduler/status", "get")
    audit_template = "/api/agents/{agent_id}/audit"
    trail = check(api.get(f"/api/agents/{agent_id}/audit"), audit_template, "get")
    assert trail["data"]["entries"][-1]["action"] == "agent.created"
    check(api.get(f"/api/agents/{agent_id}/audit?limit=0"), audit_template, "get")
    stats_template = "/api/agents/{agent_id}/stats"
    check(api.get(f"/api/agents/{agent_id}/stats?window=7d"), stats_template, "get")
    check(api.get(f"/api/agents/{agent_id}/stats?window=1y"), stats_template, "get")

    rules = "/api/agents/{agent_id}/alerts"
    channels, channel = "/api/alert-channels", "/api/alert-channels/{channel_id}"
    mail = {"name": "Ops", "kind": "email", "target": "ops@example.com"}
    created = check(api.post(channels, mail, format="json"), channels, "post")
    channel_id = created["data"]["id"]
    check(api.post(channels, {**mail, "kind": "pager"}, format="json"), channels, "post")
    check(api.get(channels), channels, "get")
    check(api.get(f"{channels}/{channel_id}"), channel, "get")
    check(
        api.patch(f"{channels}/{channel_id}", {"name": "On call"}, format="json"), channel, "patch"
    )
    check(
        api.post(f"{channels}/{channel_id}/test"), "/api/alert-channels/{channel_id}/test", "post"
    )
    wanted = {"failuresInARow": 2, "pauseAfterFailures": 5, "channels": [channel_id]}
    check(api.put(f"/api/agents/{agent_id}/alerts", wanted, format="json"), rules, "put")
    check(
        api.put(f"/api/agents/{agent_id}/alerts", {"lateAfterSeconds": -1}, format="json"),
        rules,
        "put",
    )
    check(api.get(f"/api/agents/{agent_id}/alerts"), rules, "get")
    check(api.get("/api/alerts?status=open"), "/api/alerts", "get")
    check(api.get("/api/alerts?status=maybe"), "/api/alerts", "get")

    queued = check(api.post(f"/api/agents/{agent_id}/run"), "/api/agents/{agent_id}/run", "post")
    session_id = queued["data"]["sessionId"]
    SessionFactory(agent_id=agent_id, status="FAILED", error_message="Boom.", duration_ms=12)
    check(api.get(f"/api/agents/{agent_id}/sessions"), "/api/agents/{agent_id}/sessions", "get")
    check(api.get(f"/api/sessions/{session_id}"), "/api/sessions/{session_id}", "get")
    finished = SessionFactory(
        agent_id=agent_id, status="SUCCEEDED", completed_at=timezone.now(), duration_ms=40
    )
    check(api.get(f"/api/agents/{agent_id}/stats"), "/api/agents/{agent_id}/stats", "get")
    check(api.get("/api/agents/stats?window=30d"), "/api/agents/stats", "get")
    check(api.get("/api/agents/stats?window=x"), "/api/agents/stats", "get")
    finished.delete()
    logs = "/api/sessions/{session_id}/logs"
    check(api.get(f"/api/sessions/{session_id}/logs"), logs, "get")
    check(api.get(f"/api/sessions/{session_id}/logs?after=x"), logs, "get")
    cancel = "/api/sessions/{session_id}/cancel"
    check(api.post(f"/api/sessions/{session_id}/cancel"), cancel, "post")
    check(api.post(f"/api/sessions/{session_id}/cancel"), cancel, "post")  # already finished

    check(api.delete(f"{channels}/{channel_id}"), channel, "delete")
    check(api.delete(schedule), template, "delete")
    check(api.delete(f"/api/agents/{agent_id}"), "/api/agents/{id}", "delete")

    answered = {(template, method) for template, method, _ in check.checked}
    assert answered == {(path, method) for path, method, _ in operations(spec)} - {
        ("/api/agents/{id}", "put")  # the same view as PATCH
    }
    codes = {code for _, _, code in check.checked}
    assert {"200", "201", "202", "400", "401", "404", "405"} <= codes


# Exactly at each documented bound, and one past it.
MINUTES_200 = ",".join(["1"] * 95 + ["10"]) + " * * * *"
MINUTES_201 = ",".join(["1"] * 95 + ["10"]) + " 10 * * *"


@pytest.mark.django_db
def test_the_documented_bounds_are_the_bounds_enforced(api, user, no_broker):
    assert len(MINUTES_200) == 200 and len(MINUTES_201) == 201
    agent = AgentFactory(owner=user)
    sessions = f"/api/agents/{agent.pk}/sessions"
    slots = f"/api/agents/{agent.pk}/slots"
    trail = f"/api/agents/{agent.pk}/audit"
    for path in ("/api/agents", sessions, slots, trail):
        for query, status in [
            ("limit=1", 200),
            ("limit=100", 200),
            ("limit=0", 400),
            ("limit=101", 400),
            ("offset=1000000000", 200),
            ("offset=1000000001", 400),
            ("offset=-1", 400),
        ]:
            assert api.get(f"{path}?{query}").status_code == status, (path, query)

    def create(name: str, agent_type: str = "demo") -> int:
        body = {"name": name, "agentType": agent_type}
        return api.post("/api/agents", body, format="json").status_code

    assert [create("n" * 200), create("n"), create("n" * 201), create(""), create(" ")] == [
        201,
        201,
        400,
        400,
        400,
    ]
    assert create("x", "t" * 64) == 400  # long enough, but no registered type

    schedule = f"/api/agents/{agent.pk}/schedule"
    for cron, status in [(MINUTES_200, 200), (MINUTES_201, 400), ("", 400)]:
        response = api.post(schedule, {"cronExpression": cron}, format="json")
        assert response.status_code == status, (cron, response.content)
        preview = api.get("/api/schedule/preview", {"cronExpression": cron})
        assert preview.status_code == status, (cron, preview.content)
    for body, status in [
        ({"catchupWindow": 0}, 200),
        ({"catchupWindow": 2_678_400}, 200),
        ({"catchupWindow": 2_678_401}, 400),
        ({"catchupWindow": -1}, 400),
        ({"jitterSeconds": 0}, 200),
        ({"jitterSeconds": 3600}, 200),
        ({"jitterSeconds": 3601}, 400),
        ({"jitterSeconds": -1}, 400),
        ({"enabled": False, "pauseNote": "n" * 500}, 200),
        ({"enabled": False, "pauseNote": "n" * 501}, 400),
    ]:
        response = api.patch(schedule, body, format="json")
        assert response.status_code == status, (body, response.content)


@pytest.mark.django_db
def test_a_rate_limited_answer_matches_the_schema(spec, api, settings):
    settings.API_RATE_LIMIT = "1/m"
    check = Checker(spec)
    response = [api.get("/api/agents") for _ in range(2)][-1]
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    check(response, "/api/agents", "get")


# --- the endpoints ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/schema", "/api/schema/"])
def test_the_schema_endpoint_answers_anonymously(path):
    response = Client().get(path, {"format": "json"})
    assert response.status_code == 200
    document = response.json()
    assert set(document["paths"]) == PATHS


@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/"])
def test_the_docs_render_offline_from_local_assets(path):
    client = Client()
    response = client.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert "SwaggerUIBundle" in page
    # Matched as a host after "//": the page also carries a random CSRF
    # token, which now and then spells "cdn".
    assert not re.search(r"//[^/\s\"']*(?:cdn|jsdelivr|unpkg)", page, re.IGNORECASE)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(asset.startswith("/static/") for asset in assets), assets
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
