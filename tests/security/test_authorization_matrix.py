"""Who may touch what: every endpoint and WebSocket event, for owners, others, staff
and the unauthenticated.

Alice and Bob each own an agent (scheduled, with a queued and a finished
session). Bob aiming at Alice's ids gets exactly what an unknown id gets,
404 "Agent not found" / "Session not found" or an error frame, with nothing
of hers in the answer, and her objects stay as they were. Without a valid
token every endpoint but the token endpoints answers 401. Staff see both.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from agents.models import AIAgent, ExecutionSession
from realtime import events
from realtime.protocol import CLOSE_UNAUTHORIZED
from realtime.publisher import send_to_groups
from scheduling.models import AlertChannel, AlertRule
from tests.api_routes import api_routes
from tests.factories import PASSWORD
from tests.realtime.helpers import ask, close_code, token_for

AGENT_NOT_FOUND = {"success": False, "error": "Agent not found"}
SESSION_NOT_FOUND = {"success": False, "error": "Session not found"}
CHANNEL_NOT_FOUND = {"success": False, "error": "Alert channel not found"}


def client_with(authorization: str | None) -> APIClient:
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


def bearer(user) -> str:
    return f"Bearer {AccessToken.for_user(user)}"


def snapshot(holdings) -> dict[str, Any]:
    """Everything stored about one user's agent: its row, its sessions, its beat entry."""
    agent = AIAgent.objects.filter(pk=holdings.agent.pk).values().first()
    task = PeriodicTask.objects.filter(pk=(agent or {}).get("periodic_task_id")).values().first()
    crontab = CrontabSchedule.objects.filter(pk=(task or {}).get("crontab_id")).values().first()
    sessions = ExecutionSession.objects.filter(agent_id=holdings.agent.pk).order_by("pk").values()
    channel = AlertChannel.objects.filter(pk=holdings.channel.pk).values().first()
    rule = AlertRule.objects.filter(agent_id=holdings.agent.pk).values().first()
    return {
        "agent": agent,
        "task": task,
        "crontab": crontab,
        "sessions": list(sessions),
        "channel": channel,
        "rule": rule,
    }


def secrets_of(holdings) -> set[str]:
    """What must never reach anyone else: names, ids, messages."""
    agent = holdings.agent
    return {
        agent.name,
        holdings.user.username,
        str(agent.pk),
        str(holdings.queued.pk),
        str(holdings.finished.pk),
        holdings.finished.error_message,
        holdings.finished.output_summary,
        f"agent-{agent.pk}",
        holdings.channel.name,
        holdings.channel.target,
        holdings.channel.secret,
    }


def assert_leaks_nothing(text: str, holdings, *, sent: set[str] = frozenset()) -> None:
    leaked = {secret for secret in secrets_of(holdings) - sent if secret and secret in text}
    assert not leaked, leaked


# --- the REST endpoints ---------------------------------------------------------------

# (method, path, body, what an unknown or foreign id answers)
AGENT_ENDPOINTS = [
    ("get", "/api/agents/{agent}", None),
    ("patch", "/api/agents/{agent}", {"name": "Taken over", "configuration": {"steps": 9}}),
    ("put", "/api/agents/{agent}", {"name": "Taken over"}),
    ("delete", "/api/agents/{agent}", None),
    ("get", "/api/agents/{agent}/schedule", None),
    ("post", "/api/agents/{agent}/schedule", {"cronExpression": "* * * * *"}),
    ("patch", "/api/agents/{agent}/schedule", {"enabled": False}),
    ("delete", "/api/agents/{agent}/schedule", None),
    ("get", "/api/agents/{agent}/schedule/status", None),
    ("post", "/api/agents/{agent}/schedule/resume", {"policy": "RUN_ALL"}),
    (
        "post",
        "/api/agents/{agent}/backfill",
        {"start": "2026-01-05T00:00Z", "end": "2026-01-10T00:00Z"},
    ),
    ("post", "/api/agents/{agent}/run", None),
    ("get", "/api/agents/{agent}/sessions", None),
    ("get", "/api/agents/{agent}/slots", None),
    ("get", "/api/agents/{agent}/audit", None),
    ("get", "/api/agents/{agent}/alerts", None),
    ("put", "/api/agents/{agent}/alerts", {"failuresInARow": 3}),
    ("get", "/api/agents/{agent}/stats", None),
]
CHANNEL_ENDPOINTS = [
    ("get", "/api/alert-channels/{channel}", None),
    ("patch", "/api/alert-channels/{channel}", {"name": "Taken over"}),
    ("delete", "/api/alert-channels/{channel}", None),
    ("post", "/api/alert-channels/{channel}/test", None),
]
SESSION_ENDPOINTS = [
    ("get", "/api/sessions/{finished}", None),
    ("get", "/api/sessions/{queued}", None),
    ("get", "/api/sessions/{finished}/logs", None),
    ("post", "/api/sessions/{queued}/cancel", None),
]
ENDPOINTS = [
    *[(*row, AGENT_NOT_FOUND) for row in AGENT_ENDPOINTS],
    *[(*row, SESSION_NOT_FOUND) for row in SESSION_ENDPOINTS],
    *[(*row, CHANNEL_NOT_FOUND) for row in CHANNEL_ENDPOINTS],
]


