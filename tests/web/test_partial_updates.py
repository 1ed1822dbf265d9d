"""PATCH changes only the fields sent, whatever the content type.

A form-encoded PATCH of the schedule's priority alone once paused the
schedule: DRF reads a boolean missing from a form as false. Every PATCH
endpoint is sent one field at a time as JSON, as a form and as multipart, and
everything else stored about the agent and its beat entry must stay as it was.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent
from scheduling.services import set_schedule
from tests.api_routes import api_routes
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

ENCODINGS = ["json", "form", "multipart"]

SNOOZE_END = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
# Fields that are sent to a paused schedule.
PAUSED_FIRST = {"pauseNote"}

# (URL name, the one field sent, what it stores, what else follows from it)
PATCHES = [
    ("agent-schedule", {"priority": "HIGH"}, {"priority": 3}, set()),
    (
        "agent-schedule",
        {"cronExpression": "0 7 * * *"},
        {"schedule_expression": "0 7 * * *"},
        {"next_run_at", "crontab"},
    ),
    (
        "agent-schedule",
        {"timezone": "Asia/Tokyo"},
        {"schedule_timezone": "Asia/Tokyo"},
        {"next_run_at", "crontab"},
    ),
    (
        "agent-schedule",
        {"enabled": False},
        {"schedule_enabled": False, "task_enabled": False, "next_run_at": None},
        {"paused_at"},
    ),
    ("agent-schedule", {"overlapPolicy": "SKIP"}, {"overlap_policy": "SKIP"}, set()),
    ("agent-schedule", {"catchupPolicy": "ALL"}, {"catchup_policy": "ALL"}, set()),
    ("agent-schedule", {"catchupWindow": 600}, {"catchup_window": 600}, set()),
    ("agent-schedule", {"jitterSeconds": 30}, {"jitter_seconds": 30}, set()),
    # Sent to a paused schedule (see PAUSED_FIRST): a note needs a pause.
    ("agent-schedule", {"pauseNote": "Holidays"}, {"pause_note": "Holidays"}, set()),
    (
        "agent-schedule",
        {"pausedUntil": SNOOZE_END.isoformat()},
        {
            "paused_until": SNOOZE_END,
            "schedule_enabled": False,
            "task_enabled": False,
            "next_run_at": None,
        },
        {"paused_at"},
    ),
    ("agent-detail", {"name": "Renamed"}, {"name": "Renamed"}, set()),
    ("agent-detail", {"configuration": {"steps": 2}}, {"configuration": {"steps": 2}}, set()),
]


@pytest.fixture
def agent(user) -> AIAgent:
    agent = AgentFactory(owner=user, configuration={"steps": 5, "stepSeconds": 0})
    set_schedule(agent, expression="30 8 * * 1-5", timezone_name="Europe/Berlin", priority=2)
    return AIAgent.objects.get(pk=agent.pk)


def stored(agent: AIAgent) -> dict[str, Any]:
    """What is stored about the agent and its beat entry, but the update time."""
    row = AIAgent.objects.filter(pk=agent.pk).values().get()
    row.pop("updated_at")
    task = PeriodicTask.objects.select_related("crontab").get(pk=row["periodic_task_id"])
    row["task_enabled"] = task.enabled
    crontab = task.crontab
    crontab_fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    row["crontab"] = (*(getattr(crontab, name) for name in crontab_fields), str(crontab.timezone))
    return row


def as_text(value: Any) -> str:
    """A value as a form carries it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def send_patch(client, path: str, body: dict[str, Any], encoding: str):
    if encoding == "json":
        return client.patch(path, body, format="json")
    text = {key: as_text(value) for key, value in body.items()}
    if encoding == "multipart":
        return client.patch(path, text, format="multipart")
    return client.patch(path, urlencode(text), content_type="application/x-www-form-urlencoded")


def test_every_patch_endpoint_is_tested():
    patched = {route.name for route in api_routes() if "patch" in route.methods}
    # A channel is no agent: tests/web/test_alerts_api.py patches it field by field.
    assert patched - {"alert-channel"} == {name for name, *_ in PATCHES}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(
    ("name", "body", "stores", "follows"),
    PATCHES,
    ids=[f"{name} {next(iter(body))}" for name, body, *_ in PATCHES],
)
def test_a_patch_changes_only_the_field_it_sends(api, agent, encoding, name, body, stores, follows):
    parameter = "pk" if name == "agent-detail" else "agent_id"
    if PAUSED_FIRST & set(body):
        set_schedule(agent, enabled=False)
    before = stored(agent)

    response = send_patch(api, reverse(name, kwargs={parameter: agent.pk}), body, encoding)

    assert response.status_code == 200, response.content
    after = stored(agent)
    assert {key: after[key] for key in stores} == stores
    changed = {key for key in before if before[key] != after[key]}
    assert changed <= set(stores) | follows, changed


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_schedule_posted_without_enabled_is_enabled_whatever_the_content_type(
    api, user, encoding
):
    fresh = AgentFactory(owner=user)
    path = reverse("agent-schedule", kwargs={"agent_id": fresh.pk})
    body = {"cronExpression": "0 9 * * *"}
    if encoding == "json":
        response = api.post(path, body, format="json")
    elif encoding == "multipart":
        response = api.post(path, body, format="multipart")
    else:
        response = api.post(path, urlencode(body), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["scheduleEnabled"] is True


@pytest.mark.parametrize(("sent", "enabled"), [("false", False), ("true", True)])
def test_a_form_says_enabled_in_words(api, agent, sent, enabled):
    path = reverse("agent-schedule", kwargs={"agent_id": agent.pk})
    api.patch(path, {"enabled": not enabled}, format="json")
    response = api.patch(
        path, urlencode({"enabled": sent}), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"]["scheduleEnabled"] is enabled


@pytest.mark.parametrize("sent", ["false", "yes", "0"])
def test_json_enabled_must_be_a_boolean(api, agent, sent):
    before = stored(agent)
    response = api.patch(
        reverse("agent-schedule", kwargs={"agent_id": agent.pk}), {"enabled": sent}, format="json"
    )
    assert response.status_code == 400
    assert "enabled" in response.json()["details"]
    assert stored(agent) == before
