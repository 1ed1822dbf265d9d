"""Generated requests against every operation the API describes at /api/schema/.

schemathesis reads the schema the running application serves and sends each
operation generated requests, valid and invalid, through the WSGI
application in this process: with a real access token, with the ids of an
agent and sessions the user owns (so the code behind the ownership check
runs), with another user's ids, and with whatever ids it generates. Every
answer must be no 5xx, documented for that operation, valid against the
documented schema (strictly: no undocumented fields), and in the envelope.

Besides what the schema describes, the generator is handed what probes of
the running service found: webhook URLs whose parsers disagree about the host
(a backslash, userinfo), NUL bytes in every text field, and odd charsets in
Content-Type. Every operation that takes an id must meet objects that exist
(Alice's) among its generated requests, and a stateful run follows the
schema's links from the agents and runs it creates to the operations that
take their ids.

Runs asked for are recorded as QUEUED and never reach a broker (see
``no_broker`` in conftest.py), so no worker is needed and no webhook is ever
called; no address off this machine is even resolved (``offline``).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import uuid
from collections import defaultdict
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.test import Client, override_settings
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from agents.models import AIAgent, ExecutionSession
from neonhub.wsgi import application
from tests.test_openapi import Checker

# The hosts schemathesis' WSGI client sends as Host.
WSGI_HOSTS = ["localhost", "testserver"]

NOT_FOUND = ("Agent not found", "Session not found", "Alert channel not found")

# Which ids generated requests carry in their paths.
OWN, FOREIGN, GENERATED = "own", "foreign", "generated"

# Derandomized: the same requests on every run, about a minute for all operations.
EXAMPLES_PER_OPERATION = 25

CRON_EXPRESSIONS = ["*/5 * * * *", "0 9 * * 1-5", "@daily", "30 2 * * SUN", "0 0 29 2 *"]
TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham"]

# Webhook URLs on which the guard's parser and the HTTP client's disagree about
# the host (a backslash, userinfo, a control character): refused when the
# agent is saved, whichever host each parser sees.
DISAGREEING_URLS = [
    "http://127.0.0.1:1\\@1.1.1.1/",
    "http://127.0.0.1:18902\\@1.1.1.1/../../internal/secret",
    "http://1.1.1.1\\@127.0.0.1/",
    "http://a@127.0.0.1/",
    "http://a@1.1.1.1/",
    "http://user:secret@[::1]:8000/",
    "http://1.1.1.1\t@127.0.0.1/",
]
READABLE_CHARSETS = ["utf-8", "UTF8", "latin-1", "utf-16"]
UNREADABLE_CHARSETS = ["zlib_codec", "rot13", "base64", "hex", "utf-7", "idna", "undefined", "nope"]
AGENT_WRITES = {"POST /api/agents", "PATCH /api/agents/{id}", "PUT /api/agents/{id}"}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    # Sends the request again without the token and with a bad one: 401 both times.
    ignored_auth,
    # Methods an operation does not have (the coverage phase sends them): 405.
    unsupported_method,
]
# Not run: positive_data_acceptance and negative_data_rejection. The schema
# cannot say what a cron expression, a timezone or a runner's configuration
# must look like, so schema-valid requests are rightly refused with a 400
# ("0 0 30 2 *" never fires), and PUT without a body is accepted by design
# (it is PATCH). Both would report the API doing what the contract says.


def served_schema() -> dict[str, Any]:
    """The document /api/schema/ serves, read once when the tests are collected."""
    with override_settings(ALLOWED_HOSTS=WSGI_HOSTS, API_RATE_LIMIT="100000/m"):
        response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


schema = schemathesis.openapi.from_dict(served_schema())
schema.app = application
# Stateful runs follow the schema's own links only: links schemathesis infers
# also pick up ids from whatever earlier scenarios left in the database, which
# makes a run impossible to replay. They send valid requests, to get far along
# the links; the per-operation test sends the invalid ones.
schema.config.phases.stateful.inference.algorithms = []
schema.config.phases.stateful.generation.modes = [GenerationMode.POSITIVE]


@pytest.fixture(autouse=True)
def wsgi_hosts(settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, *WSGI_HOSTS]
    # No webhook host is trusted: the guard decides about every URL sent.
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = []


def _address(host: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return None


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing here reaches off this machine: only addresses and localhost
    resolve (the webhook guard refuses a name that does not), and connecting to
    anything but a loopback address fails the test."""
    resolve, connect = socket.getaddrinfo, socket.socket.connect
    refused: list[Any] = []

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and host != "localhost" and _address(host) is None:
            raise socket.gaierror(socket.EAI_NONAME, "Names do not resolve in these tests.")
        return resolve(host, *args, **kwargs)

    def local_connect(sock, address):
        if isinstance(address, tuple) and not (
            address[0] == "localhost" or getattr(_address(address[0]), "is_loopback", False)
        ):
            refused.append(address)
            raise ConnectionRefusedError(f"No connections off this machine: {address!r}.")
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", local_connect)
    yield
    assert not refused, refused


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def aim(case: schemathesis.Case, target: str, alice, bob) -> dict[str, str]:
    """Point the case's ids at Alice's or Bob's objects; returns what was aimed at."""
    aimed: dict[str, str] = {}
    if target == GENERATED or not case.path_parameters:
        return aimed
    owner = alice if target == OWN else bob
    for name, value in list(case.path_parameters.items()):
        # An invalid id (negative generation) is left as generated: it tests the path.
        if not is_uuid(value):
            continue
        if name in ("id", "agent_id"):
            case.path_parameters[name] = aimed[name] = str(owner.agent.pk)
        elif name == "session_id":
            session = owner.queued if case.method.upper() == "POST" else owner.finished
            case.path_parameters[name] = aimed[name] = str(session.pk)
        elif name == "channel_id":
            case.path_parameters[name] = aimed[name] = str(owner.channel.pk)
    return aimed


