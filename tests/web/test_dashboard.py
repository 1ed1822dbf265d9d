"""The dashboard pages, through Django's test client."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from django.test import Client
from django.utils.html import escape

from agents.models import ExecutionSession
from scheduling.schedules import schedule_warnings
from scheduling.services import set_schedule
from tests.factories import PASSWORD, AgentFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def embedded_state(response, element_id: str) -> dict:
    html = response.content.decode()
    start = html.index(f'<script id="{element_id}" type="application/json">')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


def test_it_sends_anonymous_visitors_to_the_login_page():
    response = Client().get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == f"{settings.LOGIN_URL}?next=/dashboard/"


def test_it_sends_anonymous_visitors_of_an_agent_page_to_the_login_page():
    agent = AgentFactory()
    response = Client().get(f"/dashboard/agents/{agent.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


def test_it_shows_the_users_agents_only(user, other_user):
    mine = AgentFactory(owner=user, name="Morning digest")
    theirs = AgentFactory(owner=other_user, name="Someone else's agent")
    response = signed_in(user).get("/dashboard/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "Morning digest" in html
    assert "Someone else" not in html
    state = embedded_state(response, "dashboard-state")
    assert [agent["id"] for agent in state["agents"]] == [str(mine.pk)]
    assert state["total"] == 1
    assert str(theirs.pk) not in html


def test_staff_see_every_agent(staff_user, other_user):
    AgentFactory(owner=other_user, name="Other's agent")
    AgentFactory(owner=staff_user, name="Staff agent")
    state = embedded_state(signed_in(staff_user).get("/dashboard/"), "dashboard-state")
    assert {agent["name"] for agent in state["agents"]} == {"Other's agent", "Staff agent"}


def test_the_state_uses_the_apis_shapes(user):
    agent = AgentFactory(owner=user, configuration={"keep_me": 1})
    set_schedule(agent, expression="0 9 * * 1-5", timezone_name="Europe/Berlin")
    SessionFactory(
        agent=agent,
        status=ExecutionSession.Status.SUCCEEDED,
        success=True,
        duration_ms=1500,
        output_summary="done",
    )
    running = SessionFactory(agent=agent, status=ExecutionSession.Status.RUNNING, progress=40)
    state = embedded_state(signed_in(user).get("/dashboard/"), "dashboard-state")
    (row,) = state["agents"]
    assert row["scheduleExpression"] == "0 9 * * 1-5"
    assert row["scheduleEnabled"] is True
    assert row["scheduleTimezone"] == "Europe/Berlin"
    assert row["nextRunAt"].endswith("Z")
    assert row["description"] and "09:00" in row["description"]
    assert "configuration" not in row
    assert row["lastSession"]["status"] == "SUCCEEDED"
    assert row["lastSession"]["duration"] == 1500
    assert row["activeSession"]["id"] == str(running.pk)
    assert row["activeSession"]["progress"] == 40
    assert set(state["scheduler"]) >= {
        "isRunning",
        "scheduledTasksCount",
        "runningAgentsCount",
        "queuedTasksCount",
        "maxConcurrentAgents",
    }


def test_it_loads_its_scripts_and_styles_and_sets_the_csrf_cookie(user):
    response = signed_in(user).get("/dashboard/")
    html = response.content.decode()
    for asset in (
        "dashboard/dashboard.css",
        "dashboard/core.js",
        "dashboard/dashboard.js",
        "dashboard/alerts.js",
    ):
        assert f"/static/{asset}" in html
    assert settings.CSRF_COOKIE_NAME in response.cookies
    assert "https://" not in html  # nothing from a CDN


def test_it_shows_an_agent_page_with_its_schedule_and_history(user):
    agent = AgentFactory(owner=user, name="Weekly report")
    set_schedule(agent, expression="30 6 * * *")
    for _ in range(12):
        SessionFactory(agent=agent, status=ExecutionSession.Status.FAILED, success=False)
    response = signed_in(user).get(f"/dashboard/agents/{agent.pk}/")
    assert response.status_code == 200
    assert "Weekly report" in response.content.decode()
    state = embedded_state(response, "agent-state")
    assert state["agent"]["id"] == str(agent.pk)
    assert len(state["schedule"]["upcomingRuns"]) == 5
    assert state["schedule"]["description"]
    assert state["sessionsTotal"] == 12
    assert len(state["sessions"]) == 12
    assert state["pageSize"] == 10


def test_an_agent_page_shows_the_dst_warnings_of_its_schedule(user):
    agent = set_schedule(
        AgentFactory(owner=user), expression="30 1 * * *", timezone_name="America/New_York"
    )
    warnings = schedule_warnings(agent)
    assert len(warnings) == 1 and "occurs twice in America/New_York" in warnings[0]
    response = signed_in(user).get(f"/dashboard/agents/{agent.pk}/")
    assert embedded_state(response, "agent-state")["schedule"]["warnings"] == warnings
    assert f"<li>{escape(warnings[0])}</li>" in response.content.decode()


def test_an_agent_page_without_dst_warnings_hides_their_list(user):
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression="30 1 * * *")
    response = signed_in(user).get(f"/dashboard/agents/{agent.pk}/")
    assert embedded_state(response, "agent-state")["schedule"]["warnings"] == []
    assert 'id="schedule-warnings" aria-label="Daylight saving time warnings" hidden>' in (
        response.content.decode()
    )


def test_a_paused_agent_has_no_upcoming_runs(user):
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression="@hourly", enabled=False)
    state = embedded_state(signed_in(user).get(f"/dashboard/agents/{agent.pk}/"), "agent-state")
    assert state["schedule"]["upcomingRuns"] == []
    assert state["agent"]["nextRunAt"] is None


def test_an_agent_page_of_someone_elses_agent_is_not_found(user, other_user):
    agent = AgentFactory(owner=other_user)
    assert signed_in(user).get(f"/dashboard/agents/{agent.pk}/").status_code == 404


def test_an_agent_page_of_an_unknown_agent_is_not_found(user):
    assert signed_in(user).get(f"/dashboard/agents/{uuid.uuid4()}/").status_code == 404


def test_an_agent_page_with_a_malformed_id_is_not_found(user):
    assert signed_in(user).get("/dashboard/agents/not-a-uuid/").status_code == 404


def test_staff_can_open_anyones_agent(staff_user, other_user):
    agent = AgentFactory(owner=other_user)
    assert signed_in(staff_user).get(f"/dashboard/agents/{agent.pk}/").status_code == 200


def test_the_pages_only_answer_get(user):
    client = signed_in(user)
    assert client.post("/dashboard/").status_code == 405
    agent = AgentFactory(owner=user)
    assert client.delete(f"/dashboard/agents/{agent.pk}/").status_code == 405


def test_anyone_with_an_account_can_sign_in_to_the_dashboard():
    user = UserFactory()  # not staff: the admin's login form would turn them away
    client = Client()
    response = client.post(
        "/dashboard/login/", {"username": user.username, "password": PASSWORD, "next": ""}
    )
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


def test_a_wrong_password_shows_the_form_again_with_an_error():
    user = UserFactory()
    response = Client().post("/dashboard/login/", {"username": user.username, "password": "no"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


def test_signing_out_ends_the_session(user):
    client = signed_in(user)
    response = client.post("/dashboard/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/login/"
    assert client.get("/dashboard/").status_code == 302
