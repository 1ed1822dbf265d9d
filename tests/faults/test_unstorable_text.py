"""8. A runner whose output or error the database cannot store as it is.

PostgreSQL refuses NUL in text and neither backend can encode a lone
surrogate; such a run used to stay RUNNING until its lease ran out. The lease
here is ten minutes, so a run heard of within the socket's wait was recorded
by its worker, not reclaimed.
"""

from __future__ import annotations

import pytest

from agents.models import ExecutionSession
from agents.runners import RunFailed
from tests.factories import AgentFactory, UserFactory
from tests.stack import Api, ask, connect_websocket, events_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Status = ExecutionSession.Status
FINAL = {"agent:completed", "agent:failed"}
MODULE = "tests.faults.test_unstorable_text"
CALLABLES = {
    name: f"{MODULE}.{name}"
    for name in ("text_with_nul", "bytes_out", "fails_with_nul", "raises_with_nul")
}


def text_with_nul(context) -> str:
    context.report_progress(50, "half\x00way \ud800")
    return "out\x00put \ud800 end"


def bytes_out(context) -> bytes:
    return b"caf\xc3\xa9 \x00 \xff\xfe"


def fails_with_nul(context) -> str:
    raise RunFailed("bad\x00news \udc80")


def raises_with_nul(context) -> str:
    raise ValueError("no\x00pe")


EXPECTED = {
    "text_with_nul": (Status.SUCCEEDED, "out\\x00put \\ud800 end", ""),
    "bytes_out": (Status.SUCCEEDED, "café \\x00 \\xff\\xfe", ""),
    "fails_with_nul": (Status.FAILED, "", "bad\\x00news \\udc80"),
    "raises_with_nul": (Status.FAILED, "", "ValueError: no\\x00pe"),
}


def test_unstorable_output_and_errors_are_recorded_cleaned_by_the_worker(stack):
    s = stack(
        SCHEDULER_LEASE_SECONDS="600",
        SCHEDULER_MAX_RETRIES="0",
        AGENT_PYTHON_CALLABLES=",".join(CALLABLES.values()),
    )
    s.worker()
    owner = UserFactory()
    agents = {
        name: AgentFactory(owner=owner, agent_type="python", configuration={"callable": path})
        for name, path in CALLABLES.items()
    }
    api = Api(s.web(), owner)
    with connect_websocket(s.base_url, api.token) as socket:
        ask(socket, "monitoring:subscribe", "agents")
        session_ids = {
            name: api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]
            for name, agent in agents.items()
        }
        frames: list[dict] = []
        while sum(frame["event"] in FINAL for frame in frames) < len(agents):
            frames += events_until(socket, FINAL)

    # Events go out after their commit: every outcome is recorded by now.
    sessions = {
        name: ExecutionSession.objects.get(pk=session_id)
        for name, session_id in session_ids.items()
    }
    by_session = {}
    for frame in frames:
        by_session.setdefault(frame["data"]["sessionId"], []).append(frame)

    for name, (status, output, error) in EXPECTED.items():
        session = sessions[name]
        assert (session.status, session.output_summary, session.error_message) == (
            status,
            output,
            error,
        ), name
        detail = api.get(f"/api/sessions/{session.pk}").json()["data"]
        assert (detail["outputSummary"], detail["errorMessage"]) == (output, error)
        # The events carry the text as stored.
        final = by_session[str(session.pk)][-1]
        if status == Status.SUCCEEDED:
            assert final["event"] == "agent:completed"
            assert final["data"]["outputSummary"] == output
        else:
            assert final["event"] == "agent:failed"
            assert final["data"]["error"] == error
            assert final["data"]["willRetry"] is False

    progress = [
        f for f in by_session[session_ids["text_with_nul"]] if f["event"] == "agent:progress"
    ]
    assert progress[0]["data"]["message"] == "half\\x00way \\ud800"
