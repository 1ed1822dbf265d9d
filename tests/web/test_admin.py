"""The Django admin for agents, sessions and beat's entries, driven through real POSTs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.forms import MultiWidget
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from agents.models import AIAgent, ExecutionSession, Priority
from scheduling import pacing, runs
from scheduling.run_logs import RunLog
from scheduling.schedules import schedule_warnings
from scheduling.services import set_schedule
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

AGENTS = "admin:agents_aiagent_changelist"
SESSIONS = "admin:agents_executionsession_changelist"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)


def change_url(agent: AIAgent) -> str:
    return reverse("admin:agents_aiagent_change", args=[agent.pk])


def form_data(response) -> dict[str, Any]:
    """What a browser would post back from an admin change page, unchanged."""
    data: dict[str, Any] = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        widget = field.widget
        if isinstance(widget, MultiWidget):
            parts = widget.decompress(value)
            for index, part in enumerate(parts):
                data[f"{name}_{index}"] = "" if part is None else part
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        for form in inline.formset.initial_forms:
            pk_field = form._meta.model._meta.pk.name
            data[form.add_prefix(pk_field)] = form.instance.pk
    return data


def post_change(client, agent: AIAgent, **changes: Any):
    data = form_data(client.get(change_url(agent)))
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return client.post(change_url(agent), data)


def action(client, url_name: str, name: str, objects: list) -> Any:
    return client.post(
        reverse(url_name),
        {"action": name, "_selected_action": [str(obj.pk) for obj in objects]},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def scheduled(expression: str = "0 9 * * *", **kwargs: Any) -> AIAgent:
    return set_schedule(AgentFactory(**kwargs), expression=expression)


# --- agent list -------------------------------------------------------------------


def test_the_list_shows_the_schedule_in_plain_english(admin_client):
    agent = scheduled("0 9 * * *", name="Morning report")
    set_schedule(agent, timezone_name="Europe/Berlin", priority=Priority.HIGH)
    response = admin_client.get(reverse(AGENTS))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Morning report" in page
    assert "At 09:00 AM (Europe/Berlin)" in page
    assert "High" in page
    for column in ("column-owner", "column-next_run_at", "column-last_run_at", "column-status"):
        assert column in page


def test_the_list_marks_a_paused_schedule(admin_client):
    agent = scheduled("*/5 * * * *")
    set_schedule(agent, enabled=False)
    page = admin_client.get(reverse(AGENTS)).content.decode()
    assert "Every 5 minutes (paused)" in page


def test_the_list_filters_by_status_type_and_enabled(admin_client):
    failing = AgentFactory(name="Failing one", status=AIAgent.Status.ERROR)
    webhook = AgentFactory(name="Hook one", agent_type="webhook", configuration={})
    on_schedule = scheduled(name="Scheduled one")
    url = reverse(AGENTS)

    def names(query: str) -> set[str]:
        response = admin_client.get(f"{url}?{query}")
        assert response.status_code == 200
        return {agent.name for agent in response.context["cl"].result_list}

    assert names("status__exact=ERROR") == {failing.name}
    assert names("agent_type=webhook") == {webhook.name}
    assert names("schedule_enabled__exact=1") == {on_schedule.name}


def test_the_list_searches_by_name(admin_client):
    AgentFactory(name="SEO audit")
    AgentFactory(name="Newsletter")
    response = admin_client.get(reverse(AGENTS), {"q": "audit"})
    assert [agent.name for agent in response.context["cl"].result_list] == ["SEO audit"]


# --- adding and editing -----------------------------------------------------------


def test_adding_an_agent_with_a_schedule_creates_its_beat_entry(admin_client, user):
    add_url = reverse("admin:agents_aiagent_add")
    data = form_data(admin_client.get(add_url))
    data.update(
        owner=user.pk,
        name="Writer",
        agent_type="demo",
        configuration='{"steps": 2, "stepSeconds": 0}',
        schedule_expression="30 8 * * mon-fri",
        schedule_timezone="Europe/Berlin",
        priority=str(Priority.CRITICAL),
    )
    response = admin_client.post(add_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    agent = AIAgent.objects.get(name="Writer")
    assert agent.owner == user
    assert agent.configuration == {"steps": 2, "stepSeconds": 0}
    assert agent.schedule_expression == "30 8 * * mon-fri"
    assert agent.schedule_enabled is True
    assert agent.priority == Priority.CRITICAL
    assert agent.next_run_at is not None
    task = PeriodicTask.objects.get(name=f"agent:{agent.pk}")
    assert agent.periodic_task == task and task.enabled
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "8", "1-5")
    assert str(task.crontab.timezone) == "Europe/Berlin"
    assert response["Location"].endswith("/admin/agents/aiagent/")


def test_adding_an_agent_without_a_schedule_leaves_it_unscheduled(admin_client, user):
    add_url = reverse("admin:agents_aiagent_add")
    data = form_data(admin_client.get(add_url))
    data.update(owner=user.pk, name="Manual only", agent_type="demo", configuration="{}")
    assert admin_client.post(add_url, data).status_code == 302
    agent = AIAgent.objects.get(name="Manual only")
    assert agent.schedule_expression is None and agent.schedule_enabled is False
    assert not PeriodicTask.objects.exists()


def test_changing_the_cron_expression_goes_through_the_schedule_service(admin_client):
    agent = scheduled("0 9 * * *")
    response = post_change(admin_client, agent, schedule_expression="*/15 * * * *")
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.schedule_expression == "*/15 * * * *"
    crontab = agent.periodic_task.crontab
    assert (crontab.minute, crontab.hour) == ("*/15", "*")
    assert agent.next_run_at - timezone.now() <= timedelta(minutes=15)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("99 99 * * *", "minute value 99 is out of range 0-59"),
        ("* * * *", "expected 5 fields"),
        ("0 0 31 2 *", "can never fire"),
        ("5-1 * * * *", "reversed"),
        ("@reboot", "unknown macro"),
    ],
)
def test_a_bad_cron_expression_is_a_form_error_naming_the_problem(
    admin_client, expression, problem
):
    agent = scheduled("0 9 * * *")
    response = post_change(admin_client, agent, schedule_expression=expression)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert problem in " ".join(errors["schedule_expression"])
    agent.refresh_from_db()
    assert agent.schedule_expression == "0 9 * * *"
    assert agent.periodic_task.crontab.hour == "9"


def test_an_unknown_timezone_is_a_form_error(admin_client):
    agent = scheduled("0 9 * * *")
    response = post_change(admin_client, agent, schedule_timezone="Mars/Olympus")
    assert response.status_code == 200
    assert "Unknown timezone 'Mars/Olympus'" in " ".join(
        response.context["adminform"].form.errors["schedule_timezone"]
    )
    agent.refresh_from_db()
    assert agent.schedule_timezone == "UTC"


def test_priority_timezone_and_enabled_save_through_the_service(admin_client):
    agent = scheduled("0 9 * * *")
    response = post_change(
        admin_client,
        agent,
        priority=str(Priority.LOW),
        schedule_timezone="America/New_York",
        schedule_enabled=False,
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.priority == Priority.LOW
    assert agent.schedule_timezone == "America/New_York"
    assert agent.schedule_enabled is False and agent.next_run_at is None
    task = agent.periodic_task
    assert task.enabled is False
    assert str(task.crontab.timezone) == "America/New_York"


def test_clearing_the_expression_removes_the_schedule_and_its_beat_rows(admin_client):
    agent = scheduled("0 9 * * *")
    response = post_change(admin_client, agent, schedule_expression="")
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.schedule_expression is None
    assert agent.schedule_enabled is False and agent.periodic_task is None
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()


def test_schedule_settings_without_an_expression_are_form_errors(admin_client):
    agent = AgentFactory()
    response = post_change(admin_client, agent, priority=str(Priority.HIGH), schedule_enabled=True)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "enter a cron expression" in errors["priority"][0]
    assert "Enter a cron expression" in errors["schedule_enabled"][0]


def split(moment) -> dict[str, str]:
    """A time as the admin's date and time inputs post it, on the admin's clock."""
    local = timezone.localtime(moment)
    return {"paused_until_0": f"{local:%Y-%m-%d}", "paused_until_1": f"{local:%H:%M:%S}"}


def test_the_policies_and_a_snooze_save_through_the_service(admin_client):
    agent = scheduled("* * * * *")
    until = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    response = post_change(
        admin_client,
        agent,
        overlap_policy="BUFFER_ALL",
        catchup_policy="ALL",
        catchup_window="3600",
        jitter_seconds="30",
        pause_note="Waiting for the new API key",
        **split(until),
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.overlap_policy, agent.catchup_policy) == ("BUFFER_ALL", "ALL")
    assert (agent.catchup_window, agent.jitter_seconds) == (3600, 30)
    # A note and an end pause the schedule, as through the API.
    assert agent.schedule_enabled is False and agent.periodic_task.enabled is False
    assert agent.pause_note == "Waiting for the new API key"
    assert agent.paused_until == until and agent.paused_at is not None

    page = admin_client.get(change_url(agent)).content.decode()
    assert "Overlap BUFFER_ALL, catch-up ALL within a window of 3600 s, jitter 30 s" in page
    assert "Waiting for the new API key · until " in page


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"jitter_seconds": "3601"}, "jitter_seconds", "between 0 and 3600 seconds"),
        ({"catchup_window": "2678401"}, "catchup_window", "between 0 and 2678400 seconds"),
        ({"pause_note": "Holidays"}, "pause_note", "pause it too"),
        ({"schedule_enabled": False, "pause_note": "x" * 501}, "pause_note", "at most 500"),
        ("past", "paused_until", "Must be in the future."),
        ({"overlap_policy": "SOMETIMES"}, "overlap_policy", "Select a valid choice"),
        ({"catchup_policy": "MAYBE"}, "catchup_policy", "Select a valid choice"),
    ],
)
def test_a_schedule_field_the_service_refuses_is_an_error_on_that_field(
    admin_client, changes, field, problem
):
    agent = scheduled("0 9 * * *", name="Morning report")
    if changes == "past":
        changes = split(timezone.now() - timedelta(hours=1))
    response = post_change(admin_client, agent, name="Renamed", priority="1", **changes)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {field}
    assert problem in " ".join(errors[field])
    # Nothing of the change is kept, the trial's beat rows included.
    agent.refresh_from_db()
    assert agent.name == "Morning report" and agent.priority == Priority.NORMAL
    assert (agent.schedule_enabled, agent.pause_note, agent.paused_until) == (True, "", None)
    assert (agent.jitter_seconds, agent.catchup_window) == (0, None)
    assert PeriodicTask.objects.get().enabled is True
    assert CrontabSchedule.objects.count() == 1


def test_a_new_agent_with_a_refused_policy_is_not_created(admin_client, user):
    add_url = reverse("admin:agents_aiagent_add")
    data = form_data(admin_client.get(add_url))
    data.update(
        owner=user.pk,
        name="Nightly",
        agent_type="demo",
        configuration="{}",
        schedule_expression="0 2 * * *",
        jitter_seconds="7200",
    )
    response = admin_client.post(add_url, data)
    assert response.status_code == 200
    assert "between 0 and 3600" in response.context["adminform"].form.errors["jitter_seconds"][0]
    assert not AIAgent.objects.exists()
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()


def test_policies_without_an_expression_are_form_errors(admin_client):
    agent = AgentFactory()
    response = post_change(admin_client, agent, jitter_seconds="10")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "enter a cron expression" in errors["jitter_seconds"][0]


def test_the_configuration_is_checked_by_the_runner(admin_client):
    agent = AgentFactory()
    response = post_change(admin_client, agent, configuration='{"steps": "many"}')
    assert response.status_code == 200
    assert "Configuration 'steps': Must be a number." in " ".join(
        response.context["adminform"].form.errors["configuration"]
    )
    response = post_change(admin_client, agent, configuration="[1, 2]")
    assert "must be a JSON object" in " ".join(
        response.context["adminform"].form.errors["configuration"]
    )


def test_an_unknown_agent_type_is_a_form_error(admin_client):
    agent = AgentFactory()
    response = post_change(admin_client, agent, agent_type="teleporter")
    assert response.status_code == 200
    assert "Valid types: demo, python, webhook" in " ".join(
        response.context["adminform"].form.errors["agent_type"]
    )


def test_editing_the_name_keeps_what_the_scheduler_owns(admin_client):
    agent = scheduled("0 9 * * *")
    AIAgent.objects.filter(pk=agent.pk).update(status=AIAgent.Status.RUNNING, retry_count=2)
    response = post_change(admin_client, agent, name="Renamed", status="IDLE", retry_count="0")
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.name == "Renamed"
    assert agent.status == AIAgent.Status.RUNNING and agent.retry_count == 2


def test_the_change_page_links_to_the_beat_entry_and_shows_the_next_runs(admin_client):
    agent = scheduled("0 9 * * *")
    page = admin_client.get(change_url(agent)).content.decode()
    task_url = reverse(
        "admin:django_celery_beat_periodictask_change", args=[agent.periodic_task_id]
    )
    assert f'href="{task_url}"' in page
    assert page.count("09:00 UTC") == 5
    assert "Five-field cron expression" in page  # the models' help texts stay visible
    assert "Untick to pause the schedule" in page


def test_the_change_page_shows_the_dst_warnings_of_the_schedule(admin_client):
    agent = set_schedule(AgentFactory(), expression="30 2 * * *", timezone_name="Europe/Berlin")
    warnings = schedule_warnings(agent)
    assert len(warnings) == 2  # the spring gap and the autumn repeat
    page = admin_client.get(change_url(agent)).content.decode()
    assert "DST warnings" in page
    for warning in warnings:
        assert f"<li>{escape(warning)}</li>" in page


# --- the sessions inline ----------------------------------------------------------


def test_the_change_page_shows_only_the_latest_ten_sessions(admin_client):
    agent = AgentFactory()
    sessions = [SessionFactory(agent=agent, error_message=f"error {n}") for n in range(12)]
    response = admin_client.get(change_url(agent))
    (inline,) = response.context["inline_admin_formsets"]
    shown = [form.instance.pk for form in inline.formset.initial_forms]
    assert shown == [session.pk for session in reversed(sessions)][:10]
    assert not inline.has_add_permission and not inline.has_delete_permission
    assert not inline.has_change_permission


def test_the_agent_saves_even_when_new_sessions_arrived_meanwhile(admin_client):
    agent = AgentFactory()
    for _ in range(10):
        SessionFactory(agent=agent)
    data = form_data(admin_client.get(change_url(agent)))
    SessionFactory(agent=agent)
    data["name"] = "Still saves"
    assert admin_client.post(change_url(agent), data).status_code == 302
    agent.refresh_from_db()
    assert agent.name == "Still saves"


# --- deleting ---------------------------------------------------------------------


def test_deleting_an_agent_removes_its_beat_rows(admin_client):
    agent = scheduled("0 9 * * *")
    url = reverse("admin:agents_aiagent_delete", args=[agent.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not AIAgent.objects.exists()
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()


def test_bulk_deleting_agents_removes_their_beat_rows(admin_client):
    agents = [scheduled("0 9 * * *"), scheduled("*/5 * * * *"), AgentFactory()]
    response = admin_client.post(
        reverse(AGENTS),
        {
            "action": "delete_selected",
            "_selected_action": [str(agent.pk) for agent in agents],
            "post": "yes",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert not AIAgent.objects.exists()
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()


# --- actions ----------------------------------------------------------------------


def test_run_now_queues_a_manual_run_for_each_selected_agent(admin_client):
    agents = [AgentFactory(), AgentFactory()]
    response = action(admin_client, AGENTS, "run_now", agents)
    assert "Queued a run for 2 agents." in messages_of(response)
    for agent in agents:
        (session,) = agent.sessions.all()
        assert session.trigger == ExecutionSession.Trigger.MANUAL
        assert session.status == ExecutionSession.Status.QUEUED
        agent.refresh_from_db()
        assert agent.status == AIAgent.Status.QUEUED


def test_pause_and_resume_schedules(admin_client):
    agent = scheduled("0 9 * * *")
    unscheduled = AgentFactory()
    response = action(admin_client, AGENTS, "pause_schedules", [agent, unscheduled])
    assert messages_of(response) == [
        "Paused the schedule of 1 agent. Skipped 1 agent without a schedule."
    ]
    agent.refresh_from_db()
    assert agent.schedule_enabled is False and agent.next_run_at is None
    assert agent.periodic_task.enabled is False

    response = action(admin_client, AGENTS, "resume_schedules", [agent])
    assert messages_of(response) == ["Resumed the schedule of 1 agent."]
    agent.refresh_from_db()
    assert agent.schedule_enabled is True and agent.next_run_at is not None
    assert agent.periodic_task.enabled is True


def test_pausing_only_unscheduled_agents_warns(admin_client):
    response = action(admin_client, AGENTS, "pause_schedules", [AgentFactory()])
    assert messages_of(response) == [
        "Paused the schedule of 0 agents. Skipped 1 agent without a schedule."
    ]


# --- sessions ---------------------------------------------------------------------


def test_sessions_cannot_be_added_changed_or_deleted(admin_client):
    session = SessionFactory()
    assert admin_client.get(reverse("admin:agents_executionsession_add")).status_code == 403
    url = reverse("admin:agents_executionsession_change", args=[session.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.post(url, {"status": "SUCCEEDED"}).status_code == 403
    delete = reverse("admin:agents_executionsession_delete", args=[session.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    session.refresh_from_db()
    assert session.status == ExecutionSession.Status.QUEUED


def test_a_session_shows_its_input_and_its_log_followed_while_it_runs(admin_client, settings):
    settings.SCHEDULER_PROGRESS_MIN_INTERVAL = 3600
    session = SessionFactory(status=ExecutionSession.Status.RUNNING, input={"topic": "Launch"})
    log = RunLog(session, session.agent)
    log.write("Fetching <sources>")
    log.write("Upstream answered 503", "ERROR")
    log.flush()

    page = admin_client.get(
        reverse("admin:agents_executionsession_change", args=[session.pk])
    ).content.decode()

    assert "Launch" in page
    assert "Fetching &lt;sources&gt;" in page and "<b>ERROR</b> Upstream answered 503" in page
    assert f'data-url="/api/sessions/{session.pk}/logs" data-after="2" data-live="true"' in page
    assert "admin/session_log.js" in page


def test_a_finished_sessions_log_is_not_followed_and_says_it_was_truncated(admin_client):
    session = SessionFactory(status=ExecutionSession.Status.SUCCEEDED, log_truncated=True)
    page = admin_client.get(
        reverse("admin:agents_executionsession_change", args=[session.pk])
    ).content.decode()
    assert 'data-after="0" data-live="false"' in page
    assert "the later lines were dropped" in page


def test_the_session_list_shows_duration_progress_and_a_short_error(admin_client):
    agent = AgentFactory(name="Flaky")
    SessionFactory(
        agent=agent,
        status=ExecutionSession.Status.FAILED,
        attempt=2,
        duration_ms=2500,
        progress=40,
        error_message="x" * 300,
    )
    page = admin_client.get(reverse(SESSIONS)).content.decode()
    assert "Flaky" in page and "2.5 s" in page and "40%" in page
    assert "x" * 79 + "…" in page and "x" * 81 not in page


def test_the_session_list_filters_by_status_trigger_and_agent_type(admin_client):
    demo = SessionFactory(status=ExecutionSession.Status.FAILED)
    hook = SessionFactory(
        agent=AgentFactory(agent_type="webhook", configuration={}),
        trigger=ExecutionSession.Trigger.SCHEDULE,
    )
    url = reverse(SESSIONS)

    def ids(query: str) -> set:
        response = admin_client.get(f"{url}?{query}")
        assert response.status_code == 200
        return {session.pk for session in response.context["cl"].result_list}

    assert ids("status__exact=FAILED") == {demo.pk}
    assert ids("trigger__exact=SCHEDULE") == {hook.pk}
    assert ids("agent__agent_type=webhook") == {hook.pk}
    assert ids(f"agent__exact={demo.agent_id}") == {demo.pk}


def test_cancelling_sessions_from_the_list(admin_client):
    waiting = SessionFactory()
    done = SessionFactory(status=ExecutionSession.Status.SUCCEEDED)
    response = action(admin_client, SESSIONS, "cancel_sessions", [waiting, done])
    assert messages_of(response) == ["Cancelled 1 session. 1 had already finished."]
    waiting.refresh_from_db()
    assert waiting.status == ExecutionSession.Status.CANCELLED


def test_staff_without_permissions_cannot_open_the_agent_admin(client, staff_user):
    client.force_login(staff_user)
    assert client.get(reverse(AGENTS)).status_code == 403


def test_staff_who_may_only_view_agents_get_no_actions(client, staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_aiagent"))
    agent = AgentFactory()
    client.force_login(staff_user)
    response = client.get(reverse(AGENTS))
    assert response.status_code == 200
    assert response.context["action_form"] is None  # run, pause, resume and delete need more
    action(client, AGENTS, "run_now", [agent])
    assert not agent.sessions.exists()


# --- django-celery-beat's admin ---------------------------------------------------


def test_editing_the_crontab_in_the_beat_admin_updates_the_agent(admin_client):
    agent = scheduled("0 9 * * *")
    crontab = agent.periodic_task.crontab
    url = reverse("admin:django_celery_beat_crontabschedule_change", args=[crontab.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url,
        {
            "minute": "30",
            "hour": "7",
            "day_of_month": "*",
            "month_of_year": "*",
            "day_of_week": "1-5",
            "timezone": "Europe/Paris",
            "periodictask_set-TOTAL_FORMS": "1",
            "periodictask_set-INITIAL_FORMS": "1",
            "periodictask_set-MIN_NUM_FORMS": "0",
            "periodictask_set-MAX_NUM_FORMS": "1000",
            "periodictask_set-0-id": str(agent.periodic_task_id),
            "periodictask_set-0-crontab": str(crontab.pk),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    agent.refresh_from_db()
    assert agent.schedule_expression == "30 7 * * 1-5"
    assert agent.schedule_timezone == "Europe/Paris"
    local = agent.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (7, 30)


def test_disabling_the_entry_in_the_beat_admin_pauses_the_agent(admin_client):
    agent = scheduled("0 9 * * *")
    url = reverse("admin:django_celery_beat_periodictask_change", args=[agent.periodic_task_id])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert reverse("admin:agents_aiagent_change", args=[agent.pk]) in page.content.decode()
    data = form_data(page)
    data.pop("enabled")
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    agent.refresh_from_db()
    assert agent.schedule_enabled is False and agent.next_run_at is None


def test_the_beat_admin_bulk_actions_are_mirrored_onto_agents(admin_client):
    agent = scheduled("0 9 * * *")
    tasks_url = "admin:django_celery_beat_periodictask_changelist"
    response = action(admin_client, tasks_url, "disable_tasks", [agent.periodic_task])
    assert response.status_code == 200
    agent.refresh_from_db()
    assert agent.schedule_enabled is False and agent.next_run_at is None

    action(admin_client, tasks_url, "toggle_tasks", [agent.periodic_task])
    agent.refresh_from_db()
    assert agent.schedule_enabled is True and agent.next_run_at is not None

    action(admin_client, tasks_url, "disable_tasks", [agent.periodic_task])
    action(admin_client, tasks_url, "enable_tasks", [agent.periodic_task])
    agent.refresh_from_db()
    assert agent.schedule_enabled is True


def test_the_beat_admin_lists_entries_with_their_agent(admin_client):
    scheduled("0 9 * * *", name="Linked agent")
    page = admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist"))
    assert page.status_code == 200
    assert "Linked agent" in page.content.decode()
    assert admin_client.get(reverse("admin:django_celery_beat_periodictask_add")).status_code == 200


def test_deleting_the_entry_in_the_beat_admin_unschedules_the_agent(admin_client):
    agent = scheduled("0 9 * * *")
    url = reverse("admin:django_celery_beat_periodictask_delete", args=[agent.periodic_task_id])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    agent.refresh_from_db()
    assert agent.schedule_expression is None and agent.schedule_enabled is False