def make_plausible(case: schemathesis.Case, values: dict[str, str] | None) -> None:
    """Give the free-text fields the schema cannot constrain a valid value, so that
    creates and schedules succeed and the code after validation runs too."""
    if values is None or not isinstance(case.body, dict):
        return
    for key, value in values.items():
        if isinstance(case.body.get(key), str):
            case.body[key] = value
    if case.body.get("enabled") is True:
        # A snooze pauses: resuming in the same change is refused, which
        # would leave later steps without a schedule to work on.
        case.body.pop("pausedUntil", None)
        case.body.pop("pauseNote", None)


def envelope(ctx, response, case) -> None:
    """Every answer in the contract's envelope; errors carry one sentence."""
    body = response.json()
    assert isinstance(body, dict), body
    if response.status_code >= 400:
        assert body["success"] is False, body
        assert set(body) <= {"success", "error", "details"}, body
        error = body["error"]
        assert isinstance(error, str) and error.strip(), body
        # One sentence, or the contract's exact not-found text.
        assert error.rstrip().endswith((".", "!", "?")) or error in NOT_FOUND, body
    else:
        assert body["success"] is True, body
        assert ("data" in body) != ("message" in body), body


@pytest.fixture
def strict_schema():
    checker = Checker(schema.raw_schema)

    def strictly_documented(ctx, response, case) -> None:
        """Valid against the documented schema with undocumented fields forbidden."""
        checker(response, case.operation.path, case.method.lower())

    return strictly_documented


class MetExistingObjects:
    """Whether an operation that takes ids was fuzzed with objects that exist: at
    least one request aimed at Alice's own answered from behind the ownership
    check (anything but 404)."""

    def __init__(self) -> None:
        self.operation: str | None = None
        self.met = False

    def record(self, case: schemathesis.Case, response, *, aimed_at_own: bool) -> None:
        self.operation = case.operation.label
        self.met = self.met or (aimed_at_own and response.status_code != 404)


@pytest.fixture
def met_existing_objects():
    # One per operation: hypothesis runs all of an operation's examples in one test.
    met = MetExistingObjects()
    yield met
    if met.operation is not None and "{" in met.operation:
        assert met.met, f"{met.operation} never met an object that exists"


def state_of(holdings) -> dict[str, Any]:
    agent = AIAgent.objects.filter(pk=holdings.agent.pk).values().first()
    sessions = list(
        ExecutionSession.objects.filter(agent_id=holdings.agent.pk).order_by("pk").values()
    )
    return {"agent": agent, "sessions": sessions}


