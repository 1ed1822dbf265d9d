"""Which pages may open the WebSocket: the rule of Django's CSRF origin check.

A browser sends the site's session cookie with a handshake whatever page
opened it, and it always says which page that was in ``Origin``. So:

- an ``Origin``, when sent, must be the origin the socket itself is served
  at (``ws``/``wss`` as ``http``/``https``, and the ``Host`` header's host and
  port, that host being one of ``ALLOWED_HOSTS``), or one listed in
  ``CSRF_TRUSTED_ORIGINS``;
- a handshake that offers no token would sign in with the session cookie,
  and must send an ``Origin``. Scripts that authenticate with a token may
  leave it out: a browser never sends a token by itself.

Anything else is refused before the handshake completes, an HTTP 403.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

from realtime.auth import token_from_scope

DEFAULT_PORTS = {"http": 80, "https": 443}

# What Django's request.get_host() allows when DEBUG is on and ALLOWED_HOSTS is empty.
DEBUG_ALLOWED_HOSTS = [".localhost", "127.0.0.1", "[::1]"]

Origin = tuple[str, str, int]  # scheme, host, port


class OriginCheck:
    """ASGI middleware: refuses WebSocket handshakes ``origin_allowed`` refuses."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def origin_allowed(scope: dict[str, Any]) -> bool:
    origin = header(scope, b"origin")
    if origin is None:
        raw_token, _ = token_from_scope(scope)
        return raw_token is not None
    canonical = canonical_origin(origin)
    if canonical is None:
        return False  # "null" (a sandboxed or local page), or not an origin at all
    return canonical == served_origin(scope) or is_trusted(origin, canonical)


def served_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin of the socket's own URL, or None when its host is not served."""
    host = header(scope, b"host")
    if host is None:
        return None
    domain, _ = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = DEBUG_ALLOWED_HOSTS
    # A page of any site can have its name resolve to this server (DNS
    # rebinding) and be "same origin" with it: only served names count.
    if not domain or not validate_host(domain, allowed_hosts):
        return None
    return canonical_origin(f"{'https' if is_secure(scope) else 'http'}://{host}")


def is_secure(scope: dict[str, Any]) -> bool:
    """Whether the client connected over TLS, as Django's request.is_secure() decides."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        name = meta_name.removeprefix("HTTP_").lower().replace("_", "-")
        value = header(scope, name.encode("latin-1"))
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return scope.get("scheme", "ws") == "wss"


def is_trusted(origin: str, canonical: Origin) -> bool:
    """Listed in CSRF_TRUSTED_ORIGINS, read as Django's CSRF check reads it
    (``https://*.example.com`` also matches every subdomain)."""
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" not in trusted:
            if canonical_origin(trusted) == canonical:
                return True
            continue
        pattern = urlsplit(trusted)
        if pattern.scheme == canonical[0] and is_same_domain(
            urlsplit(origin).netloc.lower(), pattern.netloc.lstrip("*")
        ):
            return True
    return False


def canonical_origin(text: str) -> Origin | None:
    """``scheme://host[:port]`` as (scheme, host, port), or None for anything else."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if (
        parts.scheme not in DEFAULT_PORTS
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
    ):
        return None
    return parts.scheme, parts.hostname, DEFAULT_PORTS[parts.scheme] if port is None else port


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """The first value of a request header (ASGI names are lower case)."""
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None
