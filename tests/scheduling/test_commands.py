"""The management commands: seed_demo, run_agent and scheduler_status."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from agents.models import AIAgent, ExecutionSession, Priority
from core.redis import get_redis
from observability.heartbeats import record_beat_heartbeat
from scheduling import alerts, pacing, runs
from scheduling.management.commands import seed_demo
from scheduling.models import AlertChannel
from scheduling.services import set_schedule
from tests.factories import AgentFactory, SessionFactory
from tests.processes import ROOT, child_env

# The scheduling tests' real worker, for the one test that needs a run to finish.

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def no_broker(monkeypatch):
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)


@pytest.fixture
def no_beat():
    get_redis().delete("neonhub:beat:heartbeat")
    yield
    get_redis().delete("neonhub:beat:heartbeat")


def run(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "phrase", "option"),
    [
        ("seed_demo", "demo agents", "--password"),
        ("run_agent", "manual run", "--wait"),
        ("scheduler_status", "scheduler's figures", "--json"),
    ],
)
def test_each_command_explains_itself_with_help(name, phrase, option):
    result = subprocess.run(
        [sys.executable, "manage.py", name, "--help"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    assert phrase in help_text and option in help_text


# --- seed_demo ------------------------------------------------------------------------


def test_seed_demo_creates_a_demo_user_and_scheduled_agents(settings):
    settings.DEBUG = True
    output = run("seed_demo")
    user = User.objects.get(username="demo")
    assert user.check_password(seed_demo.DEFAULT_PASSWORD)
    assert user.is_staff and not user.is_superuser
    assert user.has_perm("agents.change_aiagent")
    agents = AIAgent.objects.filter(owner=user)
    assert agents.count() == len(seed_demo.DEMO_AGENTS) >= 3
    assert {agent.priority for agent in agents} == set(Priority)
    for agent in agents:
        assert agent.agent_type == "demo"
        assert agent.schedule_enabled and agent.next_run_at is not None
        assert agent.periodic_task.enabled
    assert PeriodicTask.objects.filter(name__startswith="agent:").count() == agents.count()
    assert "Content creator: created, Every 2 minutes, priority HIGH." in output
    assert f"as demo / {seed_demo.DEFAULT_PASSWORD}" in output
    assert "/dashboard/" in output and "/admin/" in output
    # An alert rule a newcomer sees fire, to a channel printed on the console.
    (channel,) = AlertChannel.objects.filter(owner=user)
    assert (channel.kind, channel.target) == ("email", "demo@localhost")
    creator = alerts.rules_of(agents.get(name="Content creator"))
    assert creator.max_duration_seconds == 5 and creator.channels == (channel,)
    assert user.has_perm("scheduling.change_alertchannel")


def test_seed_demo_is_idempotent(settings):
    settings.DEBUG = True
    run("seed_demo")
    agent = AIAgent.objects.get(name="Heartbeat")
    set_schedule(agent, enabled=False)
    output = run("seed_demo")
    assert User.objects.filter(username="demo").count() == 1
    assert AIAgent.objects.count() == len(seed_demo.DEMO_AGENTS)
    assert PeriodicTask.objects.count() == len(seed_demo.DEMO_AGENTS)
    assert AlertChannel.objects.count() == 1
    assert "Heartbeat: already there, left as it is." in output
    agent.refresh_from_db()
    assert agent.schedule_enabled is False  # the user's own change survives
    assert f"as demo / {seed_demo.DEFAULT_PASSWORD}" in output


def test_seed_demo_takes_a_password_and_resets_it_on_request(settings):
    settings.DEBUG = False
    output = run("seed_demo", "--password", "s3cret-enough")
    user = User.objects.get(username="demo")
    assert user.check_password("s3cret-enough")
    assert "as demo / s3cret-enough" in output
    output = run("seed_demo")
    assert "(its password, unchanged)" in output
    run("seed_demo", "--password", "another-one")
    user.refresh_from_db()
    assert user.check_password("another-one")


def test_seed_demo_refuses_the_public_default_password_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="pass --password"):
        run("seed_demo")
    assert not User.objects.filter(username="demo").exists()
    assert not AIAgent.objects.exists()


# --- run_agent ------------------------------------------------------------------------


def test_run_agent_queues_a_manual_run(no_broker):
    agent = AgentFactory(name="Writer")
    output = run("run_agent", str(agent.pk))
    session = ExecutionSession.objects.get(agent=agent)
    assert session.trigger == ExecutionSession.Trigger.MANUAL
    assert session.status == ExecutionSession.Status.QUEUED
    assert output.strip() == f"Queued run {session.pk} of agent “Writer”."


@pytest.mark.parametrize("agent_id", [str(uuid.uuid4()), "not-a-uuid", ""])
def test_run_agent_names_an_unknown_agent(no_broker, agent_id):
    with pytest.raises(CommandError, match=f"Agent {agent_id!r} not found."):
        run("run_agent", agent_id)
    assert not ExecutionSession.objects.exists()


def test_run_agent_wait_gives_up_after_the_timeout_with_a_hint(no_broker):
    agent = AgentFactory()
    with pytest.raises(CommandError, match=r"still QUEUED after 0.3 s.*Is a worker running\?"):
        run("run_agent", str(agent.pk), "--wait", "--timeout", "0.3")
    assert ExecutionSession.objects.get(agent=agent).status == ExecutionSession.Status.QUEUED


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_run_agent_waits_for_a_real_worker_and_prints_the_outcome(worker):
    agent = AgentFactory(configuration={"steps": 2, "stepSeconds": 0.1, "output": "two steps"})
    output = run("run_agent", str(agent.pk), "--wait", "--timeout", "60")
    assert "Succeeded in " in output and output.rstrip().endswith(": two steps")
    (session,) = agent.sessions.all()
    assert session.status == ExecutionSession.Status.SUCCEEDED

    failing = AgentFactory(configuration={"steps": 1, "stepSeconds": 0, "failTimes": 1})
    out = StringIO()
    with pytest.raises(CommandError, match=r"Run failed in .*Demo failure on attempt 1"):
        call_command("run_agent", str(failing.pk), "--wait", "--timeout", "60", stdout=out)
    assert "A retry is queued: run " in out.getvalue() and "(attempt 2)" in out.getvalue()


# --- scheduler_status -----------------------------------------------------------------


def test_scheduler_status_prints_the_figures_and_the_scheduled_agents(no_broker, no_beat):
    agent = set_schedule(
        AgentFactory(name="Morning report"), expression="0 9 * * *", priority=Priority.HIGH
    )
    set_schedule(AgentFactory(name="Paused one"), expression="* * * * *", enabled=False)
    AgentFactory(name="Unscheduled")
    SessionFactory(agent=agent)
    output = run("scheduler_status")
    assert "Beat:              NOT running" in output
    assert "Scheduled agents:  1" in output
    assert "Running agents:    0 of at most 5" in output
    assert "Queued runs:       1" in output
    (row,) = [line for line in output.splitlines() if "Morning report" in line]
    assert "HIGH" in row and "At 09:00 AM" in row and str(agent.pk) in row
    assert "Paused one" not in output and "Unscheduled" not in output


def test_scheduler_status_reports_a_live_beat(no_beat):
    record_beat_heartbeat()
    output = run("scheduler_status")
    assert "Beat:              running" in output
    assert "No agent has an enabled schedule." in output


def test_scheduler_status_json_matches_the_api_shape(no_beat, user, api):
    agent = set_schedule(AgentFactory(owner=user), expression="*/5 * * * *")
    data = json.loads(run("scheduler_status", "--json"))
    assert data == {
        "isRunning": False,
        "scheduledTasksCount": 1,
        "runningAgentsCount": 0,
        "queuedTasksCount": 0,
        "maxConcurrentAgents": 5,
        "tasks": [
            {
                "agentId": str(agent.pk),
                "agentName": agent.name,
                "priority": 2,
                "nextRunTime": data["tasks"][0]["nextRunTime"],
                "retryCount": 0,
                "lastError": None,
                "isRunning": False,
            }
        ],
    }
    assert data["tasks"][0]["nextRunTime"].endswith("Z")
    assert data == api.get("/api/agents/scheduler/status").json()["data"]