def ids_of(holdings) -> dict[str, str]:
    return {
        "agent": str(holdings.agent.pk),
        "queued": str(holdings.queued.pk),
        "finished": str(holdings.finished.pk),
        "channel": str(holdings.channel.pk),
    }


def as_sentence(method: str, path: str, slash: str = "") -> str:
    return f"{method.upper()} {path}{slash}"


def with_slashes(rows):
    # Every path answers with and without its trailing slash; both are checked.
    for method, path, body, not_found in rows:
        for slash in ("", "/"):
            yield pytest.param(
                method, path + slash, body, not_found, id=as_sentence(method, path, slash)
            )


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "not_found"), list(with_slashes(ENDPOINTS)))
def test_another_user_s_agent_or_session_is_not_found_and_left_untouched(
    alice, bob, method, path, body, not_found
):
    before = snapshot(alice)
    url = path.format(**ids_of(alice))
    response = getattr(client_with(bearer(bob.user)), method)(url, body, format="json")

    assert response.status_code == 404, response.content
    assert response.json() == not_found
    sent = {value for value in ids_of(alice).values() if value in url}
    assert_leaks_nothing(response.content.decode() + str(response.headers), alice, sent=sent)
    assert snapshot(alice) == before


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "not_found"), list(with_slashes(ENDPOINTS)))
def test_a_foreign_id_answers_exactly_like_an_id_that_does_not_exist(
    alice, bob, method, path, body, not_found
):
    client = client_with(bearer(bob.user))
    foreign = getattr(client, method)(path.format(**ids_of(alice)), body, format="json")
    unknown_ids = {name: str(uuid.uuid4()) for name in ids_of(alice)}
    unknown = getattr(client, method)(path.format(**unknown_ids), body, format="json")
    assert (foreign.status_code, foreign.json()) == (unknown.status_code, unknown.json())


# Walked from the URL patterns rather than listed, so a new path with an id
# cannot be left out: every method of it, with an id that does not exist, one
# that is not an id at all, and another user's.


NOT_FOUND_BY_PARAMETER = {
    "session_id": "Session not found",
    "channel_id": "Alert channel not found",
}


def walked_requests():
    for route in api_routes():
        if route.parameter is None:
            continue
        expected = NOT_FOUND_BY_PARAMETER.get(route.parameter, "Agent not found")
        for method in route.methods:
            for whose in ("unknown", "not an id", "foreign"):
                yield pytest.param(
                    route.name,
                    route.parameter,
                    method,
                    whose,
                    expected,
                    id=f"{method} {route.name} {whose}",
                )


WALKED = list(walked_requests())


def test_the_walk_finds_the_agent_and_session_paths():
    names = {param.values[0] for param in WALKED}
    assert {"agent-detail", "agent-schedule", "agent-run", "session-cancel"} <= names
    assert {param.values[4] for param in WALKED} == {
        "Agent not found",
        "Session not found",
        "Alert channel not found",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "parameter", "method", "whose", "expected"), WALKED)
def test_every_path_with_an_id_answers_exactly_the_contract_s_not_found(
    alice, bob, name, parameter, method, whose, expected
):
    session = alice.queued if method == "post" else alice.finished
    foreign = {
        "Agent not found": alice.agent.pk,
        "Session not found": session.pk,
        "Alert channel not found": alice.channel.pk,
    }[expected]
    value = {"unknown": uuid.uuid4(), "not an id": "not.an-id", "foreign": foreign}[whose]
    before = snapshot(alice)
    url = reverse(name, kwargs={parameter: value})
    for path in (url, url.rstrip("/") + "/"):
        response = getattr(client_with(bearer(bob.user)), method)(path, {}, format="json")
        assert response.status_code == 404, (path, response.content)
        assert response.json() == {"success": False, "error": expected}
    assert snapshot(alice) == before


