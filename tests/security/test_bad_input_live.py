"""Bad input sent to a real daphne, as a client sends it: each was a wrong answer once.

A charset that is no text encoding (a 500), a form PATCH of the priority that
paused the schedule, a refresh token of a deleted user (a 500), a number as a
name (stored as "5"), an expired token answered like a forged one, and
not-found texts with a full stop the contract does not have.
"""

from __future__ import annotations

import http.client
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from agents.models import AIAgent
from scheduling.services import set_schedule
from tests.factories import AgentFactory, SessionFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def send(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    content_type: str = "application/json",
    token: Any = None,
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": "127.0.0.1", "Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture
def user():
    return UserFactory()


@pytest.fixture
def token(user) -> AccessToken:
    return AccessToken.for_user(user)


@pytest.mark.parametrize("charset", ["zlib_codec", "rot13", "undefined", "utf-7", "nope"])
def test_a_charset_that_is_no_text_encoding_is_a_400(daphne, token, charset):
    status, answer = send(
        daphne,
        "POST",
        "/api/agents",
        body=b'{"name": "x", "agentType": "demo"}',
        content_type=f"application/json; charset={charset}",
        token=token,
    )
    assert status == 400
    assert answer["success"] is False and "charset" in answer["error"]
    status, _ = send(
        daphne, "GET", "/api/agents?limit=%35", content_type=f"text/plain; charset={charset}"
    )
    assert status == 400
    assert not AIAgent.objects.exists()


def test_a_form_patch_of_the_priority_changes_only_the_priority(daphne, user, token):
    agent = AgentFactory(owner=user)
    set_schedule(agent, expression="0 9 * * 1-5", timezone_name="Europe/Berlin")
    before = AIAgent.objects.filter(pk=agent.pk).values().get()

    status, answer = send(
        daphne,
        "PATCH",
        f"/api/agents/{agent.pk}/schedule",
        body=urlencode({"priority": "HIGH"}).encode(),
        content_type="application/x-www-form-urlencoded",
        token=token,
    )

    assert status == 200, answer
    assert answer["data"]["scheduleEnabled"] is True
    after = AIAgent.objects.filter(pk=agent.pk).values().get()
    assert after["priority"] == 3
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"priority", "updated_at"}


@pytest.mark.parametrize("state", ["deleted", "deactivated"])
def test_a_refresh_token_of_a_user_who_is_gone_is_a_401(daphne, state):
    gone = UserFactory()
    refresh = RefreshToken.for_user(gone)
    if state == "deleted":
        gone.delete()
    else:
        gone.is_active = False
        gone.save()
    status, answer = send(
        daphne,
        "POST",
        "/api/auth/token/refresh",
        body=json.dumps({"refresh": str(refresh)}).encode(),
    )
    assert status == 401
    assert answer == {"success": False, "error": "No active account found for the given token."}


def test_a_number_is_no_name(daphne, user, token):
    status, answer = send(
        daphne, "POST", "/api/agents", body=b'{"name": 5, "agentType": "demo"}', token=token
    )
    assert status == 400
    assert answer["details"] == {"name": ["Must be a string, not a number."]}
    assert not AIAgent.objects.exists()


def test_an_expired_token_is_said_to_have_expired(daphne, user):
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    status, answer = send(daphne, "GET", "/api/agents", token=expired)
    assert status == 401
    assert answer["error"].startswith("The access token has expired")


def test_unknown_and_foreign_ids_answer_the_contract_s_exact_text(daphne, token):
    foreign = SessionFactory(agent=AgentFactory(owner=UserFactory()))
    for agent_id in (foreign.agent_id, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "a.b"):
        for path in (f"/api/agents/{agent_id}", f"/api/agents/{agent_id}/schedule/status"):
            assert send(daphne, "GET", path, token=token) == (
                404,
                {"success": False, "error": "Agent not found"},
            )
    status, answer = send(daphne, "POST", f"/api/sessions/{foreign.pk}/cancel", token=token)
    assert (status, answer) == (404, {"success": False, "error": "Session not found"})
