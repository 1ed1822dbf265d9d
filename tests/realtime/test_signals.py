"""A user who loses a right loses their open sockets (realtime.signals).

Through the real ASGI application and channels-redis layer; the same through
real daphne processes is in test_live_server.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import transaction

from realtime import consumers
from realtime.auth import Rights
from realtime.protocol import CLOSE_UNAUTHORIZED
from tests.factories import UserFactory
from tests.realtime.helpers import (
    HARMLESS_CHANGES,
    RIGHT_LOSSES,
    ask,
    close_code,
    deactivate,
    delete,
    signed_in,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(db) -> Any:
    """A user holding every right there is to lose."""
    return UserFactory(is_staff=True, is_superuser=True)


async def open_token_and_cookie_sockets(sockets, user: Any) -> list:
    _, cookie = await sync_to_async(signed_in)(user)
    opened = [await sockets.open_as(user), await sockets.open_as(None, headers=[cookie])]
    for communicator in opened:
        assert (await ask(communicator, "monitoring:subscribe", "agents"))["event"] == "subscribed"
    return opened


@pytest.mark.parametrize("lose", RIGHT_LOSSES)
async def test_losing_a_right_closes_every_socket_of_that_user_only(
    sockets, layer, operator, other_user, lose: Callable[[Any], None]
):
    token_socket, cookie_socket = await open_token_and_cookie_sockets(sockets, operator)
    bystander = await sockets.open_as(other_user)

    await sync_to_async(lose)(operator)

    assert await close_code(token_socket, timeout=3) == CLOSE_UNAUTHORIZED
    assert await close_code(cookie_socket, timeout=3) == CLOSE_UNAUTHORIZED
    assert (await ask(bystander, "monitoring:subscribe", "agents"))["event"] == "subscribed"


@pytest.mark.parametrize("change", HARMLESS_CHANGES)
async def test_a_change_that_takes_no_right_away_keeps_the_sockets(
    sockets, layer, user, change: Callable[[Any], None]
):
    opened = await open_token_and_cookie_sockets(sockets, user)

    await sync_to_async(change)(user)

    for communicator in opened:
        assert await communicator.receive_nothing(0.3)
        assert (await ask(communicator, "monitoring:subscribe", "scheduler"))["event"] == (
            "subscribed"
        )


async def test_a_rolled_back_deactivation_keeps_the_sockets(sockets, layer, user):
    opened = await open_token_and_cookie_sockets(sockets, user)

    def deactivate_then_fail() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            deactivate(user)
            raise RuntimeError("rolled back")

    await sync_to_async(deactivate_then_fail)()

    for communicator in opened:
        assert await communicator.receive_nothing(0.3)
        assert (await ask(communicator, "monitoring:subscribe", "agents"))["event"] == "subscribed"


async def test_a_right_lost_while_the_socket_opens_closes_it(sockets, layer, monkeypatch, operator):
    # The change lands after authentication read the user and before the
    # socket follows its user's group, so the word about it is never heard.
    claim = consumers.claim_connection
    demote = sync_to_async(
        lambda: get_user_model().objects.filter(pk=operator.pk).update(is_staff=False)
    )

    async def claim_after_the_change(user_id: object, channel_name: str) -> bool:
        await demote()
        return await claim(user_id, channel_name)

    monkeypatch.setattr(consumers, "claim_connection", claim_after_the_change)

    communicator, connected, _ = await sockets.connect(operator)

    assert connected
    assert await close_code(communicator, timeout=3) == CLOSE_UNAUTHORIZED


def test_deactivating_a_user_succeeds_when_redis_is_down(unreachable_channel_layer, operator):
    deactivate(operator)

    operator.refresh_from_db()
    assert not operator.is_active


def test_deleting_a_user_succeeds_when_redis_is_down(unreachable_channel_layer, operator):
    user_id = operator.pk

    delete(operator)

    assert not get_user_model().objects.filter(pk=user_id).exists()


@pytest.mark.parametrize(
    ("before", "now", "lost"),
    [
        (Rights(True, True, True), Rights(True, True, True), False),
        (Rights(True, False, False), Rights(True, True, True), False),
        (Rights(True, True, True), Rights(False, True, True), True),
        (Rights(True, True, False), Rights(True, False, False), True),
        (Rights(True, True, True), Rights(True, True, False), True),
        (Rights(True, False, False), None, True),
    ],
)
def test_rights_are_lost_when_any_flag_goes_from_set_to_unset(before, now, lost):
    assert before.lost_in(now) is lost
