"""Webhook agents cannot reach into the server's own network, through the real parts.

A URL that parsers could read differently is refused when the agent is
saved, and never fetched. A worker calls an allow-listed receiver on
127.0.0.1, and refuses a host that resolves internal when the run starts.
"""

from __future__ import annotations

import json

import pytest

from agents.models import AIAgent, ExecutionSession
from tests.factories import AgentFactory, UserFactory
from tests.processes import wait_until
from tests.receivers import Receiver
from tests.stack import Api, stack  # noqa: F401

SSRF_URLS = [
    # urllib3 connects to 127.0.0.1:18902, urllib.parse sees the host 1.1.1.1.
    "http://127.0.0.1:18902\\@1.1.1.1/../../internal/secret",
    "http://127.0.0.1:18902@1.1.1.1/",
    "http://user:pass@1.1.1.1/",
    "http://1.1.1.1\t@127.0.0.1/",
    "http://127.0.0.1%00.1.1.1.1/",
    "http://127.0.0.1%2500@1.1.1.1/",
    "http://\uff11\uff12\uff17.0.0.1/",  # fullwidth digits
    "http://127.0.0.1/metrics",
    "http://[::ffff:127.0.0.1]/metrics",
    "http://100.100.100.200/latest/meta-data/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", SSRF_URLS)
def test_the_api_refuses_a_webhook_url_into_the_servers_network(api, url):
    response = api.post(
        "/api/agents",
        {"name": "Hook", "agentType": "webhook", "configuration": {"url": url}},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    (message,) = body["details"]["configuration"]["url"]
    assert message.startswith("Configuration 'url': ")
    assert not AIAgent.objects.exists()


@pytest.mark.django_db
def test_the_api_refuses_to_point_an_existing_agent_at_such_a_url(api, user):
    agent = AgentFactory(owner=user)
    response = api.patch(
        f"/api/agents/{agent.pk}",
        {"agentType": "webhook", "configuration": {"url": SSRF_URLS[0]}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["details"]["configuration"]["url"]
    agent.refresh_from_db()
    assert agent.agent_type == "demo"


@pytest.fixture
def receiver():
    started = Receiver(body=b"0123456789" * 10_000)
    yield started
    started.close()


def finished_session(session_id: str) -> ExecutionSession:
    return wait_until(
        lambda: ExecutionSession.objects.filter(
            pk=session_id, status__in=["SUCCEEDED", "FAILED"]
        ).first(),
        what="run finished",
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_calls_an_allow_listed_receiver_and_keeps_the_start_of_its_answer(
    stack,  # noqa: F811
    receiver,
):
    s = stack(AGENT_WEBHOOK_ALLOWED_HOSTS="127.0.0.1", SCHEDULER_MAX_RETRIES="0")
    s.worker()
    api = Api(s.web(), UserFactory())
    url = f"http://127.0.0.1:{receiver.port}/hook"
    created = api.post(
        "/api/agents",
        {"name": "Hook", "agentType": "webhook", "configuration": {"url": url}},
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["data"]["id"]

    session_id = api.post(f"/api/agents/{agent_id}/run").json()["data"]["sessionId"]

    session = finished_session(session_id)
    assert session.status == "SUCCEEDED", session.error_message
    assert api.get(f"/api/sessions/{session_id}").json()["data"]["outputSummary"] == (
        "0123456789" * 200
    )
    (call,) = receiver.received
    assert (call.method, call.path) == ("POST", "/hook")
    assert call.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert json.loads(call.body)["sessionId"] == session_id


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_refuses_a_webhook_whose_host_resolves_internal_when_it_runs(
    stack,  # noqa: F811
    receiver,
):
    s = stack(AGENT_WEBHOOK_ALLOWED_HOSTS="127.0.0.1", SCHEDULER_MAX_RETRIES="0")
    s.worker()
    # Saved while the name led elsewhere; now it resolves to the loopback.
    agent = AgentFactory(
        agent_type="webhook", configuration={"url": f"http://localhost:{receiver.port}/"}
    )
    api = Api(s.web(), agent.owner)

    session_id = api.post(f"/api/agents/{agent.pk}/run").json()["data"]["sessionId"]

    session = finished_session(session_id)
    assert session.status == "FAILED"
    assert session.error_message == (
        "Webhook URL refused: Host 'localhost' resolves to an internal address; "
        "list it in AGENT_WEBHOOK_ALLOWED_HOSTS to allow it."
    )
    assert receiver.received == []