OWNER_ANSWERS = {
    ("get", "/api/agents/{agent}"): 200,
    ("patch", "/api/agents/{agent}"): 200,
    ("put", "/api/agents/{agent}"): 200,
    ("delete", "/api/agents/{agent}"): 200,
    ("get", "/api/agents/{agent}/schedule"): 200,
    ("post", "/api/agents/{agent}/schedule"): 200,
    ("patch", "/api/agents/{agent}/schedule"): 200,
    ("delete", "/api/agents/{agent}/schedule"): 200,
    ("get", "/api/agents/{agent}/schedule/status"): 200,
    ("post", "/api/agents/{agent}/schedule/resume"): 200,
    ("post", "/api/agents/{agent}/backfill"): 202,
    ("post", "/api/agents/{agent}/run"): 202,
    ("get", "/api/agents/{agent}/sessions"): 200,
    ("get", "/api/agents/{agent}/slots"): 200,
    ("get", "/api/agents/{agent}/audit"): 200,
    ("get", "/api/agents/{agent}/stats"): 200,
    ("get", "/api/sessions/{finished}"): 200,
    ("get", "/api/sessions/{queued}"): 200,
    ("get", "/api/sessions/{finished}/logs"): 200,
    ("post", "/api/sessions/{queued}/cancel"): 200,
    ("get", "/api/agents/{agent}/alerts"): 200,
    ("put", "/api/agents/{agent}/alerts"): 200,
    ("get", "/api/alert-channels/{channel}"): 200,
    ("patch", "/api/alert-channels/{channel}"): 200,
    ("delete", "/api/alert-channels/{channel}"): 200,
    ("post", "/api/alert-channels/{channel}/test"): 200,
}


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "not_found"), list(with_slashes(ENDPOINTS)))
def test_the_owner_reaches_every_endpoint_of_their_own_agent(
    alice, bob, method, path, body, not_found
):
    # The other side of the 404s above: the same requests work for the owner.
    response = getattr(client_with(bearer(alice.user)), method)(
        path.format(**ids_of(alice)), body, format="json"
    )
    assert response.status_code == OWNER_ANSWERS[(method, path.rstrip("/"))], response.content
    assert response.json()["success"] is True
    assert_leaks_nothing(response.content.decode(), bob)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/agents", "/api/agents/?limit=100&offset=0"])
def test_the_agent_list_shows_only_the_user_s_own_agents(alice, bob, path):
    response = client_with(bearer(bob.user)).get(path)
    assert response.status_code == 200
    data = response.json()["data"]
    assert [agent["id"] for agent in data["agents"]] == [str(bob.agent.pk)]
    assert data["pagination"]["total"] == 1
    assert_leaks_nothing(response.content.decode(), alice)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/agents/scheduler/status", "/api/agents/scheduler/status/"])
def test_the_scheduler_status_lists_only_the_user_s_own_scheduled_agents(alice, bob, path):
    response = client_with(bearer(bob.user)).get(path)
    assert response.status_code == 200
    tasks = response.json()["data"]["tasks"]
    assert [task["agentId"] for task in tasks] == [str(bob.agent.pk)]
    assert_leaks_nothing(response.content.decode(), alice)


@pytest.mark.django_db
def test_an_agent_created_by_one_user_belongs_to_them_whatever_the_body_says(alice, bob):
    response = client_with(bearer(bob.user)).post(
        "/api/agents",
        {"name": "Mine", "agentType": "demo", "owner": alice.user.pk, "id": str(alice.agent.pk)},
        format="json",
    )
    assert response.status_code == 201
    created = AIAgent.objects.get(pk=response.json()["data"]["id"])
    assert created.owner == bob.user
    assert created.pk != alice.agent.pk


STAFF_READS = [
    ("/api/agents/{agent}", "id", "agent"),
    ("/api/agents/{agent}/schedule", "id", "agent"),
    ("/api/sessions/{finished}", "id", "finished"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "field", "which"), STAFF_READS, ids=lambda v: str(v))
def test_staff_see_every_user_s_agents_and_sessions(alice, bob, staff, path, field, which):
    client = client_with(bearer(staff))
    for holdings in (alice, bob):
        response = client.get(path.format(**ids_of(holdings)))
        assert response.status_code == 200, response.content
        assert response.json()["data"][field] == ids_of(holdings)[which]


@pytest.mark.django_db
def test_staff_see_every_agent_in_the_lists(alice, bob, staff):
    client = client_with(bearer(staff))
    listed = {agent["id"] for agent in client.get("/api/agents").json()["data"]["agents"]}
    assert listed == {str(alice.agent.pk), str(bob.agent.pk)}
    tasks = client.get("/api/agents/scheduler/status").json()["data"]["tasks"]
    assert {task["agentId"] for task in tasks} == listed
    for holdings in (alice, bob):
        sessions = client.get(f"/api/agents/{holdings.agent.pk}/sessions").json()["data"]
        assert sessions["pagination"]["total"] == 2