# What a generated request is given besides its generated values.
WEBHOOK, NUL, CHARSET = "a disagreeing webhook URL", "NUL bytes", "an odd charset"
# An answer the request must get (besides no 5xx, documented, in the envelope).
REFUSED, UNREADABLE = "refused", "unreadable"
PAGE_PARAMETERS = {"limit", "offset", "cursor"}


def request_fields(case: schemathesis.Case) -> set[str]:
    """The documented fields of the operation's JSON body."""
    operation = schema.raw_schema["paths"][case.operation.path][case.method.lower()]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is None:
        return set()
    name = body["schema"]["$ref"].rsplit("/", 1)[-1]
    return set(schema.raw_schema["components"]["schemas"][name]["properties"])


def with_nul(value: Any) -> tuple[Any, bool]:
    """The value with a NUL in every string in it, and whether there was one."""
    if isinstance(value, str):
        return value[:1] + "\x00" + value[1:], True
    if isinstance(value, dict):
        pairs = {key: with_nul(item) for key, item in value.items()}
        return {key: item for key, (item, _) in pairs.items()}, any(
            found for _, found in pairs.values()
        )
    if isinstance(value, list):
        items = [with_nul(item) for item in value]
        return [item for item, _ in items], any(found for _, found in items)
    return value, False


def twist(case: schemathesis.Case, kind: str | None, url: str, charset: str) -> str | None:
    """Give the case a hostile value; returns what the answer must then be."""
    if kind == WEBHOOK and case.operation.label in AGENT_WRITES and isinstance(case.body, dict):
        case.body["agentType"] = "webhook"
        case.body["configuration"] = {"url": url}
        return REFUSED
    if kind == NUL:
        spoilt = False
        for container, names in ((case.body, request_fields(case)), (case.query, PAGE_PARAMETERS)):
            if not isinstance(container, dict):
                continue
            for name in names & set(container):
                container[name], found = with_nul(container[name])
                spoilt = spoilt or found
        return REFUSED if spoilt else None
    if kind == CHARSET:
        case.headers = {
            **(case.headers or {}),
            "Content-Type": f"application/json; charset={charset}",
        }
        return UNREADABLE if charset in UNREADABLE_CHARSETS else None
    return None


@schema.parametrize()
@schema.given(
    target=st.sampled_from([OWN, FOREIGN, GENERATED]),
    plausible=st.none()
    | st.fixed_dictionaries(
        {
            "agentType": st.just("demo"),
            "cronExpression": st.sampled_from(CRON_EXPRESSIONS),
            "timezone": st.sampled_from(TIMEZONES),
        }
    ),
    kind=st.sampled_from([None, None, WEBHOOK, NUL, CHARSET]),
    url=st.sampled_from(DISAGREEING_URLS),
    charset=st.sampled_from(READABLE_CHARSETS + UNREADABLE_CHARSETS),
)
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db(transaction=True)
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    case, target, plausible, kind, url, charset, alice, bob, strict_schema, met_existing_objects
):
    alice.restore()
    aimed = aim(case, target, alice, bob)
    make_plausible(case, plausible)
    must_be = twist(case, kind, url, charset)
    bob_before = state_of(bob) if target == FOREIGN else None

    response = case.call_and_validate(
        headers=alice.auth, checks=CHECKS, additional_checks=[envelope, strict_schema]
    )

    met_existing_objects.record(
        case, response, aimed_at_own=target == OWN and bool(aimed) and must_be != UNREADABLE
    )
    if must_be == UNREADABLE:
        # Refused before anything else is looked at, ids included.
        assert response.status_code == 400, response.text
        assert "charset" in response.json()["error"]
    elif must_be == REFUSED:
        # A 400 for the field, unless the id already answered 404.
        reaches_the_body = not case.path_parameters or (target == OWN and bool(aimed))
        assert response.status_code in ((400,) if reaches_the_body else (400, 404)), response.text
    if target == FOREIGN and aimed and must_be != UNREADABLE:
        # Bob's ids answer as if they did not exist, and nothing of his changes.
        assert response.status_code in (404, 405), response.text
        if response.status_code == 404:
            missing = "Agent not found"
            if "session_id" in aimed:
                missing = "Session not found"
            elif "channel_id" in aimed:
                missing = "Alert channel not found"
            assert response.json() == {"success": False, "error": missing}
    if target == FOREIGN:
        assert state_of(bob) == bob_before


