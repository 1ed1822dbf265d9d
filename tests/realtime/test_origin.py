"""The WebSocket origin rule (realtime.origin), on handshakes built by hand."""

from __future__ import annotations

from typing import Any

import pytest

from realtime.origin import origin_allowed

SERVED = "127.0.0.1:8000"


@pytest.fixture(autouse=True)
def served(settings) -> None:
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", ".neonhub.example"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.SECURE_PROXY_SSL_HEADER = None


def handshake(
    origin: str | None,
    *,
    host: str | None = SERVED,
    scheme: str | None = None,
    query: str = "",
    subprotocols: list[str] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    sent = [
        *([(b"host", host.encode())] if host is not None else []),
        *([(b"origin", origin.encode())] if origin is not None else []),
        *(headers or []),
    ]
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": "/ws/agents/",
        "query_string": query.encode(),
        "headers": sent,
        "subprotocols": subprotocols or [],
    }
    if scheme is not None:
        scope["scheme"] = scheme
    return scope


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", None),
        ("http://localhost:8000", "localhost:8000", "ws"),
        ("https://localhost:8443", "localhost:8443", "wss"),
        ("http://[::1]:8000", "[::1]:8000", None),
        ("http://app.neonhub.example", "app.neonhub.example", None),
        # The default port, written or not, is the same origin.
        ("http://localhost", "localhost:80", None),
        ("https://localhost:443", "localhost", "wss"),
        ("HTTP://LocalHost:8000", "localhost:8000", None),
    ],
)
def test_the_origin_of_the_socket_itself_is_allowed(origin, host, scheme):
    assert origin_allowed(handshake(origin, host=host, scheme=scheme))


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another port
        "http://localhost:3000",
        "http://localhost:8000",  # another host name for the same server
        "https://127.0.0.1:8000",  # another scheme
        "http://evil.example",
        "http://127.0.0.1:8000.evil.example",
        "http://127.0.0.1:8000@evil.example",
        "http://evil.example@127.0.0.1:8000",
        "http://127.0.0.1:8000/",
        "http://127.0.0.1:8000/dashboard/",
        "ws://127.0.0.1:8000",
        "file://",
        "null",
        "",
        "http://127.0.0.1:99999",
    ],
)
def test_any_other_origin_is_refused(origin):
    assert not origin_allowed(handshake(origin))


def test_a_foreign_origin_is_refused_with_a_token_too():
    assert not origin_allowed(handshake("http://localhost:3000", query="token=abc"))


def test_the_origin_of_a_host_that_is_not_served_is_refused():
    # A page whose own name was made to resolve to this server (DNS rebinding).
    assert not origin_allowed(handshake("http://rebound.example:8000", host="rebound.example:8000"))


def test_a_handshake_without_a_host_is_refused():
    assert not origin_allowed(handshake("http://127.0.0.1:8000", host=None))


def test_with_debug_and_no_allowed_hosts_the_local_names_are_served(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = []
    assert origin_allowed(handshake("http://app.localhost:8000", host="app.localhost:8000"))
    assert not origin_allowed(handshake("http://neonhub.example", host="neonhub.example"))


@pytest.mark.parametrize(
    "origin",
    [
        "https://neonhub.example",
        "https://neonhub.example:443",
        "http://localhost:3000",
        "https://app.trusted.example",
        "https://deep.app.trusted.example",
    ],
)
def test_an_origin_in_csrf_trusted_origins_is_allowed(settings, origin):
    settings.CSRF_TRUSTED_ORIGINS = [
        "https://neonhub.example",
        "http://localhost:3000",
        "https://*.trusted.example",
    ]
    assert origin_allowed(handshake(origin))


@pytest.mark.parametrize(
    "origin",
    [
        "http://neonhub.example",  # trusted over https only
        "https://neonhub.example:8443",
        "http://localhost:3001",
        "https://trusted.example.evil",
        "http://app.trusted.example",
        "https://app.trusted.example:8443",
    ],
)
def test_an_origin_close_to_a_trusted_one_is_refused(settings, origin):
    settings.CSRF_TRUSTED_ORIGINS = [
        "https://neonhub.example",
        "http://localhost:3000",
        "https://*.trusted.example",
    ]
    assert not origin_allowed(handshake(origin))


def test_behind_a_tls_proxy_the_proxy_header_decides_the_scheme(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = [(b"x-forwarded-proto", b"https")]
    origin, host = "https://app.neonhub.example", "app.neonhub.example"
    assert origin_allowed(handshake(origin, host=host, headers=forwarded))
    assert not origin_allowed(handshake(origin, host=host))
    plain = [(b"x-forwarded-proto", b"http")]
    assert not origin_allowed(handshake(origin, host=host, scheme="wss", headers=plain))


def test_a_cookie_handshake_without_an_origin_is_refused():
    # No token offered: the socket would sign in with the session cookie.
    assert not origin_allowed(handshake(None))
    assert not origin_allowed(handshake(None, query="token="))


@pytest.mark.parametrize(
    ("query", "subprotocols"),
    [("token=abc", None), ("", ["neonhub.jwt", "abc"])],
    ids=["query-string", "subprotocol"],
)
def test_a_token_handshake_may_leave_the_origin_out(query, subprotocols):
    # Even a token that will not pass: the consumer answers it with 4401.
    assert origin_allowed(handshake(None, query=query, subprotocols=subprotocols))
