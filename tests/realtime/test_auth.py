from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime.protocol import CLOSE_UNAUTHORIZED
from tests.factories import UserFactory
from tests.realtime.helpers import ask, close_code, signed_in, token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_accepts_a_token_in_the_query_string(sockets, user):
    communicator, connected, subprotocol = await sockets.connect(user)
    assert connected
    assert subprotocol is None
    answer = await ask(communicator, "monitoring:subscribe", "scheduler")
    assert answer == {"event": "subscribed", "data": {"room": "monitoring:scheduler"}}


@pytest.mark.parametrize("path", ["/ws/agents/", "/ws/agents"])
async def test_it_answers_with_and_without_the_trailing_slash(sockets, user, path):
    communicator = await sockets.open_as(user, path=path)
    assert (await ask(communicator, "monitoring:subscribe", "agents"))["event"] == "subscribed"


async def test_it_accepts_a_token_offered_as_a_subprotocol(sockets, user):
    token = token_for(user)
    communicator, connected, subprotocol = await sockets.connect(
        subprotocols=["neonhub.jwt", token]
    )
    assert connected
    # The server picks our marker, never the token itself.
    assert subprotocol == "neonhub.jwt"
    assert await communicator.receive_nothing(0.05)
    answer = await ask(communicator, "monitoring:subscribe", "scheduler")
    assert answer["event"] == "subscribed"


async def test_it_accepts_a_logged_in_session(sockets, session_cookie):
    communicator, connected, _ = await sockets.connect(headers=[session_cookie])
    assert connected
    assert await communicator.receive_nothing(0.05)
    answer = await ask(communicator, "monitoring:subscribe", "agents")
    assert answer == {"event": "subscribed", "data": {"room": "monitoring:agents"}}


async def test_it_refuses_a_missing_token(sockets):
    communicator, connected, _ = await sockets.connect()
    # Accepted first so the client can read the code (a refused handshake is a 1006).
    assert connected
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


async def test_it_refuses_an_empty_token(sockets):
    communicator, connected, _ = await sockets.connect(path="/ws/agents/?token=")
    assert connected
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


async def test_it_refuses_an_invalid_token(sockets):
    communicator, _, _ = await sockets.connect(token="not-a-jwt")
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


async def test_it_refuses_a_token_signed_with_another_key(sockets, user):
    header, payload, _ = token_for(user).split(".")
    communicator, _, _ = await sockets.connect(token=f"{header}.{payload}.c2lnbmF0dXJl")
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


async def test_it_refuses_an_expired_token(sockets, user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=-1))
    communicator, _, _ = await sockets.connect(token=str(token))
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


async def test_it_refuses_a_refresh_token(sockets, user):
    communicator, _, _ = await sockets.connect(token=str(RefreshToken.for_user(user)))
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


@pytest.fixture
def inactive_user(db):
    return UserFactory(is_active=False)


async def test_it_refuses_the_token_of_an_inactive_user(sockets, inactive_user):
    communicator, _, _ = await sockets.connect(inactive_user)
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


async def test_it_refuses_a_bad_subprotocol_token_with_the_subprotocol_picked(sockets):
    communicator, connected, subprotocol = await sockets.connect(
        subprotocols=["neonhub.jwt", "not-a-jwt"]
    )
    # Picking the offered subprotocol lets a browser complete the handshake and
    # read the 4401 instead of failing with 1006.
    assert connected
    assert subprotocol == "neonhub.jwt"
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


async def test_a_bad_token_is_refused_even_with_a_session(sockets, session_cookie):
    communicator, _, _ = await sockets.connect(token="not-a-jwt", headers=[session_cookie])
    assert await close_code(communicator) == CLOSE_UNAUTHORIZED


async def test_it_refuses_a_foreign_origin(sockets, user):
    # The origin check runs before the consumer: a plain refused handshake.
    _, connected, _ = await sockets.connect(user, origin="http://evil.example")
    assert not connected


async def test_a_token_client_that_sends_no_origin_is_let_in(sockets, user):
    # Scripts and API clients send no Origin; a browser never sends a token by itself.
    _, connected, _ = await sockets.connect(user, origin=None)
    assert connected


async def test_a_session_cookie_without_an_origin_is_refused(sockets, session_cookie):
    _, connected, _ = await sockets.connect(headers=[session_cookie], origin=None)
    assert not connected


@pytest.mark.parametrize("origin", ["http://testserver:9999", "https://testserver"])
async def test_a_session_cookie_from_another_origin_of_the_same_host_is_refused(
    sockets, session_cookie, origin
):
    _, connected, _ = await sockets.connect(headers=[session_cookie], origin=origin)
    assert not connected


async def test_it_closes_the_socket_when_the_token_expires(sockets, user):
    # exp is whole seconds: two seconds of lifetime leave at least one.
    token = token_for(user, lifetime=timedelta(seconds=2))
    communicator, connected, _ = await sockets.connect(token=token)
    assert connected
    answer = await ask(communicator, "monitoring:subscribe", "scheduler")
    assert answer["event"] == "subscribed"
    assert await close_code(communicator, timeout=4) == CLOSE_UNAUTHORIZED


async def test_signing_out_closes_the_sockets_of_that_session_only(sockets, layer, user):
    browser, cookie = await sync_to_async(signed_in)(user)
    _, other_cookie = await sync_to_async(signed_in)(user)
    signing_out, _, _ = await sockets.connect(headers=[cookie])
    staying, _, _ = await sockets.connect(headers=[other_cookie])
    for communicator in (signing_out, staying):
        assert (await ask(communicator, "monitoring:subscribe", "agents"))["event"] == "subscribed"

    response = await sync_to_async(browser.post)(reverse("dashboard:logout"))
    assert response.status_code == 302

    assert await close_code(signing_out) == CLOSE_UNAUTHORIZED
    assert (await ask(staying, "monitoring:subscribe", "scheduler"))["event"] == "subscribed"


async def test_a_token_socket_stays_open_when_a_session_of_its_user_signs_out(sockets, layer, user):
    browser, _ = await sync_to_async(signed_in)(user)
    communicator, connected, _ = await sockets.connect(user)
    assert connected

    await sync_to_async(browser.post)(reverse("dashboard:logout"))

    assert await communicator.receive_nothing(0.3)
    assert (await ask(communicator, "monitoring:subscribe", "agents"))["event"] == "subscribed"


def test_signing_out_succeeds_when_redis_is_down(user, unreachable_channel_layer):
    browser, _ = signed_in(user)

    response = browser.post(reverse("dashboard:logout"))

    assert response.status_code == 302
    assert browser.get(reverse("dashboard:index")).status_code == 302
