"""Random, malformed, oversize and flooding frames on /ws/agents/.

Every bad frame is answered with an ``error`` frame, the connection stays
open and still answers a valid request, and the server keeps accepting new
connections. Most tests talk to the real ASGI application (channels'
WebsocketCommunicator, real channels-redis layer); the last ones go through
a real daphne with a real WebSocket client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from core.redis import get_redis
from realtime.connections import connections_key
from realtime.groups import agent_group, owner_agents_group
from realtime.protocol import CLIENT_EVENTS, MONITORING_TOPICS
from tests.factories import AgentFactory, UserFactory
from tests.realtime.helpers import ask, emit, token_for

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = hypothesis_settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    # One connection serves every example: that it survives them all is the point.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Placeholders a generated frame may carry as data, replaced by real ids.
OWN, FOREIGN = "<own agent id>", "<foreign agent id>"

FLOOD = 2_000


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def agents(user, other_user) -> tuple[Any, Any]:
    return AgentFactory(owner=user), AgentFactory(owner=other_user)


@pytest.fixture
async def socket(sockets, user):
    """One open connection; afterwards the server still accepts a fresh one."""
    communicator = await sockets.open_as(user)
    yield communicator
    fresh = await sockets.open_as(user)
    answer = await ask(fresh, "monitoring:subscribe", "scheduler")
    assert answer == {"event": "subscribed", "data": {"room": "monitoring:scheduler"}}


# --- what the server must answer ------------------------------------------------------


def expected_answer(text: str, own_agent: Any) -> dict[str, Any] | None:
    """The answer the contract asks for; None where any error frame will do."""
    if len(text.encode("utf-8", "surrogatepass")) > settings.WS_MAX_FRAME_BYTES:
        return None
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(frame, dict):
        return None
    event, data = frame.get("event"), frame.get("data")
    if not isinstance(event, str) or event not in CLIENT_EVENTS or data is None:
        return None
    subscribing = event.endswith(":subscribe")
    answer = "subscribed" if subscribing else "unsubscribed"
    if event.startswith("monitoring:"):
        if data not in MONITORING_TOPICS:
            return None
        return {"event": answer, "data": {"room": f"monitoring:{data}"}}
    if not isinstance(data, str):
        return None
    try:
        agent_id = uuid.UUID(data)
    except ValueError:
        return {"event": "error", "data": {"message": "Agent not found"}}
    if subscribing and agent_id != own_agent.pk:
        return {"event": "error", "data": {"message": "Agent not found"}}
    return {"event": answer, "data": {"room": f"agent:{agent_id}"}}


async def send_text(communicator, text: str) -> None:
    # send_to() refuses an empty text; a real server can deliver one.
    await communicator.send_input({"type": "websocket.receive", "text": text})


async def assert_answered(communicator, text: str, own_agent: Any, timeout: float = 3) -> None:
    await send_text(communicator, text)
    answer = await communicator.receive_json_from(timeout=timeout)
    expected = expected_answer(text, own_agent)
    if expected is None:
        assert answer["event"] == "error", (text[:200], answer)
        assert set(answer) == {"event", "data"} and set(answer["data"]) == {"message"}
        assert isinstance(answer["data"]["message"], str) and answer["data"]["message"]
    else:
        assert answer == expected, text[:200]


async def assert_still_serving(communicator) -> None:
    answer = await ask(communicator, "monitoring:subscribe", "agents")
    assert answer == {"event": "subscribed", "data": {"room": "monitoring:agents"}}


# --- generated frames -----------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
events = st.sampled_from(CLIENT_EVENTS) | st.text(max_size=80) | json_values
payloads = (
    st.sampled_from([OWN, FOREIGN, "agents", "scheduler", "AGENTS", ""])
    | st.uuids().map(str)
    | json_values
)
frames = (
    st.fixed_dictionaries({}, optional={"event": events, "data": payloads, "extra": json_values})
    | json_values
)


# Text a hostile client puts anywhere in a frame: NUL bytes, escape sequences,
# format and control characters, non-characters, the last code point.
ODD_TEXT = [
    "\x00",
    "agents\x00",
    "\x00" * 64,
    "\u202eagents",  # a right-to-left override
    "\u200b",  # a zero-width space
    "\ufeffscheduler",  # a byte order mark
    "\uffff",
    "\U0010ffff",
    "\u2028",
    "e\u0301",
    "\x1b[31m",
    "\r\n",
    "%00",
    "\\u0000",
    "💥",
]


def with_nul_at(text: str, at: int) -> str:
    return text[:at] + "\x00" + text[at:]


odd_strings = (
    st.sampled_from(ODD_TEXT)
    | st.text(alphabet=st.sampled_from(["\x00", "\u202e", "\ufeff", "a", "€", "\U0010ffff"]))
    | st.builds(with_nul_at, st.text(max_size=20), st.integers(0, 20))
)
odd_frames = st.fixed_dictionaries(
    {
        "event": st.sampled_from(CLIENT_EVENTS) | odd_strings,
        "data": odd_strings
        | st.sampled_from([OWN, FOREIGN, *MONITORING_TOPICS])
        | st.builds(str.__add__, st.sampled_from([OWN, *MONITORING_TOPICS]), odd_strings),
    },
    optional={"extra": odd_strings},
)


def with_ids(value: Any, own: Any, foreign: Any) -> Any:
    return (
        {OWN: str(own.pk), FOREIGN: str(foreign.pk)}.get(value, value)
        if isinstance(value, str)
        else value
    )


@FUZZ
@given(text=st.text(max_size=300))
async def test_random_text_frames_are_answered_with_errors(socket, agents, text):
    await assert_answered(socket, text, agents[0])
    await assert_still_serving(socket)


@FUZZ
@given(frame=frames)
async def test_random_json_frames_get_the_contract_s_answer(socket, agents, frame):
    own, foreign = agents
    if isinstance(frame, dict) and "data" in frame:
        frame["data"] = with_ids(frame["data"], own, foreign)
    text = json.dumps(frame, allow_nan=True)  # NaN and Infinity as Python writes them
    await assert_answered(socket, text, own)
    await assert_still_serving(socket)


def with_ids_in(value: str, own: Any, foreign: Any) -> str:
    return value.replace(OWN, str(own.pk)).replace(FOREIGN, str(foreign.pk))


@hypothesis_settings(FUZZ, max_examples=60)
@given(frame=odd_frames, as_written=st.booleans())
async def test_frames_holding_nul_bytes_and_odd_text_get_the_contract_s_answer(
    socket, agents, frame, as_written
):
    own, foreign = agents
    frame = {key: with_ids_in(value, own, foreign) for key, value in frame.items()}
    # Escaped, or with every character as it is (JSON still escapes control characters).
    text = json.dumps(frame, ensure_ascii=not as_written)
    await assert_answered(socket, text, own)
    await assert_still_serving(socket)


@hypothesis_settings(FUZZ, max_examples=40)
@given(payload=st.binary(max_size=5_000))
async def test_binary_frames_are_answered_with_errors(socket, payload):
    await socket.send_to(bytes_data=payload or b"\x00")
    answer = await socket.receive_json_from(timeout=3)
    assert answer == {
        "event": "error",
        "data": {"message": "Binary frames are not supported: send JSON text frames."},
    }
    await assert_still_serving(socket)


# --- hand-picked frames ---------------------------------------------------------------

WRONG_DATA = {
    "no data": {},
    "null": {"data": None},
    "zero": {"data": 0},
    "a huge integer": {"data": 10**100},
    "a float": {"data": 1.5},
    "true": {"data": True},
    "an empty list": {"data": []},
    "a list holding a valid value": {"data": ["agents"]},
    "an object": {"data": {"id": "agents"}},
    "an empty string": {"data": ""},
    "a topic in capitals": {"data": "SCHEDULER"},
    "an id with a NUL": {"data": "\x00"},
}


# One connection takes every case of a table (each reported as a subtest): that it
# survives all of them in a row is part of the point.


async def test_every_event_with_data_of_the_wrong_type_is_an_error(socket, agents, subtests):
    for event in CLIENT_EVENTS:
        for name, data in WRONG_DATA.items():
            with subtests.test(f"{event} with {name}"):
                await assert_answered(socket, json.dumps({"event": event, **data}), agents[0])
                await assert_still_serving(socket)


def padded(frame: dict[str, Any], size: int) -> str:
    """The frame with a padding field that makes it exactly ``size`` bytes."""
    text = json.dumps({**frame, "pad": ""})
    return json.dumps({**frame, "pad": "x" * (size - len(text.encode()))})


SUBSCRIBE_AGENTS = json.dumps({"event": "monitoring:subscribe", "data": "agents"})

ODD_FRAMES = {
    "NaN as the event": '{"event": NaN, "data": Infinity}',
    "Infinity as an agent id": '{"event": "agent:subscribe", "data": -Infinity}',
    "a number too big for a float": '{"event": "agent:subscribe", "data": 1e999999}',
    "a number of 4000 digits": '{"event": "agent:subscribe", "data": 1' + "0" * 4000 + "}",
    "an escaped unpaired surrogate as the event": r'{"event": "\ud800", "data": "agents"}',
    "an escaped unpaired surrogate as the id": r'{"event": "agent:subscribe", "data": "\udc00"}',
    "an unpaired surrogate in a short frame": '{"event": "\ud800", "data": "agents"}',
    "a NUL byte": "\x00",
    "a raw NUL inside a string": '{"event": "monitoring:subscribe", "data": "agents\x00"}',
    "a raw NUL between tokens": '{"event": "monitoring:subscribe",\x00 "data": "agents"}',
    "a NUL after the frame": '{"event": "monitoring:subscribe", "data": "agents"}\x00',
    "an escaped NUL as the topic": '{"event": "monitoring:subscribe", "data": "\\u0000"}',
    "an escaped NUL after the topic": '{"event": "monitoring:subscribe", "data": "agents\\u0000"}',
    "a byte order mark before the frame": "\ufeff" + SUBSCRIBE_AGENTS,
    "a right-to-left override in the event": SUBSCRIBE_AGENTS.replace('"m', '"\u202em'),
    "an empty frame": "",
    "only whitespace": " \n\t ",
    "a bare null": "null",
    "a bare string": '"agent:subscribe"',
    "an array holding a valid frame": '[{"event": "monitoring:subscribe", "data": "agents"}]',
    "two frames in one": '{"event": "monitoring:subscribe", "data": "agents"}{"event": "x"}',
    "JSON nested 500 levels deep": "[" * 500 + "]" * 500,
    "an unknown event of 4000 characters": json.dumps({"event": "e" * 4000, "data": "agents"}),
    "a frame one byte over the limit": padded(
        {"event": "monitoring:subscribe", "data": "agents"}, 4097
    ),
    "a frame of multi-byte characters over the limit": json.dumps(
        {"event": "€" * 1400}, ensure_ascii=False
    ),
    "a frame of 100 KB": padded({"event": "monitoring:subscribe", "data": "agents"}, 100_000),
}


async def test_every_odd_frame_is_answered_with_an_error(socket, agents, subtests):
    for name, text in ODD_FRAMES.items():
        with subtests.test(name):
            await send_text(socket, text)
            answer = await socket.receive_json_from(timeout=3)
            assert answer["event"] == "error", answer
            expected = expected_answer(text, agents[0])
            if expected is not None:
                assert answer == expected
            await assert_still_serving(socket)


async def test_a_frame_of_exactly_the_size_limit_is_served(socket):
    text = padded({"event": "monitoring:subscribe", "data": "scheduler"}, 4096)
    await socket.send_to(text_data=text)
    answer = await socket.receive_json_from(timeout=3)
    assert answer == {"event": "subscribed", "data": {"room": "monitoring:scheduler"}}


@pytest.mark.parametrize("levels", [1_500, 2_000])
async def test_json_nested_deeper_than_the_parser_goes_is_an_error(socket, agents, levels):
    await assert_answered(socket, "[" * levels + "]" * levels, agents[0], timeout=1)
    await assert_still_serving(socket)


async def test_a_long_frame_holding_an_unpaired_surrogate_is_an_error(socket, agents):
    await assert_answered(socket, '{"event": "' + "\ud800" * 1100 + '"}', agents[0], timeout=1)
    await assert_still_serving(socket)


# --- floods ---------------------------------------------------------------------------


async def test_a_flood_of_subscribes_and_unsubscribes_is_answered_in_order(socket, layer, agents):
    own, foreign = agents
    rounds = [
        ({"event": "agent:subscribe", "data": str(own.pk)}, "subscribed"),
        ({"event": "agent:unsubscribe", "data": str(own.pk)}, "unsubscribed"),
        ({"event": "agent:subscribe", "data": str(foreign.pk)}, "error"),
        ({"event": "monitoring:subscribe", "data": "agents"}, "subscribed"),
    ]
    sent = [rounds[i % len(rounds)] for i in range(FLOOD)]
    # All of it at once, before reading a single answer.
    for frame, _ in sent:
        await socket.send_json_to(frame)
    for index, (_, expected) in enumerate(sent):
        answer = await socket.receive_json_from(timeout=10)
        assert answer["event"] == expected, (index, answer)

    # The last word on the agent was an unsubscribe; after one more subscribe its
    # events arrive, once each.
    assert (await ask(socket, "agent:subscribe", str(own.pk)))["event"] == "subscribed"
    data = {"agentId": str(own.pk), "timestamp": "2026-01-02T09:00:00Z", "progress": 50}
    frame = await emit(layer, agent_group(own.pk), "agent:progress", data)
    assert await socket.receive_json_from(timeout=3) == frame
    other = await emit(layer, owner_agents_group(own.owner_id), "agent:progress", data)
    assert await socket.receive_json_from(timeout=3) == other
    assert await socket.receive_nothing(0.3)


async def test_a_flood_of_bad_frames_leaves_the_connection_serving(socket, agents):
    bad = ["", "{", "[]", '{"event": 1}', '{"event": "agent:subscribe", "data": "nope"}']
    for index in range(FLOOD):
        await send_text(socket, bad[index % len(bad)])
    for _ in range(FLOOD):
        assert (await socket.receive_json_from(timeout=10))["event"] == "error"
    await assert_still_serving(socket)


# --- through a real daphne ------------------------------------------------------------


@pytest.fixture
def live_user() -> Iterator[Any]:
    """A user the daphne process can see, and the Redis keys its sockets leave, removed."""
    user = UserFactory()
    agent = AgentFactory(owner=user)
    yield user, agent
    keys = [connections_key(user.pk)]
    layer = get_channel_layer()
    # Only the core layer keeps groups in Redis; the pub/sub one keeps them
    # in the web process.
    if isinstance(layer, RedisChannelLayer):
        keys += [
            layer._group_key(agent_group(agent.pk)),
            layer._group_key(owner_agents_group(user.pk)),
        ]
    get_redis().delete(*keys)


def open_live(port: int, user: Any) -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{port}/ws/agents/?token={token_for(user)}",
        origin=f"http://127.0.0.1:{port}",
        open_timeout=10,
        close_timeout=2,
        max_size=2**20,
    )


def live_ask(client: ClientConnection, message: str | bytes) -> dict[str, Any]:
    client.send(message)
    return json.loads(client.recv(timeout=10))


LIVE_BAD = [
    "not json",
    "",
    "[]",
    "null",
    '{"event": NaN, "data": Infinity}',
    '{"event": "agent:subscribe", "data": 1e999999}',
    r'{"event": "\ud800", "data": "agents"}',
    "ünïcödé ✓ 💥",
    "\x00",
    '{"event": "monitoring:subscribe", "data": "agents\x00"}',
    '{"event": "agent:subscribe", "data": "\\u0000"}',
    '\ufeff{"event": "monitoring:subscribe", "data": "agents"}',
    '{"event": "\u202emonitoring:subscribe", "data": "agents"}',
    json.dumps({"event": "agent:subscribe", "data": str(uuid.uuid4())}),
    padded({"event": "monitoring:subscribe", "data": "agents"}, 4097),
    padded({"event": "monitoring:subscribe", "data": "agents"}, 200_000),
]


@pytest.mark.integration
def test_a_real_server_answers_bad_frames_and_floods_and_keeps_serving(daphne, live_user):
    user, agent = live_user
    with open_live(daphne, user) as client:
        for message in [*LIVE_BAD, b"\x00\xff binary", b""]:
            answer = live_ask(client, message)
            assert answer["event"] == "error", (message[:80], answer)

        # Mostly monitoring rooms; every tenth an agent room, which costs a database read.
        flood = [
            ("agent" if index % 10 < 2 else "monitoring", index % 2 == 0) for index in range(FLOOD)
        ]
        for kind, subscribing in flood:
            event = f"{kind}:{'subscribe' if subscribing else 'unsubscribe'}"
            data = str(agent.pk) if kind == "agent" else "agents"
            client.send(json.dumps({"event": event, "data": data}))
        for index, (_, subscribing) in enumerate(flood):
            answer = json.loads(client.recv(timeout=10))
            assert answer["event"] == ("subscribed" if subscribing else "unsubscribed"), index

        answer = live_ask(client, json.dumps({"event": "monitoring:subscribe", "data": "agents"}))
        assert answer == {"event": "subscribed", "data": {"room": "monitoring:agents"}}

    with open_live(daphne, user) as fresh:
        answer = live_ask(fresh, json.dumps({"event": "agent:subscribe", "data": str(agent.pk)}))
        assert answer == {"event": "subscribed", "data": {"room": f"agent:{agent.pk}"}}


@pytest.mark.integration
def test_a_real_server_keeps_the_connection_after_deeply_nested_json(daphne, live_user):
    user, _ = live_user
    with open_live(daphne, user) as client:
        answer = live_ask(client, "[" * 2_000 + "]" * 2_000)
        assert answer["event"] == "error"
        answer = live_ask(client, json.dumps({"event": "monitoring:subscribe", "data": "agents"}))
        assert answer["event"] == "subscribed"
