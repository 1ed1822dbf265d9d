"""A Content-Type whose charset is no text encoding is a 400, never a 500.

The requests go through the project's WSGI application, the way a server
calls it: Django builds the request from the charset before any view or
middleware runs, so Django's test client (which builds it itself) would fail
in the test instead.
"""

from __future__ import annotations

import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework_simplejwt.tokens import AccessToken

from agents.models import AIAgent
from neonhub.wsgi import application
from web.api.content_type import content_type_problem, is_readable_charset

pytestmark = pytest.mark.django_db

NOT_TEXT_ENCODINGS = [
    "zlib_codec",
    "rot13",
    "base64",
    "hex",
    "bz2",
    "uu",
    "quopri",
    # Text codecs of Python's that are no character set.
    "idna",
    "punycode",
    "undefined",
    "unicode_escape",
    "raw_unicode_escape",
    "utf-7",
    # Unknown, empty and broken names.
    "nope",
    "",
    "utf-8\x00",
    "x" * 5000,
]


@pytest.fixture(autouse=True)
def connection_kept_open():
    """The handler closes the database connection around each request, as under a
    server; the test's transaction lives on it (Django's test client does the same)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def call(
    method: str, path: str, *, content_type: str, body: bytes = b"", token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request through the WSGI application; the status, headers and body."""
    path, _, query = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_HOST": "testserver",
    }
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    setup_testing_defaults(environ)
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None) -> None:
        started.update(status=int(status.split()[0]), headers=dict(headers))

    chunks = application(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return started["status"], started["headers"], content


@pytest.fixture
def token(user) -> str:
    return str(AccessToken.for_user(user))


REQUESTS = [
    pytest.param("GET", "/api/agents?limit=%35", "application/json", b"", id="get"),
    pytest.param(
        "POST", "/api/agents", "application/json", b'{"name": "x", "agentType": "demo"}', id="json"
    ),
    pytest.param(
        "POST",
        "/api/agents",
        "application/x-www-form-urlencoded",
        b"name=x&agentType=demo",
        id="form",
    ),
]


@pytest.mark.parametrize("charset", NOT_TEXT_ENCODINGS)
@pytest.mark.parametrize(("method", "path", "media_type", "body"), REQUESTS)
def test_a_charset_that_is_no_text_encoding_is_a_400_in_the_envelope(
    token, charset, method, path, media_type, body
):
    status, headers, content = call(
        method, path, content_type=f"{media_type}; charset={charset}", body=body, token=token
    )

    assert status == 400, content[:300]
    assert headers["Content-Type"] == "application/json"
    answer = json.loads(content)
    assert answer["success"] is False
    assert "charset" in answer["error"] and answer["error"].endswith(".")
    assert len(answer["error"]) < 200
    assert not AIAgent.objects.exists()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"name": "plain", "agentType": "demo"}'),
        ("application/json; charset=utf-8", b'{"name": "utf-8", "agentType": "demo"}'),
        ('application/json; charset="UTF8"', b'{"name": "quoted", "agentType": "demo"}'),
        (
            "application/json; charset=latin-1",
            '{"name": "café", "agentType": "demo"}'.encode("latin-1"),
        ),
        (
            "application/json; charset=utf-16",
            '{"name": "wide", "agentType": "demo"}'.encode("utf-16"),
        ),
        ("application/x-www-form-urlencoded; charset=iso-8859-1", b"name=caf%E9&agentType=demo"),
    ],
)
def test_bodies_in_real_text_encodings_are_read(token, content_type, body):
    status, _, content = call(
        "POST", "/api/agents", content_type=content_type, body=body, token=token
    )
    assert status == 201, content[:300]
    assert AIAgent.objects.get().name == json.loads(content)["data"]["name"]


def test_a_content_type_header_django_cannot_parse_is_a_400(token):
    # An RFC 2231 parameter naming an unknown charset: Django's parser raises.
    status, _, content = call(
        "POST", "/api/agents", content_type="application/json; charset*=nope''utf-8", token=token
    )
    assert status == 400
    assert json.loads(content) == {
        "success": False,
        "error": "The Content-Type header cannot be read.",
    }


def test_outside_the_api_the_refusal_is_plain_text():
    status, headers, content = call(
        "POST", "/admin/login/", content_type="application/x-www-form-urlencoded; charset=rot13"
    )
    assert status == 400
    assert headers["Content-Type"].startswith("text/plain")
    assert b"charset" in content


@pytest.mark.parametrize(
    "name",
    ["utf-8", "UTF-8", "utf8", "latin-1", "ISO-8859-1", "windows-1252", "shift_jis", "utf-16"],
)
def test_character_sets_are_readable(name):
    assert is_readable_charset(name)


@pytest.mark.parametrize("name", NOT_TEXT_ENCODINGS)
def test_codecs_that_are_no_character_set_are_not(name):
    assert not is_readable_charset(name)


def test_a_content_type_without_a_charset_has_no_problem():
    assert content_type_problem("") is None
    assert content_type_problem("application/json") is None
    assert content_type_problem("multipart/form-data; boundary=x") is None
