"""End to end: real daphne, real Redis, the test database, a real WebSocket client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.urls import reverse
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from core.redis import get_redis
from realtime.connections import connections_key
from realtime.groups import STAFF_AGENTS_GROUP, agent_group, owner_agents_group, user_group
from realtime.protocol import CLOSE_TOO_MANY_CONNECTIONS, CLOSE_UNAUTHORIZED
from realtime.publisher import event_message
from tests.factories import AgentFactory, UserFactory
from tests.processes import child_env, free_port
from tests.realtime.helpers import HARMLESS_CHANGES, RIGHT_LOSSES, signed_in, token_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

START_TIMEOUT = 30.0

# Listed in the servers' CSRF_TRUSTED_ORIGINS; only ever sent as a header.
TRUSTED_ORIGIN = "https://dashboard.neonhub.example"

SAME_ORIGIN = object()


@dataclass
class Server:
    port: int
    access_log: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(
        self, path: str = "/ws/agents/", *, origin: object = SAME_ORIGIN, **kwargs
    ) -> ClientConnection:
        return connect(
            f"ws://127.0.0.1:{self.port}{path}",
            origin=self.origin if origin is SAME_ORIGIN else origin,
            open_timeout=5,
            close_timeout=2,
            **kwargs,
        )


def wait_until_listening(process: subprocess.Popen, port: int, output: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"daphne exited with {process.returncode}:\n{output.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"daphne did not answer within {START_TIMEOUT}s:\n{output.read_text()}")


@contextmanager
def running_server(logs: Path) -> Iterator[Server]:
    access_log, output = logs / "access.log", logs / "output.log"
    port = free_port()
    env = child_env(DEBUG="0", CSRF_TRUSTED_ORIGINS=TRUSTED_ORIGIN)
    daphne = Path(sys.executable).with_name("daphne")
    command = [str(daphne), "-b", "127.0.0.1", "-p", str(port), "--access-log", str(access_log)]
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "neonhub.asgi:application"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, output)
        yield Server(port=port, access_log=access_log)
        print(output.read_text())  # shown by pytest only when something failed
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("daphne")) as running:
        yield running


@pytest.fixture(scope="module")
def other_server(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    """A second web process on the same Redis and database."""
    with running_server(tmp_path_factory.mktemp("daphne")) as running:
        yield running


@pytest.fixture
def forget_redis_keys():
    """Keys the server made for this test, deleted afterwards (the server uses
    the configured prefixes, so the test cannot give it its own)."""
    keys: list[str | bytes] = []
    yield keys
    if keys:
        get_redis().delete(*keys)


def forget_sockets_of(keys: list[str | bytes], *users) -> None:
    """The keys the sockets of these users leave in Redis, for forget_redis_keys."""
    layer = get_channel_layer()
    for user in users:
        keys.append(connections_key(user.pk))
        if isinstance(layer, RedisChannelLayer):
            # The pub/sub layer keeps its groups in each process, not in Redis;
            # a session's group is left to channels-redis' group expiry.
            groups = [user_group(user.pk), owner_agents_group(user.pk), STAFF_AGENTS_GROUP]
            keys.extend(layer._group_key(group) for group in groups)


def cookie_of(user) -> dict[str, str]:
    """The Cookie header of a browser signed in as ``user``."""
    _, (_, cookie) = signed_in(user)
    return {"Cookie": cookie.decode()}


def ask(client: ClientConnection, event: str, data: object) -> dict:
    client.send(json.dumps({"event": event, "data": data}))
    return json.loads(client.recv(timeout=5))


def close_code(client: ClientConnection) -> int | None:
    """The code of the close the server sends next."""
    with pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=5)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def test_a_real_client_gets_the_events_of_its_agent(server, forget_redis_keys, user):
    agent = AgentFactory(owner=user)
    layer = get_channel_layer()
    forget_redis_keys.append(connections_key(user.pk))
    if isinstance(layer, RedisChannelLayer):
        # The pub/sub layer keeps its groups in each process, not in Redis.
        forget_redis_keys.append(layer._group_key(agent_group(agent.pk)))

    with server.connect(subprotocols=["neonhub.jwt", token_for(user)]) as client:
        assert client.subprotocol == "neonhub.jwt"
        answer = ask(client, "agent:subscribe", str(agent.pk))
        assert answer == {"event": "subscribed", "data": {"room": f"agent:{agent.pk}"}}

        frame = {
            "event": "agent:progress",
            "data": {"agentId": str(agent.pk), "timestamp": "2026-01-02T09:00:00Z", "progress": 50},
        }
        message = event_message(frame)
        async_to_sync(layer.group_send)(agent_group(agent.pk), message)
        # The text the emitter encoded, byte for byte.
        text = client.recv(timeout=5)
        assert text == message["text"]
        assert json.loads(text) == frame


def test_a_real_client_is_refused_the_sixth_connection_with_4429(server, forget_redis_keys, user):
    forget_redis_keys.append(connections_key(user.pk))
    token = token_for(user)
    with ExitStack() as open_clients:
        for _ in range(5):
            client = open_clients.enter_context(server.connect(f"/ws/agents/?token={token}"))
            assert ask(client, "monitoring:subscribe", "scheduler")["event"] == "subscribed"

        with (
            server.connect(f"/ws/agents/?token={token}") as sixth,
            pytest.raises(ConnectionClosed) as closed,
        ):
            sixth.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CLOSE_TOO_MANY_CONNECTIONS

    # daphne's access log shows WebSocket paths without their query string.
    log = server.access_log.read_text()
    assert "WSCONNECT /ws/agents/" in log
    assert token not in log


# --- who may open a socket, by Origin --------------------------------------------------


def foreign_port(server: Server) -> str:
    return f"http://127.0.0.1:{9999 if server.port != 9999 else 9998}"


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(foreign_port, id="another-port"),
        pytest.param(lambda server: "http://localhost:3000", id="another-site"),
        pytest.param(lambda server: f"http://localhost:{server.port}", id="another-name"),
        pytest.param(lambda server: None, id="no-origin"),
    ],
)
def test_a_real_server_refuses_a_cookie_socket_not_from_its_own_origin(
    server, user, origin: Callable[[Server], str | None]
):
    with pytest.raises(InvalidStatus) as refused:
        server.connect(origin=origin(server), additional_headers=cookie_of(user))
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(lambda server: server.origin, id="same-origin"),
        pytest.param(lambda server: TRUSTED_ORIGIN, id="trusted-origin"),
    ],
)
def test_a_real_server_accepts_a_cookie_socket_from_its_own_or_a_trusted_origin(
    server, forget_redis_keys, user, origin: Callable[[Server], str]
):
    forget_sockets_of(forget_redis_keys, user)
    with server.connect(origin=origin(server), additional_headers=cookie_of(user)) as client:
        assert ask(client, "monitoring:subscribe", "agents")["event"] == "subscribed"


def test_a_real_server_accepts_a_token_socket_without_an_origin(server, forget_redis_keys, user):
    forget_sockets_of(forget_redis_keys, user)
    with server.connect(origin=None, subprotocols=["neonhub.jwt", token_for(user)]) as client:
        assert ask(client, "monitoring:subscribe", "agents")["event"] == "subscribed"


def test_a_real_server_refuses_a_token_socket_from_another_origin(server, user):
    with pytest.raises(InvalidStatus) as refused:
        server.connect(origin=foreign_port(server), subprotocols=["neonhub.jwt", token_for(user)])
    assert refused.value.response.status_code == 403


# --- sockets outliving their user's rights ----------------------------------------------


@contextmanager
def sockets_of(user, bystander, server: Server, other_server: Server) -> Iterator[tuple]:
    """The user's token socket on one server and cookie socket on the other, and
    a token socket of another user; each in the monitoring room."""
    with (
        server.connect(subprotocols=["neonhub.jwt", token_for(user)]) as token_socket,
        other_server.connect(additional_headers=cookie_of(user)) as cookie_socket,
        server.connect(subprotocols=["neonhub.jwt", token_for(bystander)]) as bystanding,
    ):
        for client in (token_socket, cookie_socket, bystanding):
            assert ask(client, "monitoring:subscribe", "agents")["event"] == "subscribed"
        yield token_socket, cookie_socket, bystanding


@pytest.mark.parametrize("lose", RIGHT_LOSSES)
def test_a_user_losing_a_right_loses_their_sockets_on_every_server(
    server, other_server, forget_redis_keys, other_user, lose: Callable[[object], None]
):
    user = UserFactory(is_staff=True, is_superuser=True)
    forget_sockets_of(forget_redis_keys, user, other_user)
    with sockets_of(user, other_user, server, other_server) as (token, cookie, bystanding):
        lose(user)  # in this process, as a shell or a script would

        assert close_code(token) == CLOSE_UNAUTHORIZED
        assert close_code(cookie) == CLOSE_UNAUTHORIZED
        assert ask(bystanding, "monitoring:subscribe", "scheduler")["event"] == "subscribed"


def test_a_user_deactivated_in_the_admin_loses_their_sockets(
    server, other_server, forget_redis_keys, other_user
):
    user = UserFactory()
    forget_sockets_of(forget_redis_keys, user, other_user)
    admin, _ = signed_in(UserFactory(is_staff=True, is_superuser=True))
    with sockets_of(user, other_user, server, other_server) as (token, cookie, bystanding):
        # The admin's change form, with "Active" unticked.
        response = admin.post(
            reverse("admin:auth_user_change", args=[user.pk]),
            {
                "username": user.username,
                "email": user.email,
                "date_joined_0": "2026-01-02",
                "date_joined_1": "09:00:00",
            },
        )
        assert response.status_code == 302, response.content[:2000]

        assert close_code(token) == CLOSE_UNAUTHORIZED
        assert close_code(cookie) == CLOSE_UNAUTHORIZED
        assert ask(bystanding, "monitoring:subscribe", "scheduler")["event"] == "subscribed"


@pytest.mark.parametrize("change", HARMLESS_CHANGES)
def test_a_change_that_takes_no_right_away_keeps_the_sockets_on_a_real_server(
    server, other_server, forget_redis_keys, user, other_user, change: Callable[[object], None]
):
    forget_sockets_of(forget_redis_keys, user, other_user)
    with sockets_of(user, other_user, server, other_server) as opened:
        change(user)

        for client in opened:
            assert ask(client, "monitoring:subscribe", "scheduler")["event"] == "subscribed"