# --- without a valid token ------------------------------------------------------------

PROTECTED = [
    ("get", "/api/agents"),
    ("post", "/api/agents"),
    ("get", "/api/agents/scheduler/status"),
    ("get", "/api/schedule/preview?cronExpression=@daily"),
    *[(method, path) for method, path, _ in AGENT_ENDPOINTS],
    *[(method, path) for method, path, _ in SESSION_ENDPOINTS],
]


def bad_credentials(user) -> dict[str, str | None]:
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    unsigned = json.dumps({"alg": "none", "typ": "JWT"})
    return {
        "no token": None,
        "a token that is not a JWT": "Bearer not-a-token",
        "an expired token": f"Bearer {expired}",
        "a refresh token": f"Bearer {RefreshToken.for_user(user)}",
        "a token with its signature removed": "Bearer "
        + ".".join([*str(AccessToken.for_user(user)).split(".")[:2], ""]),
        "an unsigned token": f"Bearer {unsigned}.e30.",
        "a valid token under another scheme": f"Token {AccessToken.for_user(user)}",
        "a valid token with no scheme": str(AccessToken.for_user(user)),
    }


CREDENTIAL_NAMES = [
    "no token",
    "a token that is not a JWT",
    "an expired token",
    "a refresh token",
    "a token with its signature removed",
    "an unsigned token",
    "a valid token under another scheme",
    "a valid token with no scheme",
]


@pytest.mark.django_db
@pytest.mark.parametrize("credential", CREDENTIAL_NAMES)
@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=lambda v: str(v))
def test_a_request_without_a_valid_token_is_401_everywhere(alice, credential, method, path):
    before = snapshot(alice)
    client = client_with(bad_credentials(alice.user)[credential])
    response = getattr(client, method)(path.format(**ids_of(alice)), {}, format="json")

    assert response.status_code == 401, response.content
    body = response.json()
    assert body["success"] is False and body["error"].endswith(".")
    assert_leaks_nothing(response.content.decode(), alice, sent=set(ids_of(alice).values()))
    assert snapshot(alice) == before


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["deleted", "deactivated"])
def test_a_token_of_a_user_who_is_gone_is_401(alice, state):
    token = bearer(alice.user)
    if state == "deleted":
        alice.user.delete()
    else:
        alice.user.is_active = False
        alice.user.save()
    assert client_with(token).get("/api/agents").status_code == 401


