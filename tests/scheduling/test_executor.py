"""The executor run in the test process: a runner's odd results and a database
that refuses the outcome."""

from __future__ import annotations

import pytest
from django.db import DataError, IntegrityError

from agents.models import AIAgent, ExecutionSession
from agents.runners import RunFailed
from scheduling import admission, executor, later, pacing, runs
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

Status = ExecutionSession.Status
CALLABLE = "tests.scheduling.test_executor.give_back"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """What would go to the broker, recorded: admission requests, started runs
    and calls put off (a retry's admission)."""
    sent: list = []
    monkeypatch.setattr(pacing, "request_admission", lambda: sent.append("admission"))
    monkeypatch.setattr(admission, "_send_executions", lambda admitted: sent.extend(admitted))
    monkeypatch.setattr(pacing, "request_status_broadcast", lambda: None)
    monkeypatch.setattr(later, "call_later", lambda seconds, function: sent.append("later"))
    return sent


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


class NoText:
    def __str__(self) -> str:
        raise RuntimeError("no text")


RESULTS: dict[str, object] = {}


def give_back(context) -> object:
    """An allow-listed callable: returns, or raises, what the test put in RESULTS."""
    context.report_progress(50, "half\x00way \ud800")
    result = RESULTS[context.session_id]
    if isinstance(result, Exception):
        raise result
    return result


def admitted_session(settings, result: object, **agent_fields) -> ExecutionSession:
    settings.AGENT_PYTHON_CALLABLES = [CALLABLE]
    agent = AgentFactory(agent_type="python", configuration={"callable": CALLABLE}, **agent_fields)
    session = SessionFactory(agent=agent, status=Status.RUNNING)
    RESULTS[str(session.pk)] = result
    return session


@pytest.mark.parametrize(
    ("result", "output"),
    [
        ("out\x00put \ud800", "out\\x00put \\ud800"),
        (b"caf\xc3\xa9 \x00 \xff", "café \\x00 \\xff"),
        (NoText(), "<unprintable NoText>"),
        (None, ""),
    ],
)
def test_whatever_a_runner_returns_is_stored_as_text(settings, result, output):
    session = admitted_session(settings, result)

    assert executor.execute(str(session.pk)) == Status.SUCCEEDED
    session.refresh_from_db()
    assert (session.status, session.output_summary) == (Status.SUCCEEDED, output)


@pytest.mark.parametrize(
    ("error", "stored"),
    [
        (RunFailed("bad\x00news \udc80"), "bad\\x00news \\udc80"),
        (ValueError("no\x00pe"), "ValueError: no\\x00pe"),
        (Unprintable(), "Unprintable: <unprintable Unprintable>"),
    ],
)
def test_whatever_a_runner_fails_with_is_stored_as_text(settings, error, stored):
    settings.SCHEDULER_MAX_RETRIES = 0
    session = admitted_session(settings, error)

    assert executor.execute(str(session.pk)) == Status.FAILED
    session.refresh_from_db()
    assert (session.status, session.error_message) == (Status.FAILED, stored)
    session.agent.refresh_from_db()
    assert session.agent.last_error == stored


def refuse_once(monkeypatch, name: str, error: Exception) -> list:
    """Make ``runs.<name>`` raise ``error`` on its first call; the calls are listed."""
    real = getattr(runs, name)
    calls: list = []

    def refuse(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, name, refuse)
    return calls


def test_a_result_the_database_refuses_fails_the_run_at_once_and_the_retry_takes_the_slot(
    settings, monkeypatch, no_broker, django_capture_on_commit_callbacks
):
    settings.SCHEDULER_BACKOFF_BASE = 0
    session = admitted_session(settings, "fine")
    refuse_once(monkeypatch, "finish_succeeded", DataError("value\x00 too long"))

    with django_capture_on_commit_callbacks(execute=True):
        assert executor.execute(str(session.pk)) is None
    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert session.lease_expires_at is None
    assert session.error_message == (
        "Could not store the run's result: DataError: value\\x00 too long"
    )
    # A failure like any other: the agent counts it, and its retry (backoff 0
    # here) is admitted into the freed slot by the same worker.
    agent = AIAgent.objects.get(pk=session.agent_id)
    assert agent.retry_count == 1 and agent.last_error == session.error_message
    retry = agent.sessions.get(attempt=2)
    assert (retry.trigger, retry.status) == ("RETRY", Status.RUNNING)
    assert (str(retry.pk), retry.priority) in no_broker


def test_a_failure_the_database_refuses_is_recorded_with_why(settings, monkeypatch):
    settings.SCHEDULER_MAX_RETRIES = 0
    session = admitted_session(settings, RunFailed("boom"))
    calls = refuse_once(monkeypatch, "finish_failed", IntegrityError("rule broken"))

    assert executor.execute(str(session.pk)) == Status.FAILED
    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert session.error_message == "Could not store the run's result: IntegrityError: rule broken"
    assert [args[1] for args in calls] == ["boom", session.error_message]
    session.agent.refresh_from_db()
    assert session.agent.status == AIAgent.Status.ERROR
