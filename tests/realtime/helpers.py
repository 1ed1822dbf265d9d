"""Helpers for the WebSocket tests: open connections, send frames, read answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import update_last_login
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from realtime.publisher import event_message

# The test client's host (pytest-django adds it to ALLOWED_HOSTS), and the
# origin of a page it serves.
HOST = "testserver"
ORIGIN = f"http://{HOST}"
NO_DATA = object()


def token_for(user: Any, *, lifetime: timedelta | None = None) -> str:
    token = AccessToken.for_user(user)
    if lifetime is not None:
        token.set_exp(lifetime=lifetime)
    return str(token)


def signed_in(user: Any) -> tuple[Client, tuple[bytes, bytes]]:
    """A browser's Django session of ``user``: its client, and its cookie header."""
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return client, (b"cookie", f"{name}={client.cookies[name].value}".encode())


class Sockets:
    """Opens WebSocket connections to the real ASGI application and makes
    sure every one of them is disconnected at the end of the test."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.open: list[WebsocketCommunicator] = []

    async def connect(
        self,
        user: Any = None,
        *,
        token: str | None = None,
        path: str = "/ws/agents/",
        subprotocols: list[str] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        origin: str | None = ORIGIN,
        host: str = HOST,
    ) -> tuple[WebsocketCommunicator, bool, Any]:
        if user is not None:
            token = token_for(user)
        if token is not None and subprotocols is None:
            path = f"{path}?token={token}"
        communicator = WebsocketCommunicator(
            self.application,
            path,
            headers=[
                (b"host", host.encode()),
                *([(b"origin", origin.encode())] if origin else []),
                *(headers or []),
            ],
            subprotocols=subprotocols,
        )
        self.open.append(communicator)
        connected, subprotocol = await communicator.connect()
        return communicator, connected, subprotocol

    async def open_as(self, user: Any, **kwargs: Any) -> WebsocketCommunicator:
        """A connection that is accepted and stays open."""
        communicator, connected, _ = await self.connect(user, **kwargs)
        assert connected
        assert await communicator.receive_nothing(0.05)
        return communicator

    async def disconnect(self, communicator: WebsocketCommunicator) -> None:
        self.open.remove(communicator)
        await communicator.disconnect()

    async def disconnect_all(self) -> None:
        # Every one, even when one of them fails (its consumer crashed).
        failures = []
        while self.open:
            try:
                await self.disconnect(self.open[-1])
            except Exception as error:
                failures.append(error)
        if failures:
            raise failures[0]


async def ask(communicator: WebsocketCommunicator, event: str, data: Any = NO_DATA) -> dict:
    """Send one frame and return the answer."""
    frame: dict[str, Any] = {"event": event}
    if data is not NO_DATA:
        frame["data"] = data
    await communicator.send_json_to(frame)
    return await communicator.receive_json_from(timeout=2)


async def close_code(communicator: WebsocketCommunicator, timeout: float = 1) -> int | None:
    """The code of the close the server sends next (failing on any other output)."""
    message = await communicator.receive_output(timeout)
    assert message["type"] == "websocket.close", message
    return message.get("code")


async def emit(layer: Any, group: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
    """Send a frame to a group as the emitter (realtime.events) does."""
    frame = {"event": event, "data": data}
    await layer.group_send(group, event_message(frame))
    return frame


# --- changes to a user, for the tests of what they do to the user's sockets -------------


def deactivate(user: Any) -> None:
    user.is_active = False
    user.save()


def remove_staff(user: Any) -> None:
    user.is_staff = False
    user.save()


def remove_superuser(user: Any) -> None:
    user.is_superuser = False
    user.save(update_fields=["is_superuser"])


def delete(user: Any) -> None:
    user.delete()


RIGHT_LOSSES = [
    pytest.param(deactivate, id="deactivated"),
    pytest.param(remove_staff, id="staff-removed"),
    pytest.param(remove_superuser, id="superuser-removed"),
    pytest.param(delete, id="deleted"),
]


def rename(user: Any) -> None:
    user.first_name = "Renamed"
    user.save()


def sign_in(user: Any) -> None:
    # What a login does to the user row.
    update_last_login(None, user)


def save_unchanged(user: Any) -> None:
    user.save()


def make_superuser(user: Any) -> None:
    user.is_superuser = True
    user.save()


HARMLESS_CHANGES = [
    pytest.param(rename, id="renamed"),
    pytest.param(sign_in, id="signed-in"),
    pytest.param(save_unchanged, id="saved-unchanged"),
    pytest.param(make_superuser, id="superuser-granted"),
]
