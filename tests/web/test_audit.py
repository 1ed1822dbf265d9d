"""The audit trail: an entry for every change, from every surface, and its API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from agents.audit import Actor
from agents.models import AIAgent, AuditEntry
from scheduling import pacing, runs
from scheduling.services import set_schedule
from tests.factories import AgentFactory
from tests.web.test_admin import action, change_url, form_data, post_change, scheduled

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)


def trail(agent_id: Any) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(agent_id=agent_id).order_by("-at", "-id"))


def summary(agent_id: Any) -> list[tuple[str, str, str]]:
    """(source, actor, action) of each entry, newest first."""
    return [(entry.source, entry.actor_name, entry.action) for entry in trail(agent_id)]


def entries(api, agent_id: Any, query: str = "") -> list[dict[str, Any]]:
    response = api.get(f"/api/agents/{agent_id}/audit{query}")
    assert response.status_code == 200, response.content
    return response.json()["data"]["entries"]


# --- the API ------------------------------------------------------------------------


def test_every_change_through_the_api_is_an_entry_newest_first(api, user):
    created = api.post(
        "/api/agents",
        {"name": "Writer", "agentType": "demo", "configuration": {"steps": 1, "my_key": 2}},
        format="json",
    )
    agent_id = created.json()["data"]["id"]
    api.patch(f"/api/agents/{agent_id}", {"name": "Editor"}, format="json")
    schedule = f"/api/agents/{agent_id}/schedule"
    api.post(schedule, {"cronExpression": "0 9 * * *"}, format="json")
    api.patch(schedule, {"priority": "HIGH", "timezone": "Europe/Berlin"}, format="json")
    api.patch(schedule, {"enabled": False, "pauseNote": "Holidays"}, format="json")
    api.post(f"{schedule}/resume", {"policy": "SKIP_MISSED"}, format="json")
    api.delete(schedule)

    shown = entries(api, agent_id)
    assert [entry["action"] for entry in shown] == [
        "schedule.removed",
        "schedule.resumed",
        "schedule.paused",
        "schedule.changed",
        "schedule.set",
        "agent.updated",
        "agent.created",
    ]
    assert {(entry["actor"], entry["source"]) for entry in shown} == {(user.username, "API")}
    removed, resumed, paused, changed, set_, updated, first = shown
    assert first["changes"] == {
        "name": [None, "Writer"],
        "agentType": [None, "demo"],
        # The user's configuration as sent: its keys are not camelCased.
        "configuration": [None, {"steps": 1, "my_key": 2}],
    }
    assert updated["changes"] == {"name": ["Writer", "Editor"]}
    assert set_["changes"]["scheduleExpression"] == [None, "0 9 * * *"]
    assert set_["changes"]["scheduleEnabled"] == [False, True]
    assert changed["changes"] == {
        "priority": ["NORMAL", "HIGH"],
        "scheduleTimezone": ["UTC", "Europe/Berlin"],
    }
    assert paused["changes"] == {"scheduleEnabled": [True, False], "pauseNote": ["", "Holidays"]}
    assert resumed["changes"] == {"scheduleEnabled": [False, True], "pauseNote": ["Holidays", ""]}
    assert removed["changes"]["scheduleExpression"] == ["0 9 * * *", None]
    assert set(first) == {"at", "actor", "source", "action", "changes"}
    assert first["at"].endswith("Z")


def test_a_snooze_shows_its_end_as_the_api_writes_times(api, user):
    agent = scheduled(owner=user)
    until = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    stamp = until.isoformat().replace("+00:00", "Z")
    api.patch(f"/api/agents/{agent.pk}/schedule", {"pausedUntil": stamp}, format="json")
    (latest, _) = entries(api, agent.pk)
    assert latest["action"] == "schedule.paused"
    assert latest["changes"]["pausedUntil"] == [None, stamp]


def test_deleting_an_agent_keeps_its_trail_with_who_deleted_it(api, user):
    agent = scheduled(owner=user, name="Doomed")
    assert api.delete(f"/api/agents/{agent.pk}").status_code == 200
    assert not AIAgent.objects.filter(pk=agent.pk).exists()
    (deleted, *_) = trail(agent.pk)
    assert (deleted.source, deleted.actor_name, deleted.action) == (
        "API",
        user.username,
        "agent.deleted",
    )
    assert deleted.actor_id == user.pk
    assert deleted.changes["name"] == ["Doomed", None]
    # The agent is gone: so is its trail's page, as for any unknown agent.
    assert api.get(f"/api/agents/{agent.pk}/audit").status_code == 404


def test_backfill_is_an_entry_and_a_run_is_not(api, user):
    agent = scheduled("0 * * * *", owner=user)
    before = len(trail(agent.pk))
    api.post(f"/api/agents/{agent.pk}/run")
    dry_run = {"policy": "RUN_ALL", "dryRun": True}
    api.post(f"/api/agents/{agent.pk}/schedule/resume", dry_run, format="json")
    assert len(trail(agent.pk)) == before
    start = (timezone.now() - timedelta(hours=3)).replace(minute=30, second=0, microsecond=0)
    body = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    assert api.post(f"/api/agents/{agent.pk}/backfill", body, format="json").status_code == 202
    (backfill, *_) = entries(api, agent.pk)
    assert backfill["action"] == "backfill"
    assert backfill["changes"]["queued"] == [None, 2]
    assert backfill["changes"]["rerun"] == [None, False]
    # The same range again queues nothing: nothing changed, no entry.
    api.post(f"/api/agents/{agent.pk}/backfill", body, format="json")
    assert entries(api, agent.pk)[0] == backfill


def test_a_change_that_changes_nothing_writes_no_entry(api, user):
    agent = scheduled("0 9 * * *", owner=user, name="Same")
    before = len(trail(agent.pk))
    api.patch(f"/api/agents/{agent.pk}", {"name": "Same"}, format="json")
    api.post(f"/api/agents/{agent.pk}/schedule", {"cronExpression": "0 9 * * *"}, format="json")
    api.patch(f"/api/agents/{agent.pk}/schedule", {"enabled": True}, format="json")
    assert len(trail(agent.pk)) == before


def test_a_refused_change_writes_no_entry(api, user):
    agent = scheduled("0 9 * * *", owner=user)
    before = len(trail(agent.pk))
    schedule = f"/api/agents/{agent.pk}/schedule"
    assert api.patch(schedule, {"cronExpression": "99 * * * *"}, format="json").status_code == 400
    assert api.patch(schedule, {"jitterSeconds": 99_999}, format="json").status_code == 400
    assert api.patch(f"/api/agents/{agent.pk}", {"name": ""}, format="json").status_code == 400
    assert len(trail(agent.pk)) == before


def test_a_change_that_rolls_back_takes_its_entry_with_it():
    agent = scheduled("0 9 * * *")
    before = len(trail(agent.pk))
    with pytest.raises(RuntimeError), transaction.atomic():
        set_schedule(agent, expression="0 10 * * *")
        assert len(trail(agent.pk)) == before + 1
        raise RuntimeError
    assert len(trail(agent.pk)) == before


def test_the_trail_is_paginated(api, user):
    agent = AgentFactory(owner=user)
    for hour in range(5):
        set_schedule(agent, expression=f"0 {hour} * * *")
    response = api.get(f"/api/agents/{agent.pk}/audit?limit=2&offset=1")
    data = response.json()["data"]
    assert data["pagination"] == {"total": 5, "limit": 2, "offset": 1}
    assert [entry["changes"]["scheduleExpression"][1] for entry in data["entries"]] == [
        "0 3 * * *",
        "0 2 * * *",
    ]
    for query in ("?limit=0", "?limit=101", "?offset=-1", "?limit=x"):
        assert api.get(f"/api/agents/{agent.pk}/audit{query}").status_code == 400, query


def test_the_trail_of_another_users_agent_is_not_found(api, other_user):
    foreign = scheduled(owner=other_user)
    for agent_id in (foreign.pk, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = api.get(f"/api/agents/{agent_id}/audit")
        assert response.status_code == 404
        assert response.json() == {"success": False, "error": "Agent not found"}


def test_callers_that_do_not_say_who_acted_are_the_system():
    agent = scheduled()
    ((source, actor, action),) = summary(agent.pk)
    assert (source, actor, action) == ("SYSTEM", "system", "schedule.set")
    assert trail(agent.pk)[0].actor_id is None


def test_an_actor_from_a_user_keeps_their_name(user):
    actor = Actor.user(user, AuditEntry.Source.API)
    assert (actor.user_id, actor.name, actor.source) == (user.pk, user.username, "API")


# --- the agent admin ----------------------------------------------------------------


def test_the_agent_admin_records_its_user(admin_client, admin_user):
    agent = scheduled("0 9 * * *")
    response = post_change(admin_client, agent, name="Renamed", schedule_expression="0 10 * * *")
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert summary(agent.pk)[:2] == [
        ("ADMIN", admin_user.username, "schedule.changed"),
        ("ADMIN", admin_user.username, "agent.updated"),
    ]
    assert trail(agent.pk)[1].changes["name"][1] == "Renamed"
    assert trail(agent.pk)[0].actor_id == admin_user.pk
    # Saving the page again unchanged records nothing.
    post_change(admin_client, agent)
    assert len(trail(agent.pk)) == 3


def test_the_agent_admin_actions_record_pauses_but_not_runs(admin_client, admin_user):
    agent = scheduled("0 9 * * *")
    changelist = "admin:agents_aiagent_changelist"
    action(admin_client, changelist, "pause_schedules", [agent])
    action(admin_client, changelist, "run_now", [agent])
    action(admin_client, changelist, "resume_schedules", [agent])
    assert summary(agent.pk)[:2] == [
        ("ADMIN", admin_user.username, "schedule.resumed"),
        ("ADMIN", admin_user.username, "schedule.paused"),
    ]
    assert len(trail(agent.pk)) == 3


def test_the_agent_admin_shows_the_latest_changes(admin_client):
    agent = scheduled("0 9 * * *")
    set_schedule(agent, enabled=False, pause_note="Quiet <please>")
    page = admin_client.get(change_url(agent)).content.decode()
    assert 'class="audit-trail"' in page
    assert page.index("schedule.paused") < page.index("schedule.set")
    assert "Quiet &lt;please&gt;" in page


def test_adding_an_agent_in_the_admin_records_it_and_its_schedule(admin_client, admin_user, user):
    add_url = reverse("admin:agents_aiagent_add")
    data = form_data(admin_client.get(add_url))
    data.update(
        owner=user.pk,
        name="From the admin",
        agent_type="demo",
        configuration='{"steps": 1}',
        schedule_expression="0 9 * * *",
        schedule_timezone="UTC",
        schedule_enabled="on",
    )
    response = admin_client.post(add_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    agent = AIAgent.objects.get(name="From the admin")
    assert summary(agent.pk) == [
        ("ADMIN", admin_user.username, "schedule.set"),
        ("ADMIN", admin_user.username, "agent.created"),
    ]


# --- the beat admin -----------------------------------------------------------------


def test_an_edit_in_the_beat_admin_is_recorded_as_its_user(admin_client, admin_user):
    agent = scheduled("0 9 * * *")
    url = reverse("admin:django_celery_beat_periodictask_change", args=[agent.periodic_task_id])
    data = form_data(admin_client.get(url))
    data.pop("enabled")
    assert admin_client.post(url, data).status_code == 302
    (paused, _) = trail(agent.pk)
    assert (paused.source, paused.actor_name, paused.action) == (
        "BEAT_ADMIN",
        admin_user.username,
        "schedule.paused",
    )
    assert paused.actor_id == admin_user.pk
    assert paused.changes == {"scheduleEnabled": [True, False]}


def test_a_crontab_edit_and_a_deletion_in_the_beat_admin_are_recorded(admin_client, admin_user):
    agent = scheduled("0 9 * * *")
    crontab = agent.periodic_task.crontab
    url = reverse("admin:django_celery_beat_crontabschedule_change", args=[crontab.pk])
    response = admin_client.post(
        url,
        {
            "minute": "30",
            "hour": "7",
            "day_of_month": "*",
            "month_of_year": "*",
            "day_of_week": "*",
            "timezone": "UTC",
            "periodictask_set-TOTAL_FORMS": "1",
            "periodictask_set-INITIAL_FORMS": "1",
            "periodictask_set-MIN_NUM_FORMS": "0",
            "periodictask_set-MAX_NUM_FORMS": "1000",
            "periodictask_set-0-id": str(agent.periodic_task_id),
            "periodictask_set-0-crontab": str(crontab.pk),
        },
    )
    assert response.status_code == 302
    delete = reverse("admin:django_celery_beat_periodictask_delete", args=[agent.periodic_task_id])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    removed, changed, _ = trail(agent.pk)
    assert (changed.source, changed.actor_name, changed.action) == (
        "BEAT_ADMIN",
        admin_user.username,
        "schedule.changed",
    )
    assert changed.changes == {"scheduleExpression": ["0 9 * * *", "30 7 * * *"]}
    assert (removed.source, removed.actor_name, removed.action) == (
        "BEAT_ADMIN",
        admin_user.username,
        "schedule.removed",
    )


def test_the_beat_admin_bulk_actions_are_recorded_as_its_user(admin_client, admin_user):
    agent = scheduled("0 9 * * *")
    tasks = "admin:django_celery_beat_periodictask_changelist"
    action(admin_client, tasks, "disable_tasks", [agent.periodic_task])
    assert summary(agent.pk)[0] == ("BEAT_ADMIN", admin_user.username, "schedule.paused")


def test_a_beat_row_saved_outside_the_admin_is_a_beat_edit_by_the_system():
    agent = scheduled("0 9 * * *")
    task = agent.periodic_task
    task.enabled = False
    task.save()
    assert summary(agent.pk)[0] == ("BEAT_ADMIN", "system", "schedule.paused")
