"""The schedule's policy fields through the API: overlap, catch-up, jitter, pause note, snooze."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent
from scheduling.services import ScheduleFieldError, set_schedule
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

POLICY_FIELDS = (
    "overlapPolicy",
    "catchupPolicy",
    "catchupWindow",
    "jitterSeconds",
    "pauseNote",
    "pausedUntil",
)


def schedule_path(agent) -> str:
    return f"/api/agents/{agent.pk}/schedule"


def future(days: int = 3) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


@pytest.fixture
def agent(user) -> AIAgent:
    return AgentFactory(owner=user)


@pytest.fixture
def scheduled(agent) -> AIAgent:
    set_schedule(agent, expression="0 9 * * *", timezone_name="Europe/Berlin")
    return AIAgent.objects.get(pk=agent.pk)


def stored(agent: AIAgent) -> dict[str, Any]:
    """Everything stored about the agent and its beat entry."""
    row = AIAgent.objects.filter(pk=agent.pk).values().get()
    task = PeriodicTask.objects.filter(pk=row["periodic_task_id"]).values().first()
    return {"agent": row, "task": task, "tasks": PeriodicTask.objects.count()}


def test_posting_every_policy_stores_and_answers_them(api, agent):
    body = {
        "cronExpression": "*/5 * * * *",
        "overlapPolicy": "CANCEL_OTHER",
        "catchupPolicy": "ALL",
        "catchupWindow": 3600,
        "jitterSeconds": 45,
    }
    response = api.post(schedule_path(agent), body, format="json")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert {field: data[field] for field in POLICY_FIELDS} == {
        "overlapPolicy": "CANCEL_OTHER",
        "catchupPolicy": "ALL",
        "catchupWindow": 3600,
        "jitterSeconds": 45,
        "pauseNote": "",
        "pausedUntil": None,
    }
    agent.refresh_from_db()
    assert (agent.overlap_policy, agent.catchup_policy) == ("CANCEL_OTHER", "ALL")
    assert (agent.catchup_window, agent.jitter_seconds) == (3600, 45)
    got = api.get(schedule_path(agent)).json()["data"]
    assert {field: got[field] for field in POLICY_FIELDS} == {
        field: data[field] for field in POLICY_FIELDS
    }


def test_a_new_schedule_answers_the_defaults(api, agent):
    data = api.post(schedule_path(agent), {"cronExpression": "@daily"}, format="json").json()
    assert {field: data["data"][field] for field in POLICY_FIELDS} == {
        "overlapPolicy": "BUFFER_ONE",
        "catchupPolicy": "LATEST",
        "catchupWindow": None,
        "jitterSeconds": 0,
        "pauseNote": "",
        "pausedUntil": None,
    }


def test_get_without_a_schedule_answers_the_defaults_too(api, agent):
    data = api.get(schedule_path(agent)).json()["data"]
    assert (data["overlapPolicy"], data["catchupWindow"], data["pausedUntil"]) == (
        "BUFFER_ONE",
        None,
        None,
    )


def test_a_null_catchup_window_goes_back_to_the_server_default(api, scheduled):
    api.patch(schedule_path(scheduled), {"catchupWindow": 120}, format="json")
    response = api.patch(schedule_path(scheduled), {"catchupWindow": None}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["catchupWindow"] is None
    scheduled.refresh_from_db()
    assert scheduled.catchup_window is None


def test_a_pause_with_a_note_keeps_the_note_until_resumed(api, scheduled):
    paused = api.patch(
        schedule_path(scheduled), {"enabled": False, "pauseNote": "Quarter close"}, format="json"
    ).json()["data"]
    assert (paused["scheduleEnabled"], paused["pauseNote"]) == (False, "Quarter close")
    paused_at = datetime.fromisoformat(paused["pausedAt"])
    assert abs(timezone.now() - paused_at) < timedelta(minutes=1)
    # The note can be changed while paused, alone, and the pause keeps its start.
    again = api.patch(schedule_path(scheduled), {"pauseNote": "Still closing"}, format="json")
    assert again.json()["data"]["pauseNote"] == "Still closing"
    got = api.get(schedule_path(scheduled)).json()["data"]
    assert (got["pauseNote"], datetime.fromisoformat(got["pausedAt"])) == (
        "Still closing",
        paused_at,
    )

    resumed = api.patch(schedule_path(scheduled), {"enabled": True}, format="json").json()["data"]
    assert (resumed["scheduleEnabled"], resumed["pauseNote"], resumed["pausedAt"]) == (
        True,
        "",
        None,
    )


def test_a_snooze_pauses_until_its_end(api, scheduled):
    until = future()
    response = api.patch(
        schedule_path(scheduled), {"pausedUntil": until, "pauseNote": "Away"}, format="json"
    )

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["scheduleEnabled"] is False and data["nextRunAt"] is None
    assert datetime.fromisoformat(data["pausedUntil"]) == datetime.fromisoformat(until)
    assert data["pausedUntil"].endswith("Z")
    assert data["pauseNote"] == "Away"
    assert PeriodicTask.objects.get().enabled is False

    resumed = api.patch(schedule_path(scheduled), {"enabled": True}, format="json").json()["data"]
    assert (resumed["pausedUntil"], resumed["pauseNote"]) == (None, "")


def test_a_snooze_end_in_another_offset_is_the_same_instant(api, scheduled):
    moment = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    sent = moment.astimezone(timezone.get_fixed_timezone(-300)).isoformat()
    assert sent.endswith("-05:00")
    api.patch(schedule_path(scheduled), {"pausedUntil": sent}, format="json")
    scheduled.refresh_from_db()
    assert scheduled.paused_until == moment


def test_a_snooze_end_with_an_offset_the_database_would_refuse_is_stored_in_utc(api, scheduled):
    moment = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    sent = moment.astimezone(timezone.get_fixed_timezone(-(20 * 60 + 38))).isoformat()
    response = api.patch(schedule_path(scheduled), {"pausedUntil": sent}, format="json")
    assert response.status_code == 200, response.content
    scheduled.refresh_from_db()
    assert scheduled.paused_until == moment


def test_a_null_snooze_end_clears_it_and_leaves_the_schedule_paused(api, scheduled):
    api.patch(schedule_path(scheduled), {"pausedUntil": future()}, format="json")
    data = api.patch(schedule_path(scheduled), {"pausedUntil": None}, format="json").json()["data"]
    assert (data["pausedUntil"], data["scheduleEnabled"]) == (None, False)


def test_a_form_sends_numbers_as_digits_and_an_empty_window_as_null(api, scheduled):
    api.patch(schedule_path(scheduled), {"catchupWindow": 60}, format="json")
    form = urlencode({"jitterSeconds": "12", "catchupWindow": ""})
    response = api.patch(
        schedule_path(scheduled), form, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200, response.content
    scheduled.refresh_from_db()
    assert (scheduled.jitter_seconds, scheduled.catchup_window) == (12, None)


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"jitterSeconds": ""}, "jitterSeconds"),
        ({"jitterSeconds": "twelve"}, "jitterSeconds"),
        ({"jitterSeconds": "-5"}, "jitterSeconds"),
        ({"jitterSeconds": "1.5"}, "jitterSeconds"),
        ({"catchupWindow": "٣"}, "catchupWindow"),  # a digit, but not an ASCII one
        ({"overlapPolicy": "skip"}, "overlapPolicy"),
        ({"pausedUntil": "tomorrow"}, "pausedUntil"),
    ],
)
def test_a_form_with_a_bad_number_or_name_changes_nothing(api, scheduled, form, field):
    before = stored(scheduled)
    for content_type in ("form", "multipart"):
        if content_type == "form":
            response = api.patch(
                schedule_path(scheduled),
                urlencode(form),
                content_type="application/x-www-form-urlencoded",
            )
        else:
            response = api.patch(schedule_path(scheduled), form, format="multipart")
        assert response.status_code == 400, response.content
        assert field in response.json()["details"]
    assert stored(scheduled) == before


def in_the_past() -> str:
    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


BAD_FIELDS = [
    ({"overlapPolicy": "NEVER"}, "overlapPolicy"),
    ({"overlapPolicy": "skip"}, "overlapPolicy"),
    ({"overlapPolicy": 1}, "overlapPolicy"),
    ({"overlapPolicy": True}, "overlapPolicy"),
    ({"overlapPolicy": None}, "overlapPolicy"),
    ({"overlapPolicy": ["SKIP"]}, "overlapPolicy"),
    ({"overlapPolicy": ""}, "overlapPolicy"),
    ({"catchupPolicy": "SOME"}, "catchupPolicy"),
    ({"catchupPolicy": "latest"}, "catchupPolicy"),
    ({"catchupPolicy": 0}, "catchupPolicy"),
    ({"catchupPolicy": None}, "catchupPolicy"),
    ({"catchupWindow": "600"}, "catchupWindow"),
    ({"catchupWindow": 600.0}, "catchupWindow"),
    ({"catchupWindow": 1.5}, "catchupWindow"),
    ({"catchupWindow": True}, "catchupWindow"),
    ({"catchupWindow": -1}, "catchupWindow"),
    ({"catchupWindow": 2_678_401}, "catchupWindow"),
    ({"catchupWindow": 10**30}, "catchupWindow"),
    ({"catchupWindow": {"seconds": 5}}, "catchupWindow"),
    ({"jitterSeconds": "30"}, "jitterSeconds"),
    ({"jitterSeconds": False}, "jitterSeconds"),
    ({"jitterSeconds": None}, "jitterSeconds"),
    ({"jitterSeconds": -1}, "jitterSeconds"),
    ({"jitterSeconds": 3601}, "jitterSeconds"),
    ({"jitterSeconds": [30]}, "jitterSeconds"),
    ({"pauseNote": 5}, "pauseNote"),
    ({"pauseNote": None}, "pauseNote"),
    ({"pauseNote": "n" * 501, "enabled": False}, "pauseNote"),
    ({"pauseNote": "Holidays"}, "pauseNote"),  # the schedule stays enabled
    ({"pauseNote": "Holidays", "enabled": True}, "pauseNote"),
    ({"pauseNote": "nul\x00", "enabled": False}, "pauseNote"),
    ({"pausedUntil": in_the_past()}, "pausedUntil"),
    ({"pausedUntil": "2030-01-01T09:00:00"}, "pausedUntil"),  # no offset
    ({"pausedUntil": "2030-01-01"}, "pausedUntil"),
    ({"pausedUntil": "next tuesday"}, "pausedUntil"),
    ({"pausedUntil": "2030-13-01T00:00:00Z"}, "pausedUntil"),
    ({"pausedUntil": "9999-12-31T23:59:59-14:00"}, "pausedUntil"),  # past year 9999 in UTC
    ({"pausedUntil": 1893456000}, "pausedUntil"),
    ({"pausedUntil": True}, "pausedUntil"),
    ({"pausedUntil": "", "enabled": False}, "pausedUntil"),
    ({"pausedUntil": "2099-01-01T00:00:00Z", "enabled": True}, "pausedUntil"),
]


@pytest.mark.parametrize(("body", "field"), BAD_FIELDS, ids=lambda value: repr(value)[:60])
def test_a_bad_policy_field_is_refused_by_name_and_changes_nothing(api, scheduled, body, field):
    before = stored(scheduled)

    response = api.patch(schedule_path(scheduled), body, format="json")

    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["success"] is False
    assert list(answer["details"]) == [field], answer
    assert answer["error"] == answer["details"][field][0]
    assert stored(scheduled) == before


@pytest.mark.parametrize(("body", "field"), BAD_FIELDS, ids=lambda value: repr(value)[:60])
def test_a_new_schedule_with_a_bad_policy_field_is_not_created(api, agent, body, field):
    before = stored(agent)

    response = api.post(
        schedule_path(agent), {"cronExpression": "0 9 * * *", **body}, format="json"
    )

    assert response.status_code == 400, response.content
    assert list(response.json()["details"]) == [field]
    assert stored(agent) == before
    assert not PeriodicTask.objects.exists()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"overlapPolicy": "NEVER"}, "SKIP, BUFFER_ONE, BUFFER_ALL or CANCEL_OTHER"),
        ({"catchupPolicy": "SOME"}, "LATEST, ALL or NONE"),
        ({"catchupWindow": "600"}, "whole number"),
        ({"jitterSeconds": 3601}, "3600"),
        ({"pausedUntil": in_the_past()}, "future"),
        ({"pausedUntil": "2030-01-01T09:00:00"}, "offset"),
        ({"pauseNote": "Holidays"}, "paused"),
    ],
)
def test_the_refusal_says_what_is_wrong(api, scheduled, body, words):
    error = api.patch(schedule_path(scheduled), body, format="json").json()["error"]
    assert words in error, error


@pytest.mark.parametrize(
    ("body", "service_arguments"),
    [
        ({"catchupWindow": -1}, {"catchup_window": -1}),
        ({"catchupWindow": 2_678_401}, {"catchup_window": 2_678_401}),
        ({"jitterSeconds": 3601}, {"jitter_seconds": 3601}),
        ({"pauseNote": "n" * 501, "enabled": False}, {"pause_note": "n" * 501, "enabled": False}),
    ],
)
def test_the_api_words_a_value_out_of_range_as_the_service_does(
    api, scheduled, body, service_arguments
):
    # The admin reports the service's sentence: both must refuse alike.
    with pytest.raises(ScheduleFieldError) as refused:
        set_schedule(scheduled, **service_arguments)
    error = api.patch(schedule_path(scheduled), body, format="json").json()["error"]
    assert error == str(refused.value)


def test_a_bad_field_beside_good_ones_changes_none_of_them(api, scheduled):
    before = stored(scheduled)
    body = {"overlapPolicy": "SKIP", "jitterSeconds": 10, "pausedUntil": in_the_past()}
    response = api.patch(schedule_path(scheduled), body, format="json")
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["pausedUntil"]
    assert stored(scheduled) == before


@pytest.mark.parametrize("whose", ["foreign", "unknown", "not an id"])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_policies_of_an_agent_the_user_cannot_see_are_not_found(api, other_user, whose, method):
    foreign = AgentFactory(owner=other_user)
    set_schedule(foreign, expression="0 9 * * *")
    agent_id = {"foreign": foreign.pk, "unknown": "7d0c8d33-0000-4000-8000-000000000000"}.get(
        whose, "not-an-id"
    )
    before = stored(foreign)

    response = getattr(api, method)(
        f"/api/agents/{agent_id}/schedule",
        {"cronExpression": "@daily", "overlapPolicy": "SKIP", "pausedUntil": future()},
        format="json",
    )

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Agent not found"}
    assert stored(foreign) == before
