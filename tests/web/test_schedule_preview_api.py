"""GET /api/schedule/preview: a schedule in words and times before any agent has it."""

from __future__ import annotations

from datetime import datetime

import pytest
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent
from scheduling.services import set_schedule
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

PREVIEW = "/api/schedule/preview"


def test_a_preview_answers_words_runs_and_warnings(api):
    response = api.get(PREVIEW, {"cronExpression": "0 9 * * 1-5", "timezone": "Europe/Berlin"})

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert set(data) == {"description", "upcomingRuns", "warnings"}
    assert data["description"] == "At 09:00 AM, Monday through Friday"
    runs = [datetime.fromisoformat(run) for run in data["upcomingRuns"]]
    assert len(runs) == 5 and runs == sorted(runs)
    assert all(run.weekday() < 5 for run in runs)
    assert all(run.utcoffset().total_seconds() == 0 for run in runs)
    assert data["warnings"] == []


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("30 2 * * *", "America/New_York"),  # a time the spring change skips
        ("30 1 * * *", "Europe/London"),  # one the autumn change repeats
        ("*/20 * * * *", "Asia/Kathmandu"),
        ("0 0 13 * 5", "UTC"),
        ("@weekly", "Australia/Lord_Howe"),
    ],
)
def test_a_preview_says_what_the_schedule_will_say_once_set(api, user, expression, zone):
    query = {"cronExpression": expression, "timezone": zone}
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression=expression, timezone_name=zone)

    before = api.get(PREVIEW, query).json()["data"]
    schedule = api.get(f"/api/agents/{agent.pk}/schedule").json()["data"]
    after = api.get(PREVIEW, query).json()["data"]

    shown = {key: schedule[key] for key in ("description", "upcomingRuns", "warnings")}
    # A fire time may pass between the requests: then the one after agrees.
    assert shown in (before, after)


def test_a_preview_warns_of_a_time_the_clocks_skip(api):
    warnings = api.get(
        PREVIEW, {"cronExpression": "30 2 * * *", "timezone": "America/New_York"}
    ).json()["data"]["warnings"]
    assert len(warnings) == 1
    assert "02:30 does not exist in America/New_York" in warnings[0]


def test_the_timezone_defaults_to_utc(api):
    runs = api.get(PREVIEW, {"cronExpression": "15 6 * * *"}).json()["data"]["upcomingRuns"]
    assert all(run.endswith("T06:15:00Z") for run in runs)


def test_a_preview_changes_nothing(api, user):
    AgentFactory(owner=user)
    before = list(AIAgent.objects.values())
    api.get(PREVIEW, {"cronExpression": "@hourly"})
    assert list(AIAgent.objects.values()) == before
    assert not PeriodicTask.objects.exists()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "cronExpression"),
        ({"cronExpression": ""}, "cronExpression"),
        ({"cronExpression": "99 99 * * *"}, "cronExpression"),
        ({"cronExpression": "0 0 31 2 *"}, "cronExpression"),
        ({"cronExpression": "* * * * * *"}, "cronExpression"),
        ({"cronExpression": "@reboot"}, "cronExpression"),
        ({"cronExpression": "1," * 100 + "2 * * * *"}, "cronExpression"),  # over 200 characters
        ({"cronExpression": "   "}, "cronExpression"),
        ({"cronExpression": "0 9 * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"cronExpression": "0 9 * * *", "timezone": ""}, "timezone"),
        ({"cronExpression": "0 9 * * *", "timezone": "localtime"}, "timezone"),
        ({"cronExpression": "0 9 * * *", "timezone": "europe/berlin"}, "timezone"),
        ({"cron_expression": "0 9 * * *"}, "cronExpression"),  # the body's name, in camelCase
    ],
)
def test_a_bad_expression_or_timezone_is_a_400_naming_it(api, query, field):
    response = api.get(PREVIEW, query)
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["success"] is False
    assert list(answer["details"]) == [field]
    assert answer["error"]


def test_the_refusal_is_the_one_setting_the_schedule_gives(api, user):
    agent = AgentFactory(owner=user)
    for expression in ("5-1 * * * *", "*/0 * * * *", "0 0 31 2 *"):
        preview = api.get(PREVIEW, {"cronExpression": expression}).json()
        posted = api.post(
            f"/api/agents/{agent.pk}/schedule", {"cronExpression": expression}, format="json"
        ).json()
        assert preview == posted


@pytest.mark.parametrize("suffix", ["", "/"])
def test_the_preview_answers_with_and_without_a_slash(api, suffix):
    assert api.get(PREVIEW + suffix, {"cronExpression": "@daily"}).status_code == 200


def test_the_preview_needs_a_token(anonymous):
    response = anonymous.get(PREVIEW, {"cronExpression": "@daily"})
    assert response.status_code == 401
    assert response.json()["success"] is False


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_preview_only_answers_get(api, method):
    response = getattr(api, method)(PREVIEW, {"cronExpression": "@daily"}, format="json")
    assert response.status_code == 405
