"""A WebSocket open while Redis restarts: both channel layers, real processes."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.factories import AgentFactory
from tests.stack import Api, ask, connect_websocket, stack  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def completed_event_arrives(api: Api, socket, agent) -> bool:
    """Run the agent once; whether its agent:completed reaches the socket.

    Events are best effort: one sent before the socket's subscription is back
    is lost, so the caller asks again."""
    if api.post(f"/api/agents/{agent.pk}/run").status_code != 202:
        return False
    deadline = time.monotonic() + 10
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = json.loads(socket.recv(timeout=left))
        except TimeoutError:
            return False
        if frame["event"] == "agent:completed" and frame["data"]["agentId"] == str(agent.pk):
            return True
    return False


def restart_redis(s) -> None:
    s.stop_redis()
    time.sleep(3)
    s.start_redis()


def events_arrive_again(api: Api, socket, agent) -> None:
    deadline = time.monotonic() + 60
    while not completed_event_arrives(api, socket, agent):
        assert time.monotonic() < deadline, "no event reached the socket after the restart"


def test_with_the_pubsub_layer_a_socket_stays_open_and_gets_events_again(stack):  # noqa: F811
    # A short lease: the consumer renews it, and re-joins its groups, every second.
    s = stack(CHANNEL_LAYER_BACKEND="pubsub", WS_CONNECTION_LEASE_SECONDS="3")
    s.worker()
    web = s.web()
    agent = AgentFactory(configuration={"steps": 0})
    api = Api(web, agent.owner)

    with connect_websocket(web, api.token) as socket:
        assert ask(socket, "agent:subscribe", str(agent.pk))["event"] == "subscribed"
        assert completed_event_arrives(api, socket, agent)
        restart_redis(s)
        try:
            events_arrive_again(api, socket, agent)
        except ConnectionClosed as closed:
            pytest.fail(f"the server closed the socket during the restart: {closed.rcvd}")


def test_with_the_core_layer_sockets_are_closed_and_a_new_one_gets_events(stack):  # noqa: F811
    # The core layer's blocking pop fails with the connection, and with it the
    # consumer: daphne closes the socket with 1011 and the client reconnects.
    s = stack(CHANNEL_LAYER_BACKEND="core", WS_CONNECTION_LEASE_SECONDS="3")
    s.worker()
    web = s.web()
    agent = AgentFactory(configuration={"steps": 0})
    api = Api(web, agent.owner)

    with connect_websocket(web, api.token) as socket:
        assert ask(socket, "agent:subscribe", str(agent.pk))["event"] == "subscribed"
        assert completed_event_arrives(api, socket, agent)
        restart_redis(s)
        with pytest.raises(ConnectionClosed) as closed:
            events_arrive_again(api, socket, agent)
        assert closed.value.rcvd.code == 1011

    # Until its pooled connections are replaced, the layer fails new sockets
    # the same way: the client keeps reconnecting, as the web UI does.
    deadline = time.monotonic() + 60
    for attempt in itertools.count(1):
        try:
            with connect_websocket(web, api.token) as socket:
                assert ask(socket, "agent:subscribe", str(agent.pk))["event"] == "subscribed"
                events_arrive_again(api, socket, agent)
        except (ConnectionClosed, ConnectionError):
            assert time.monotonic() < deadline, "no new socket got events after the restart"
            time.sleep(0.5)
        else:
            print(f"socket {attempt} after the restart got events")
            return