OPERATIONS = {
    "POST /api/auth/token",
    "POST /api/auth/token/refresh",
    "GET /api/agents",
    "POST /api/agents",
    "GET /api/agents/{id}",
    "PUT /api/agents/{id}",
    "PATCH /api/agents/{id}",
    "DELETE /api/agents/{id}",
    "GET /api/agents/{agent_id}/schedule",
    "POST /api/agents/{agent_id}/schedule",
    "PATCH /api/agents/{agent_id}/schedule",
    "DELETE /api/agents/{agent_id}/schedule",
    "GET /api/agents/{agent_id}/schedule/status",
    "POST /api/agents/{agent_id}/schedule/resume",
    "POST /api/agents/{agent_id}/backfill",
    "GET /api/agents/scheduler/status",
    "POST /api/agents/{agent_id}/run",
    "GET /api/agents/{agent_id}/sessions",
    "GET /api/agents/{agent_id}/slots",
    "GET /api/agents/{agent_id}/audit",
    "GET /api/agents/{agent_id}/stats",
    "GET /api/agents/stats",
    "GET /api/agents/{agent_id}/alerts",
    "PUT /api/agents/{agent_id}/alerts",
    "GET /api/alert-channels",
    "POST /api/alert-channels",
    "GET /api/alert-channels/{channel_id}",
    "PATCH /api/alert-channels/{channel_id}",
    "DELETE /api/alert-channels/{channel_id}",
    "POST /api/alert-channels/{channel_id}/test",
    "GET /api/alerts",
    "GET /api/schedule/preview",
    "GET /api/sessions/{session_id}",
    "GET /api/sessions/{session_id}/logs",
    "POST /api/sessions/{session_id}/cancel",
}


def test_every_operation_of_the_api_is_fuzzed():
    fuzzed = {result.ok().label for result in schema.get_all_operations()}
    assert fuzzed == OPERATIONS


# --- following the links ----------------------------------------------------------------
#
# The schema links a created agent's id and a queued run's session id to every operation
# that takes them. Scenarios follow those links, as an outside tester's stateful run
# does: create an agent, schedule it, change it, run it, cancel the run, delete it.

# Only what the links lead from and to: the other operations (tokens, lists) have
# nothing to follow and would only make the scenarios shorter.
LINKED = schema.exclude(
    operation_id=[
        "obtainToken",
        "refreshToken",
        "listAgents",
        "listAgentStats",
        "getSchedulerStatus",
        "previewSchedule",
        # Channels are the user's, not an agent's: the fuzzing above reaches them.
        "listAlertChannels",
        "createAlertChannel",
        "getAlertChannel",
        "changeAlertChannel",
        "deleteAlertChannel",
        "testAlertChannel",
        "listAlerts",
    ]
)

# Valid values for what the schema cannot constrain, so that schedules are set.
PLAUSIBLE = {
    "agentType": "demo",
    "cronExpression": "@daily",
    "timezone": "UTC",
    # A note needs a paused schedule, and a snooze must end in the future.
    "pauseNote": "",
    "pausedUntil": "2099-01-01T00:00:00Z",
    "start": "2026-01-01T00:00:00Z",
    "end": "2026-01-03T00:00:00Z",
}

STATEFUL = settings(
    max_examples=50,
    stateful_step_count=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate],
)


