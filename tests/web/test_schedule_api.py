from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from agents.models import AIAgent
from scheduling.services import set_schedule
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def schedule_path(agent, suffix: str = "") -> str:
    return f"/api/agents/{agent.pk}/schedule{suffix}"


@pytest.fixture
def agent(user):
    return AgentFactory(owner=user)


def test_posting_a_schedule_answers_the_contract_shape(api, agent):
    response = api.post(
        schedule_path(agent), {"cronExpression": "0 9 * * *", "priority": "HIGH"}, format="json"
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {
        "id",
        "name",
        "scheduleExpression",
        "scheduleEnabled",
        "scheduleTimezone",
        "priority",
        "nextRunAt",
        "overlapPolicy",
        "catchupPolicy",
        "catchupWindow",
        "jitterSeconds",
        "pauseNote",
        "pausedUntil",
        "pausedAt",
        "warnings",
    }
    assert data["scheduleExpression"] == "0 9 * * *"
    assert data["scheduleEnabled"] is True
    assert data["scheduleTimezone"] == "UTC"
    assert data["priority"] == "HIGH"
    assert data["nextRunAt"].endswith("T09:00:00Z")
    assert (data["overlapPolicy"], data["catchupPolicy"]) == ("BUFFER_ONE", "LATEST")
    assert (data["catchupWindow"], data["jitterSeconds"]) == (None, 0)
    assert (data["pauseNote"], data["pausedUntil"]) == ("", None)


def test_posting_a_schedule_writes_one_periodic_task_and_crontab(api, agent):
    api.post(
        schedule_path(agent),
        {"cronExpression": "30 8 * * mon-fri", "timezone": "Europe/Berlin"},
        format="json",
    )
    agent.refresh_from_db()
    task = PeriodicTask.objects.get(name=f"agent:{agent.pk}")
    assert agent.periodic_task == task
    assert task.task == "scheduling.dispatch_scheduled_run"
    assert json.loads(task.args) == [str(agent.pk)]
    assert task.enabled is True
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == ("30", "8", "1-5")
    assert str(crontab.timezone) == "Europe/Berlin"


def test_two_agents_with_the_same_cron_never_share_a_crontab(api, user):
    first, second = AgentFactory(owner=user), AgentFactory(owner=user)
    for agent in (first, second):
        api.post(schedule_path(agent), {"cronExpression": "0 9 * * *"}, format="json")
    assert CrontabSchedule.objects.count() == 2
    api.delete(schedule_path(first))
    second.refresh_from_db()
    assert second.periodic_task is not None and second.periodic_task.crontab is not None


def test_an_unchanged_schedule_does_not_save_beat_rows_again(api, agent):
    api.post(schedule_path(agent), {"cronExpression": "0 9 * * *"}, format="json")
    task = PeriodicTask.objects.get()
    before = task.date_changed
    api.patch(schedule_path(agent), {"cronExpression": "0 9 * * *"}, format="json")
    task.refresh_from_db()
    assert task.date_changed == before


def test_pause_and_resume(api, agent):
    api.post(schedule_path(agent), {"cronExpression": "@hourly"}, format="json")
    response = api.patch(schedule_path(agent), {"enabled": False}, format="json")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["scheduleEnabled"] is False and data["nextRunAt"] is None
    assert PeriodicTask.objects.get().enabled is False
    data = api.patch(schedule_path(agent), {"enabled": True}, format="json").json()["data"]
    assert data["scheduleEnabled"] is True and data["nextRunAt"]
    assert PeriodicTask.objects.get().enabled is True


def test_posting_a_disabled_schedule(api, agent):
    data = api.post(
        schedule_path(agent), {"cronExpression": "@daily", "enabled": False}, format="json"
    ).json()["data"]
    assert data["scheduleEnabled"] is False and data["nextRunAt"] is None


def test_get_answers_details_and_upcoming_runs(api, agent):
    api.post(
        schedule_path(agent), {"cronExpression": "0 9 * * *", "priority": "CRITICAL"}, format="json"
    )
    response = api.get(schedule_path(agent))
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["description"] == "At 09:00 AM"
    assert len(data["upcomingRuns"]) == 5
    assert all(run.endswith("T09:00:00Z") for run in data["upcomingRuns"])
    assert data["status"] == "IDLE"
    assert data["lastRunAt"] is None
    details = data["taskDetails"]
    assert set(details) == {
        "agentId",
        "agentName",
        "priority",
        "nextRunTime",
        "retryCount",
        "lastError",
        "isRunning",
    }
    assert details["priority"] == 4
    assert details["agentId"] == str(agent.pk)
    assert details["nextRunTime"] == data["nextRunAt"]
    assert details["isRunning"] is False


def test_get_without_a_schedule(api, agent):
    data = api.get(schedule_path(agent)).json()["data"]
    assert data["scheduleExpression"] is None
    assert data["upcomingRuns"] == []
    assert data["warnings"] == []
    assert data["taskDetails"] is None


def next_new_york_spring_forward(now: datetime) -> date:
    """The second Sunday of March after ``now``, when New York skips 02:00-03:00 (07:00Z)."""
    for year in (now.year, now.year + 1):
        first = date(year, 3, 1)
        second_sunday = first + timedelta(days=(6 - first.weekday()) % 7 + 7)
        if datetime(year, 3, second_sunday.day, 7, tzinfo=UTC) > now:
            return second_sunday
    raise AssertionError("a year always has a second Sunday of March")


def test_every_schedule_answer_warns_of_a_time_the_clocks_skip(api, agent):
    day = next_new_york_spring_forward(datetime.now(UTC))
    expected = [
        f"{day.isoformat()} 02:30 does not exist in America/New_York; that day's run is at 03:00"
    ]
    body = {"cronExpression": "30 2 * * *", "timezone": "America/New_York"}
    posted = api.post(schedule_path(agent), body, format="json").json()["data"]
    assert posted["warnings"] == expected
    # A paused schedule still shows what would happen once it is resumed.
    patched = api.patch(schedule_path(agent), {"enabled": False}, format="json").json()["data"]
    assert patched["warnings"] == expected
    assert api.get(schedule_path(agent)).json()["data"]["warnings"] == expected


def test_a_schedule_in_utc_has_no_warnings(api, agent):
    api.post(schedule_path(agent), {"cronExpression": "30 2 * * *"}, format="json")
    assert api.get(schedule_path(agent)).json()["data"]["warnings"] == []


def test_delete_unschedules(api, agent):
    api.post(schedule_path(agent), {"cronExpression": "0 9 * * *"}, format="json")
    response = api.delete(schedule_path(agent))
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Agent unscheduled successfully"}
    agent.refresh_from_db()
    assert agent.schedule_expression is None and agent.next_run_at is None
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()


def test_deleting_the_agent_removes_its_beat_rows(api, agent):
    api.post(schedule_path(agent), {"cronExpression": "0 9 * * *"}, format="json")
    api.delete(f"/api/agents/{agent.pk}")
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cronExpression": "99 99 * * *"}, "cronExpression"),
        ({"cronExpression": "0 0 31 2 *"}, "cronExpression"),
        ({"cronExpression": "* * * * * *"}, "cronExpression"),
        ({"cronExpression": ""}, "cronExpression"),
        ({"cronExpression": 5}, "cronExpression"),
        ({"cronExpression": None}, "cronExpression"),
        ({"cronExpression": "5-1 * * * *"}, "cronExpression"),
        ({"cronExpression": "*/0 * * * *"}, "cronExpression"),
        ({"cronExpression": "@reboot"}, "cronExpression"),
        ({"cronExpression": "0 9 * * *", "priority": "URGENT"}, "priority"),
        ({"cronExpression": "0 9 * * *", "enabled": "yes"}, "enabled"),
        ({"cronExpression": "0 9 * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"cronExpression": "0 9 * * *", "timezone": 3}, "timezone"),
        ({}, "cronExpression"),
    ],
)
def test_it_rejects_bad_schedules_naming_the_problem(api, agent, body, field):
    response = api.post(schedule_path(agent), body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False
    assert field in payload["details"]
    assert payload["error"]
    agent.refresh_from_db()
    assert agent.schedule_expression is None
    assert not PeriodicTask.objects.exists()


def test_a_body_that_is_not_an_object_is_rejected(api, agent):
    response = api.post(schedule_path(agent), [1, 2], format="json")
    assert response.status_code == 400


def test_patch_on_an_unscheduled_agent_asks_for_a_post(api, agent):
    response = api.patch(schedule_path(agent), {"enabled": False}, format="json")
    assert response.status_code == 400
    assert "POST" in response.json()["error"]


def test_a_bad_patch_leaves_the_schedule_unchanged(api, agent):
    api.post(schedule_path(agent), {"cronExpression": "0 9 * * *"}, format="json")
    response = api.patch(schedule_path(agent), {"cronExpression": "61 * * * *"}, format="json")
    assert response.status_code == 400
    agent.refresh_from_db()
    assert agent.schedule_expression == "0 9 * * *"


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_another_users_schedule_is_not_found(api, other_user, method):
    foreign = AgentFactory(owner=other_user)
    response = getattr(api, method)(
        schedule_path(foreign), {"cronExpression": "@daily"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"] == "Agent not found"


@pytest.mark.parametrize("suffix", ["", "/"])
def test_schedule_paths_answer_with_and_without_slash(api, agent, suffix):
    path = schedule_path(agent) + suffix
    assert api.post(path, {"cronExpression": "@daily"}, format="json").status_code == 200
    assert api.get(path).status_code == 200
    assert api.patch(path, {"enabled": False}, format="json").status_code == 200
    assert api.get(schedule_path(agent, "/status" + suffix)).status_code == 200
    assert api.delete(path).status_code == 200


def test_schedule_put_is_not_allowed(api, agent):
    response = api.put(schedule_path(agent), {}, format="json")
    assert response.status_code == 405
    assert response.json()["success"] is False


def test_schedule_status_answers_the_stats(api, agent, settings):
    data = api.get(schedule_path(agent, "/status")).json()["data"]
    assert set(data) == {
        "isRunning",
        "scheduledTasksCount",
        "runningAgentsCount",
        "queuedTasksCount",
        "maxConcurrentAgents",
    }
    assert data["maxConcurrentAgents"] == settings.SCHEDULER_MAX_CONCURRENT


def test_scheduler_status_lists_only_visible_tasks(api, user, other_user):
    mine = AgentFactory(owner=user)
    set_schedule(mine, expression="@daily")
    set_schedule(AgentFactory(owner=other_user), expression="@daily")
    data = api.get("/api/agents/scheduler/status").json()["data"]
    assert [task["agentId"] for task in data["tasks"]] == [str(mine.pk)]
    assert data["scheduledTasksCount"] == 2
    assert api.get("/api/agents/scheduler/status/").status_code == 200


def test_schedule_endpoints_require_a_token(anonymous, agent):
    assert anonymous.get(schedule_path(agent)).status_code == 401
    assert anonymous.get("/api/agents/scheduler/status").status_code == 401


def test_a_beat_admin_edit_is_mirrored_onto_the_agent(agent):
    set_schedule(agent, expression="0 9 * * *")
    crontab = AIAgent.objects.get(pk=agent.pk).periodic_task.crontab
    crontab.hour = "10"
    crontab.save()
    agent.refresh_from_db()
    assert agent.schedule_expression == "0 10 * * *"
    assert agent.next_run_at.hour == 10

    task = agent.periodic_task
    task.enabled = False
    task.save()
    agent.refresh_from_db()
    assert agent.schedule_enabled is False and agent.next_run_at is None

    task.delete()
    agent.refresh_from_db()
    assert agent.schedule_expression is None


def test_the_or_rule_survives_the_beat_round_trip(agent):
    set_schedule(agent, expression="0 0 13 * 5")
    crontab = AIAgent.objects.get(pk=agent.pk).periodic_task.crontab
    assert (crontab.day_of_month, crontab.day_of_week) == ("*", "*")
    task = crontab.periodictask_set.get()
    task.description = "edited"
    task.save()
    agent.refresh_from_db()
    assert agent.schedule_expression == "0 0 13 * 5"