@pytest.mark.django_db
def test_the_token_endpoints_answer_without_a_token(alice):
    client = client_with(None)
    response = client.post(
        "/api/auth/token", {"username": "alice", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    refresh = response.json()["data"]["refresh"]
    response = client.post("/api/auth/token/refresh", {"refresh": refresh}, format="json")
    assert response.status_code == 200
    wrong = client.post("/api/auth/token", {"username": "alice", "password": "no"}, format="json")
    assert wrong.status_code == 401
    unknown = client.post(
        "/api/auth/token", {"username": "nobody", "password": "no"}, format="json"
    )
    # A wrong password and an unknown user look the same.
    assert (unknown.status_code, unknown.json()) == (wrong.status_code, wrong.json())


# --- the WebSocket events -------------------------------------------------------------

# The consumer reads the database from its own threads: the rows must be committed.
websocket_db = pytest.mark.django_db(transaction=True)


@websocket_db
@pytest.mark.parametrize(
    "spelling",
    [str, lambda value: str(value).upper(), lambda value: "{" + str(value) + "}", lambda v: v.hex],
    ids=["canonical", "upper case", "braced", "bare hex"],
)
async def test_subscribing_to_another_user_s_agent_is_an_error_however_the_id_is_spelt(
    sockets, alice, bob, spelling
):
    socket = await sockets.open_as(bob.user)
    answer = await ask(socket, "agent:subscribe", spelling(alice.agent.pk))
    assert answer == {"event": "error", "data": {"message": "Agent not found"}}
    unknown = await ask(socket, "agent:subscribe", spelling(uuid.uuid4()))
    assert unknown == answer
    own = await ask(socket, "agent:subscribe", str(bob.agent.pk))
    assert own == {"event": "subscribed", "data": {"room": f"agent:{bob.agent.pk}"}}


@websocket_db
async def test_unsubscribing_from_another_user_s_agent_tells_nothing_and_changes_nothing(
    sockets, alice, bob, emitted
):
    theirs = await sockets.open_as(alice.user)
    assert (await ask(theirs, "agent:subscribe", str(alice.agent.pk)))["event"] == "subscribed"
    socket = await sockets.open_as(bob.user)

    answer = await ask(socket, "agent:unsubscribe", str(alice.agent.pk))
    some_id = uuid.uuid4()
    unknown = await ask(socket, "agent:unsubscribe", str(some_id))
    # The same answer as for an id that does not exist: leaving needs no ownership check.
    assert answer == {"event": "unsubscribed", "data": {"room": f"agent:{alice.agent.pk}"}}
    assert unknown == {"event": "unsubscribed", "data": {"room": f"agent:{some_id}"}}

    # Alice still hears her agent, Bob does not.
    await emit_progress_of(alice, emitted)
    frame = await theirs.receive_json_from(timeout=3)
    assert frame["event"] == "agent:progress"
    assert frame["data"]["agentId"] == str(alice.agent.pk)
    assert await socket.receive_nothing(0.3)


@websocket_db
async def test_staff_may_subscribe_to_every_user_s_agent(sockets, alice, bob, staff):
    socket = await sockets.open_as(staff)
    for holdings in (alice, bob):
        answer = await ask(socket, "agent:subscribe", str(holdings.agent.pk))
        assert answer == {"event": "subscribed", "data": {"room": f"agent:{holdings.agent.pk}"}}


@pytest.fixture
def emitted(monkeypatch) -> list[tuple[list[str], dict[str, Any]]]:
    """What the emitter sends, caught so the test's own event loop delivers it
    (the publisher's loop thread would share the layer across loops)."""
    sent: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr(events, "send_now", lambda groups, frame: sent.append((groups, frame)))
    return sent


@database_sync_to_async
def _emit_progress(holdings) -> None:
    with transaction.atomic():
        events.emit_progress(holdings.queued, holdings.agent, 50, f"Half of {holdings.agent.name}")


async def emit_progress_of(holdings, emitted) -> None:
    """One progress event of the user's agent, to every group the real emitter picks."""
    await _emit_progress(holdings)
    for groups, frame in emitted:
        await send_to_groups(groups, frame)
    emitted.clear()


async def events_received(socket) -> list[dict[str, Any]]:
    frames = []
    while not await socket.receive_nothing(0.3):
        frames.append(await socket.receive_json_from(timeout=1))
    return frames


@websocket_db
async def test_monitoring_agents_delivers_each_user_only_their_own_agents_events(
    sockets, alice, bob, staff, emitted
):
    watchers = {}
    for name, user in (("alice", alice.user), ("bob", bob.user), ("staff", staff)):
        watchers[name] = await sockets.open_as(user)
        answer = await ask(watchers[name], "monitoring:subscribe", "agents")
        assert answer == {"event": "subscribed", "data": {"room": "monitoring:agents"}}

    await emit_progress_of(alice, emitted)
    await emit_progress_of(bob, emitted)

    seen = {name: await events_received(socket) for name, socket in watchers.items()}
    agents_seen = {name: [f["data"]["agentId"] for f in frames] for name, frames in seen.items()}
    assert agents_seen == {
        "alice": [str(alice.agent.pk)],
        "bob": [str(bob.agent.pk)],
        "staff": [str(alice.agent.pk), str(bob.agent.pk)],
    }
    assert_leaks_nothing(json.dumps(seen["bob"]), alice)
    assert_leaks_nothing(json.dumps(seen["alice"]), bob)


@websocket_db
async def test_agent_rooms_deliver_only_the_subscribed_agent_s_events(sockets, alice, bob, emitted):
    socket = await sockets.open_as(bob.user)
    await ask(socket, "agent:subscribe", str(bob.agent.pk))
    await ask(socket, "agent:subscribe", str(alice.agent.pk))  # refused
    await emit_progress_of(alice, emitted)
    await emit_progress_of(bob, emitted)
    frames = await events_received(socket)
    assert [frame["data"]["agentId"] for frame in frames] == [str(bob.agent.pk)]
    assert_leaks_nothing(json.dumps(frames), alice)


@websocket_db
@pytest.mark.parametrize(
    "token",
    [None, "not-a-token", "expired", "refresh"],
    ids=["no token", "a token that is not a JWT", "an expired token", "a refresh token"],
)
async def test_a_socket_without_a_valid_token_is_closed_with_4401(sockets, alice, token):
    if token == "expired":
        token = token_for(alice.user, lifetime=-timedelta(seconds=1))
    elif token == "refresh":
        token = str(RefreshToken.for_user(alice.user))
    socket, _, _ = await sockets.connect(token=token)
    assert await close_code(socket) == CLOSE_UNAUTHORIZED
