"""The alerts API: channels, an agent's rules, the incident list, and bad input."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from agents.models import AuditEntry
from conftest import client_for
from scheduling import incidents, pacing
from scheduling.models import AlertChannel, AlertRule, Incident
from tests.factories import AgentFactory, UserFactory
from tests.receivers import Receiver

pytestmark = pytest.mark.django_db

CHANNELS = "/api/alert-channels"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(pacing, "send_task", lambda *args, **kwargs: None)
    monkeypatch.setattr(pacing, "request_admission", lambda: None)


@pytest.fixture
def receiver(settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    server = Receiver()
    yield server
    server.close()


def create(api, **body):
    return api.post(
        CHANNELS,
        {"name": "Ops", "kind": "email", "target": "ops@example.com", **body},
        format="json",
    )


def test_a_channel_s_secret_is_answered_once_at_creation(api, receiver):
    target = f"http://127.0.0.1:{receiver.port}/hook"
    response = create(api, kind="webhook", target=target)
    assert response.status_code == 201, response.content
    created = response.json()["data"]
    assert len(created["secret"]) == 64
    assert created["kind"] == "webhook" and created["target"] == target
    assert created["lastError"] is None and created["lastSentAt"] is None
    shown = api.get(f"{CHANNELS}/{created['id']}").json()["data"]
    assert "secret" not in shown
    assert all("secret" not in channel for channel in api.get(CHANNELS).json()["data"])

    tested = api.post(f"{CHANNELS}/{created['id']}/test").json()["data"]
    assert tested == {"delivered": True, "error": None}
    (received,) = receiver.received
    signature = hmac.new(created["secret"].encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-NeonHub-Signature"] == f"sha256={signature}"
    assert json.loads(received.body)["event"] == "test"
    assert api.get(f"{CHANNELS}/{created['id']}").json()["data"]["lastSentAt"]


def test_a_test_that_fails_answers_the_error_and_keeps_it_on_the_channel(api, receiver):
    receiver.status = 500
    channel_id = create(api, kind="slack", target=f"http://127.0.0.1:{receiver.port}/s").json()[
        "data"
    ]["id"]
    tested = api.post(f"{CHANNELS}/{channel_id}/test").json()["data"]
    assert tested == {"delivered": False, "error": "The Slack answered HTTP 500."}
    assert api.get(f"{CHANNELS}/{channel_id}").json()["data"]["lastError"] == tested["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "pager"}, "kind"),
        ({"kind": 3}, "kind"),
        ({"kind": "email", "target": "not an address"}, "target"),
        ({"kind": "webhook", "target": "ftp://example.com/x"}, "target"),
        ({"kind": "webhook", "target": "http://127.0.0.1:9/internal"}, "target"),
        ({"kind": "slack", "target": "http://10.0.0.8/hook"}, "target"),
        ({"kind": "webhook", "target": "http://[::1]/hook"}, "target"),
        ({"kind": "webhook", "target": "http://0x7f.1/hook"}, "target"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"target": "a" * 3000}, "target"),
    ],
)
def test_bad_channels_are_refused_naming_the_field_and_nothing_is_stored(api, body, field):
    response = create(api, **body)
    assert response.status_code == 400, response.content
    assert response.json()["success"] is False
    assert field in response.json()["details"], response.json()
    assert AlertChannel.objects.count() == 0


def test_a_channel_can_be_changed_but_not_to_a_bad_target(api):
    channel_id = create(api).json()["data"]["id"]
    url = f"{CHANNELS}/{channel_id}"
    assert api.patch(url, {"name": "Night shift"}, format="json").json()["data"]["name"] == (
        "Night shift"
    )
    # A new kind is checked against the target it would keep.
    refused = api.patch(url, {"kind": "webhook"}, format="json")
    assert refused.status_code == 400 and "target" in refused.json()["details"]
    assert AlertChannel.objects.get().kind == "email"
    assert api.delete(url).json() == {"success": True, "message": "Alert channel deleted"}
    assert api.get(url).status_code == 404


def test_rules_round_trip_and_are_audited(api, user):
    agent = AgentFactory(owner=user)
    channel_id = create(api).json()["data"]["id"]
    url = f"/api/agents/{agent.pk}/alerts"
    assert api.get(url).json()["data"] == {
        "lateAfterSeconds": None,
        "maxDurationSeconds": None,
        "failuresInARow": None,
        "pauseAfterFailures": None,
        "channels": [],
        "failedRunsInARow": 0,
    }
    wanted = {"lateAfterSeconds": 120, "failuresInARow": 3, "channels": [channel_id]}
    saved = api.put(url, wanted, format="json").json()["data"]
    assert saved == {**api.get(url).json()["data"], **wanted}
    assert saved["maxDurationSeconds"] is None and saved["pauseAfterFailures"] is None
    entry = AuditEntry.objects.get(agent=agent, action="alerts.changed")
    assert (entry.source, entry.actor_name) == ("API", user.username)
    assert entry.changes == {
        "lateAfterSeconds": [None, 120],
        "failuresInARow": [None, 3],
        "channels": [[], ["Ops"]],
    }
    # Replacing with the same rules records nothing.
    api.put(url, wanted, format="json")
    assert AuditEntry.objects.filter(agent=agent, action="alerts.changed").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lateAfterSeconds": -5}, "lateAfterSeconds"),
        ({"lateAfterSeconds": 0}, "lateAfterSeconds"),
        ({"maxDurationSeconds": 10**8}, "maxDurationSeconds"),
        ({"failuresInARow": "3"}, "failuresInARow"),
        ({"pauseAfterFailures": 2.5}, "pauseAfterFailures"),
        ({"pauseAfterFailures": True}, "pauseAfterFailures"),
        ({"channels": "all"}, "channels"),
        ({"channels": ["not-a-uuid"]}, "channels"),
    ],
)
def test_bad_rules_are_refused_naming_the_field_and_nothing_is_stored(api, user, body, field):
    agent = AgentFactory(owner=user)
    response = api.put(f"/api/agents/{agent.pk}/alerts", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["details"], response.json()
    assert not AlertRule.objects.exists()


def test_a_body_that_is_not_an_object_is_refused(api, user):
    agent = AgentFactory(owner=user)
    response = api.put(f"/api/agents/{agent.pk}/alerts", [1, 2], format="json")
    assert response.status_code == 400


def test_another_user_s_channel_in_a_rule_is_not_found(api, user, other_user):
    agent = AgentFactory(owner=user)
    theirs = create(client_for(other_user)).json()["data"]["id"]
    mine = create(api).json()["data"]["id"]
    response = api.put(
        f"/api/agents/{agent.pk}/alerts",
        {"failuresInARow": 1, "channels": [mine, theirs]},
        format="json",
    )
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Alert channel not found"}
    assert not AlertRule.objects.exists()
    assert [c["id"] for c in api.get(CHANNELS).json()["data"]] == [mine]


def test_the_incident_list_shows_the_user_s_incidents_by_status(api, user, other_user):
    mine, theirs = AgentFactory(owner=user), AgentFactory(owner=other_user)
    resolved = incidents.open_incident(mine, "LATE", "Late once.")
    incidents.resolve(resolved, mine, "Its run started.")
    still = incidents.open_incident(mine, "FAILING", "Failing.")
    incidents.open_incident(theirs, "FAILING", "Not yours.")

    every = api.get("/api/alerts").json()["data"]
    assert [a["id"] for a in every["alerts"]] == [str(still.pk), str(resolved.pk)]
    assert every["pagination"]["total"] == 2
    (shown,) = api.get("/api/alerts?status=open").json()["data"]["alerts"]
    assert shown == {
        "id": str(still.pk),
        "agentId": str(mine.pk),
        "agentName": mine.name,
        "kind": "FAILING",
        "message": "Failing.",
        "sessionId": None,
        "openedAt": shown["openedAt"],
        "resolvedAt": None,
        "resolution": "",
    }
    (done,) = api.get("/api/alerts?status=resolved").json()["data"]["alerts"]
    assert done["resolvedAt"] and done["resolution"] == "Its run started."
    assert api.get(f"/api/alerts?agentId={theirs.pk}").json()["data"]["alerts"] == []
    staff = client_for(UserFactory(is_staff=True))
    assert staff.get("/api/alerts").json()["data"]["pagination"]["total"] == 3


@pytest.mark.parametrize("query", ["status=maybe", "agentId=x", "limit=0", "offset=-1"])
def test_bad_incident_list_queries_are_refused(api, query):
    response = api.get(f"/api/alerts?{query}")
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_opening_twice_keeps_one_open_incident_per_agent_and_kind(user):
    agent = AgentFactory(owner=user)
    assert incidents.open_incident(agent, "LATE", "One.")
    assert incidents.open_incident(agent, "LATE", "Two.") is None
    assert incidents.open_incident(agent, "OVERRUN", "Other kind.")
    assert Incident.objects.filter(agent=agent).count() == 2