@pytest.mark.django_db(transaction=True)
def test_scenarios_following_the_links_work_on_the_objects_they_create(alice, strict_schema):
    answered: dict[str, set[int]] = defaultdict(set)

    class FollowingLinks(LINKED.as_state_machine()):
        def before_call(self, case):
            make_plausible(case, PLAUSIBLE)

        def get_call_kwargs(self, case):
            return {"headers": alice.auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            answered[case.operation.label].add(response.status_code)
            case.validate_response(
                response,
                checks=CHECKS,
                additional_checks=[envelope, strict_schema],
                headers=alice.auth,
                transport_kwargs=kwargs,
            )

    # Every operation on a created agent is reached, and answered from behind the
    # ownership check: Alice's own new agent was found (a 2xx, or a 400 about the
    # body, which views check after the lookup), never 404. Which of them also
    # succeed depends on the generated bodies and shifts with every change to the
    # schema; their API tests cover the real answers. (Session ids take one link
    # more; the test above makes sure every operation meets objects that exist.)
    # The walk depends on the ids and states the server answers with, so even a
    # derandomized one can miss an operation: a walk that does is followed by
    # fresh ones, at most two.
    taking_agent_ids = {label for label in OPERATIONS if "{id}" in label or "{agent_id}" in label}

    def missing() -> set[str]:
        past_the_lookup = {
            label
            for label, codes in answered.items()
            if any(code < 500 and code not in (401, 403, 404) for code in codes)
        }
        return taking_agent_ids - past_the_lookup

    FollowingLinks.run(settings=STATEFUL)
    for _ in range(2):
        if not missing():
            break
        FollowingLinks.run(settings=settings(STATEFUL, derandomize=False))
    assert not missing(), {label: answered.get(label) for label in missing()}


# --- inputs the generator rarely produces ----------------------------------------------
#
# Hand-picked hostile requests, each sent as raw bytes. Whatever the answer, it is
# no 5xx, it is in the envelope, and nothing stored breaks Alice's later requests.

IS_POSTGRES = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
AGENT = "/api/agents/{agent}"
SCHEDULE = "/api/agents/{agent}/schedule"


def deep(levels: int) -> str:
    """A JSON body nested ``levels`` deep."""
    return "[" * levels + "]" * levels


# Every minute and every hour, spelt out: valid, and longer than 200 characters.
MINUTES = ",".join(str(minute) for minute in range(60))
HOURS = ",".join(str(hour) for hour in range(24))


def hostile(
    sentence: str,
    method: str,
    path: str,
    body: str | bytes | None = None,
    content_type: str = "application/json",
):
    """One row of the table."""
    return pytest.param(method, path, body, content_type, id=sentence)


HOSTILE = [
    hostile("a body that is a bare null", "post", "/api/agents", "null"),
    hostile("a body that is an array", "post", "/api/agents", "[1, 2]"),
    hostile("a body that is a string", "patch", AGENT, '"x"'),
    hostile("a schedule body that is an array", "post", SCHEDULE, "[1]"),
    hostile("an empty body", "post", SCHEDULE, ""),
    hostile("malformed JSON", "post", "/api/agents", '{"name": '),
    hostile("NaN and Infinity", "post", SCHEDULE, '{"cronExpression": NaN, "priority": Infinity}'),
    hostile("a number of 5000 digits", "post", "/api/agents", "1" * 5000),
    hostile("a body that is not UTF-8", "post", "/api/agents", b"\xff\xfe\x00{"),
    hostile(
        "a body in a media type the API does not read", "post", "/api/agents", "<a/>", "text/xml"
    ),
    hostile("an unknown charset", "post", "/api/agents", "{}", "application/json; charset=nope"),
    hostile("a broken multipart body", "post", "/api/agents", "--b\r\nx", "multipart/form-data"),
    hostile(
        "a form body with a NUL in the name",
        "post",
        "/api/agents",
        "name=%00&agentType=demo",
        "application/x-www-form-urlencoded",
    ),
    hostile(
        "a NUL in an agent name", "post", "/api/agents", r'{"name": "a\u0000", "agentType": "demo"}'
    ),
    hostile("an unpaired surrogate in an agent name", "patch", AGENT, r'{"name": "\ud800"}'),
    hostile(
        "an agent name of 10,000 characters", "patch", AGENT, json.dumps({"name": "n" * 10_000})
    ),
    hostile(
        "an agent type that is a list",
        "post",
        "/api/agents",
        '{"name": "x", "agentType": ["demo"]}',
    ),
    hostile("an agent type with a NUL", "patch", AGENT, r'{"agentType": "demo\u0000"}'),
    hostile("a configuration that is a list", "patch", AGENT, '{"configuration": [1]}'),
    hostile("a demo step count of 10^30", "patch", AGENT, '{"configuration": {"steps": 1e30}}'),
    hostile(
        "a webhook URL without a host",
        "patch",
        AGENT,
        '{"agentType": "webhook", "configuration": {"url": "http:///x"}}',
    ),
    hostile(
        "a python callable that is not allowed",
        "patch",
        AGENT,
        '{"agentType": "python", "configuration": {"callable": "os.system"}}',
    ),
    hostile("a cron expression that is a number", "post", SCHEDULE, '{"cronExpression": 5}'),
    hostile("a cron expression that is an object", "post", SCHEDULE, '{"cronExpression": {}}'),
    hostile(
        "a cron expression with a NUL", "post", SCHEDULE, r'{"cronExpression": "* * * * *\u0000"}'
    ),
    hostile(
        "a cron expression with an unpaired surrogate",
        "post",
        SCHEDULE,
        r'{"cronExpression": "\udfff * * * *"}',
    ),
    hostile(
        "a cron step of 10^23",
        "post",
        SCHEDULE,
        '{"cronExpression": "*/99999999999999999999999 * * * *"}',
    ),
    hostile(
        "a cron expression that never fires", "post", SCHEDULE, '{"cronExpression": "0 0 30 2 *"}'
    ),
    hostile(
        "a timezone that is a path",
        "post",
        SCHEDULE,
        '{"cronExpression": "@daily", "timezone": "../../../../etc/passwd"}',
    ),
    hostile(
        "a timezone that is an absolute file",
        "post",
        SCHEDULE,
        '{"cronExpression": "@daily", "timezone": "/etc/localtime"}',
    ),
    hostile(
        "the host's local timezone",
        "post",
        SCHEDULE,
        '{"cronExpression": "@daily", "timezone": "localtime"}',
    ),
    hostile(
        "a timezone with a NUL",
        "post",
        SCHEDULE,
        r'{"cronExpression": "@daily", "timezone": "UTC\u0000"}',
    ),
    hostile(
        "a timezone that is a number",
        "post",
        SCHEDULE,
        '{"cronExpression": "@daily", "timezone": 0}',
    ),
    hostile(
        "a priority that is a number",
        "post",
        SCHEDULE,
        '{"cronExpression": "@daily", "priority": 4}',
    ),
    hostile("enabled as a string", "patch", SCHEDULE, '{"enabled": "false"}'),
    hostile("a priority with a NUL", "patch", SCHEDULE, r'{"priority": "HIGH\u0000"}'),
    hostile(
        "a username and password with NULs",
        "post",
        "/api/auth/token",
        r'{"username": "alice\u0000", "password": "\u0000"}',
    ),
    hostile(
        "a webhook URL with a NUL in its host",
        "patch",
        AGENT,
        r'{"agentType": "webhook", "configuration": {"url": "http://127.0.0.1\u0000.example/"}}',
    ),
    hostile("enabled as null", "patch", SCHEDULE, '{"enabled": null}'),
    hostile("a limit that is not a number", "get", "/api/agents?limit=%00", None),
    hostile("a limit that is invalid UTF-8", "get", "/api/agents?limit=%ED%A0%80", None),
    hostile(
        "an offset of 5000 digits", "get", "/api/agents/{agent}/sessions?offset=" + "9" * 5000, None
    ),
    hostile("a negative limit", "get", "/api/agents/{agent}/sessions?limit=-1", None),
    hostile("an agent id with a NUL", "get", "/api/agents/%00", None),
    hostile("an agent id that is invalid UTF-8", "delete", "/api/agents/%ED%A0%80/schedule", None),
    hostile(
        "an agent id of Arabic-Indic digits", "post", "/api/agents/" + "\u0660" * 32 + "/run", None
    ),
    hostile(
        "a session id of 5000 characters", "post", "/api/sessions/" + "a" * 5000 + "/cancel", None
    ),
    hostile(
        "a token refresh with a NUL", "post", "/api/auth/token/refresh", r'{"refresh": "\u0000"}'
    ),
    hostile(
        "a login with lists for credentials",
        "post",
        "/api/auth/token",
        '{"username": ["a"], "password": {"b": 1}}',
    ),
    # --- each of these was a 500 once ----------------------------------------------
    hostile(
        "a request body nested 100,000 levels deep",
        "post",
        "/api/agents",
        deep(100_000),
    ),
    hostile(
        "a configuration holding an unpaired surrogate",
        "post",
        "/api/agents",
        r'{"name": "x", "agentType": "demo", "configuration": {"output": "\ud800"}}',
    ),
    hostile(
        "a configuration holding a NUL",
        "patch",
        AGENT,
        r'{"configuration": {"output": "a\u0000b"}}',
    ),
    hostile(
        "a configuration key holding a NUL",
        "post",
        "/api/agents",
        r'{"name": "x", "agentType": "demo", "configuration": {"k\u0000": 1}}',
    ),
    hostile(
        "a webhook URL with a broken IPv6 host",
        "patch",
        AGENT,
        '{"agentType": "webhook", "configuration": {"url": "http://[::1/hook"}}',
    ),
    hostile(
        "a webhook URL whose parsers disagree on the host (backslash before @)",
        "patch",
        AGENT,
        r'{"agentType": "webhook", "configuration": {"url": "http://127.0.0.1:18902\\@1.1.1.1/x"}}',
    ),
    hostile(
        "a webhook URL with a user name before the host",
        "patch",
        AGENT,
        '{"agentType": "webhook", "configuration": {"url": "http://127.0.0.1@1.1.1.1/"}}',
    ),
    hostile(
        "a webhook URL with a NUL escaped in the host",
        "patch",
        AGENT,
        '{"agentType": "webhook", "configuration": {"url": "http://127.0.0.1%00.1.1.1.1/"}}',
    ),
    hostile(
        "a cron field longer than beat's table holds",
        "post",
        SCHEDULE,
        json.dumps({"cronExpression": "1," * 150 + "1 * * * *"}),
    ),
    hostile(
        "a valid cron expression longer than the agent's column holds",
        "post",
        SCHEDULE,
        json.dumps({"cronExpression": f"{MINUTES} {HOURS} * * *"}),
    ),
    hostile(
        "a timezone zoneinfo knows but beat refuses",
        "post",
        SCHEDULE,
        '{"cronExpression": "@daily", "timezone": "Factory"}',
    ),
    hostile(
        "a timezone from the leap-second tree",
        "post",
        SCHEDULE,
        '{"cronExpression": "@daily", "timezone": "right/UTC"}',
    ),
    hostile(
        "a body over the upload size limit",
        "patch",
        AGENT,
        json.dumps({"configuration": {"output": "x" * 3_000_000}}),
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", DISAGREEING_URLS)
@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_webhook_url_whose_parsers_disagree_about_the_host_is_refused_when_saved(
    alice, method, url
):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=alice.auth["Authorization"])
    body = {"agentType": "webhook", "configuration": {"url": url}}
    before = state_of(alice)

    if method == "post":
        response = client.post("/api/agents", {"name": "Hook", **body}, format="json")
    else:
        response = client.patch(f"/api/agents/{alice.agent.pk}", body, format="json")

    assert response.status_code == 400, response.content
    assert "url" in response.json()["details"]["configuration"]
    assert AIAgent.objects.filter(owner=alice.user).count() == 1
    assert state_of(alice) == before


def answers_in_the_envelope(response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("success"), bool), body
    if response.status_code >= 400:
        assert body["success"] is False
        assert isinstance(body["error"], str) and body["error"].strip(), body
    return body


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body", "content_type"), HOSTILE)
def test_a_hostile_request_gets_a_clear_answer_and_breaks_nothing(
    alice, method, path, body, content_type
):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=alice.auth["Authorization"])
    path = path.format(agent=alice.agent.pk)
    kwargs: dict[str, Any] = {}
    if body is not None:
        data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        kwargs = {"data": data, "content_type": content_type}

    response = getattr(client, method)(path, **kwargs)

    assert response.status_code < 500, response.content[:500]
    answers_in_the_envelope(response)
    # Whatever was stored, Alice's pages still render.
    for page in (
        "/api/agents",
        f"/api/agents/{alice.agent.pk}",
        f"/api/agents/{alice.agent.pk}/schedule",
        f"/api/agents/{alice.agent.pk}/sessions",
        "/api/agents/scheduler/status",
    ):
        assert client.get(page).status_code == 200, page
