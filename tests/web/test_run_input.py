"""POST /api/agents/{id}/run with an input and an Idempotency-Key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents.models import ExecutionSession, RunRequestKey
from scheduling import pacing, runs
from scheduling.retention import prune_sessions
from tests.factories import AgentFactory
from tests.scheduling.conftest import at_once_in_two_threads
from web.dashboard.state import session_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_admission(monkeypatch):
    monkeypatch.setattr(pacing, "request_admission", lambda: None)


@pytest.fixture
def agent(user):
    return AgentFactory(owner=user)


def run_path(agent) -> str:
    return f"/api/agents/{agent.pk}/run"


def post_run(api, agent, body=None, **headers):
    if body is None:
        return api.post(run_path(agent), headers=headers)
    return api.post(run_path(agent), body, format="json", headers=headers)


def test_the_input_reaches_the_session_as_sent(api, agent):
    run_input = {"topicId": 7, "snake_key": {"innerCamel": [1, "two", None]}, "ünï": "ok"}

    response = post_run(api, agent, {"input": run_input})

    assert response.status_code == 202, response.content
    session_id = response.json()["data"]["sessionId"]
    assert ExecutionSession.objects.get(pk=session_id).input == run_input
    detail = api.get(f"/api/sessions/{session_id}").json()["data"]
    assert detail["input"] == run_input
    history = api.get(f"/api/agents/{agent.pk}/sessions").json()["data"]["sessions"]
    assert history[0]["input"] == run_input


@pytest.mark.parametrize("body", [None, {}, {"input": {}}])
def test_without_an_input_the_run_has_an_empty_one(api, agent, body):
    response = post_run(api, agent, body)
    assert response.status_code == 202, response.content
    assert ExecutionSession.objects.get().input == {}


def test_an_input_at_the_bound_is_taken_and_one_byte_more_is_not(api, agent):
    # Measured as compact JSON in UTF-8: {"k":"..."} is 8 bytes around the text.
    at_bound = {"k": "x" * (65_536 - 8)}
    assert post_run(api, agent, {"input": at_bound}).status_code == 202
    over = {"k": "x" * (65_536 - 7)}
    response = post_run(api, agent, {"input": over})
    assert response.status_code == 400
    assert "64 KiB" in response.json()["details"]["input"][0]
    assert ExecutionSession.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"input": []},
        {"input": "text"},
        {"input": 5},
        {"input": None},
        {"input": True},
        {"input": {"text": "nul\x00"}},
        {"input": {"nul\x00key": 1}},
        {"input": {"k": "é" * 40_000}},  # 80,000 bytes in UTF-8
    ],
    ids=lambda body: repr(body)[:40],
)
def test_a_bad_input_is_refused_by_name_and_queues_nothing(api, agent, body):
    response = post_run(api, agent, body)
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["success"] is False and list(answer["details"]) == ["input"]
    assert not ExecutionSession.objects.exists()


@pytest.mark.parametrize(
    ("content", "content_type"),
    [("[1, 2]", "application/json"), ('"run"', "application/json"), ("{", "application/json")],
)
def test_a_body_that_is_not_a_json_object_is_refused(api, agent, content, content_type):
    response = api.post(run_path(agent), content, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert not ExecutionSession.objects.exists()


def test_a_repeated_key_queues_nothing_and_answers_the_first_run(api, agent):
    first = post_run(api, agent, {"input": {"n": 1}}, **{"Idempotency-Key": "order-42"})
    again = post_run(api, agent, {"input": {"n": 2}}, **{"Idempotency-Key": "order-42"})

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["data"]["sessionId"] == first.json()["data"]["sessionId"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert ExecutionSession.objects.get().input == {"n": 1}


def test_a_key_is_per_agent(api, agent, user):
    other = AgentFactory(owner=user)
    a = post_run(api, agent, **{"Idempotency-Key": "same"}).json()["data"]["sessionId"]
    b = post_run(api, other, **{"Idempotency-Key": "same"}).json()["data"]["sessionId"]
    assert a != b and ExecutionSession.objects.count() == 2


def test_a_key_older_than_24_hours_queues_a_new_run(api, agent):
    first = post_run(api, agent, **{"Idempotency-Key": "daily"}).json()["data"]["sessionId"]
    RunRequestKey.objects.update(
        created_at=RunRequestKey.objects.get().created_at - timedelta(hours=24)
    )

    again = post_run(api, agent, **{"Idempotency-Key": "daily"})

    assert again.json()["data"]["sessionId"] != first
    assert "Idempotent-Replayed" not in again.headers
    assert ExecutionSession.objects.count() == 2
    assert str(RunRequestKey.objects.get().session_id) == again.json()["data"]["sessionId"]


def test_a_replay_answers_the_first_runs_status_now(api, agent):
    first = post_run(api, agent, **{"Idempotency-Key": "k"}).json()["data"]["sessionId"]
    ExecutionSession.objects.filter(pk=first).update(status="SUCCEEDED")
    assert post_run(api, agent, **{"Idempotency-Key": "k"}).json()["data"] == {
        "sessionId": first,
        "status": "SUCCEEDED",
    }


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "tab\there", "naïve", "line\nbreak"],
    ids=["empty", "256 characters", "tab", "non-ASCII", "newline"],
)
def test_a_bad_key_is_refused_by_name_and_queues_nothing(api, agent, key):
    response = api.generic(
        "POST",
        run_path(agent),
        "{}",
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 400, response.content
    assert list(response.json()["details"]) == ["Idempotency-Key"]
    assert not ExecutionSession.objects.exists()


def test_a_key_of_255_printable_characters_is_taken(api, agent):
    key = "".join(chr(32 + i % 95) for i in range(255))
    assert post_run(api, agent, **{"Idempotency-Key": key}).status_code == 202
    assert RunRequestKey.objects.get().key == key


def test_a_foreign_agent_is_not_found_and_keeps_no_key(api, other_user):
    foreign = AgentFactory(owner=other_user)
    response = post_run(api, foreign, {"input": {"a": 1}}, **{"Idempotency-Key": "k"})
    assert response.status_code == 404
    assert not ExecutionSession.objects.exists() and not RunRequestKey.objects.exists()


def test_retention_forgets_keys_past_their_lifetime(agent):
    old, _ = runs.run_now_once(agent, "old")
    runs.run_now_once(agent, "new")
    RunRequestKey.objects.filter(session=old).update(
        created_at=old.created_at - timedelta(hours=25)
    )
    prune_sessions(days=0, per_agent=0)
    assert list(RunRequestKey.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_with_one_key_queue_one_run(agent):
    answers = at_once_in_two_threads(lambda: runs.run_now_once(agent, "race", input={"r": 1}))
    sessions = {session.pk for session, _ in answers}
    assert len(sessions) == 1
    assert sorted(replayed for _, replayed in answers) == [False, True]
    assert ExecutionSession.objects.count() == 1


def test_the_input_is_kept_out_of_the_dashboards_state(agent):
    session = runs.run_now(agent, input={"topic": "x" * 100})
    assert "input" not in (session_data(session) or {})
