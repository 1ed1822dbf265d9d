"""End to end: real daphne, real Redis, the test database, a real WebSocket client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from neonhub.redis import get_redis
from realtime.connections import connections_key
from realtime.groups import agent_group
from realtime.protocol import CLOSE_TOO_MANY_CONNECTIONS
from realtime.publisher import event_message
from tests.factories import AgentFactory
from tests.processes import child_env, free_port
from tests.realtime.helpers import token_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

START_TIMEOUT = 30.0


@dataclass
class Server:
    port: int
    access_log: Path

    def connect(self, path: str = "/ws/agents/", **kwargs) -> ClientConnection:
        return connect(
            f"ws://127.0.0.1:{self.port}{path}",
            origin=f"http://127.0.0.1:{self.port}",
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


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    logs = tmp_path_factory.mktemp("daphne")
    access_log, output = logs / "access.log", logs / "output.log"
    port = free_port()
    env = child_env(DEBUG="0")
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


@pytest.fixture
def forget_redis_keys():
    """Keys the server made for this test, deleted afterwards (the server uses
    the configured prefixes, so the test cannot give it its own)."""
    keys: list[str | bytes] = []
    yield keys
    if keys:
        get_redis().delete(*keys)


def ask(client: ClientConnection, event: str, data: object) -> dict:
    client.send(json.dumps({"event": event, "data": data}))
    return json.loads(client.recv(timeout=5))


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
