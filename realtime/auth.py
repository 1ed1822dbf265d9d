"""Who is on the other end of a WebSocket.

Three ways in, first match wins:

1. a JWT access token offered as a subprotocol: the client asks for
   ``["neonhub.jwt", "<token>"]`` and the server picks ``neonhub.jwt`` (the
   token is never echoed back). This keeps the token out of URLs and logs;
2. a JWT access token in the query string, ``?token=<token>``;
3. a logged-in Django session cookie (the dashboard page).

A token that is offered but not valid makes the connection anonymous even if
a session is present: a client sending a token means token authentication.
The middleware only fills in the scope; the consumer refuses anonymous users
after accepting, so clients see close code 4401 instead of a bare HTTP 403.

Nothing here logs the query string or the token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

JWT_SUBPROTOCOL = "neonhub.jwt"

# Scope keys this middleware sets for the consumer.
SCOPE_SUBPROTOCOL = "auth_subprotocol"  # the subprotocol to accept with, or None
SCOPE_EXPIRES_AT = "auth_expires_at"  # the token's exp (epoch seconds), or None


def token_from_scope(scope: dict[str, Any]) -> tuple[str | None, str | None]:
    """The raw token offered (subprotocol first, then query string) and the
    subprotocol the connection must be accepted with."""
    offered = [str(item) for item in scope.get("subprotocols") or []]
    subprotocol = JWT_SUBPROTOCOL if JWT_SUBPROTOCOL in offered else None
    if subprotocol is not None:
        for item in offered:
            if item != JWT_SUBPROTOCOL and item:
                return item, subprotocol
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return (tokens[0] if tokens else None), subprotocol


@database_sync_to_async
def authenticate_token(raw_token: str) -> tuple[Any, float | None]:
    """The user a valid access token names and when the token expires, using
    simplejwt's own checks (signature, expiry, token type, active user)."""
    authentication = JWTAuthentication()
    try:
        token = authentication.get_validated_token(raw_token.encode("latin-1"))
        user = authentication.get_user(token)
    except (TokenError, InvalidToken, AuthenticationFailed, UnicodeEncodeError):
        return AnonymousUser(), None
    expires_at = token.get("exp")
    return user, float(expires_at) if expires_at is not None else None


class JWTAuthMiddleware(BaseMiddleware):
    """Replaces the session user with the token's user when a token is offered."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        raw_token, subprotocol = token_from_scope(scope)
        scope[SCOPE_SUBPROTOCOL] = subprotocol
        scope[SCOPE_EXPIRES_AT] = None
        if raw_token is not None:
            scope["user"], scope[SCOPE_EXPIRES_AT] = await authenticate_token(raw_token)
        return await super().__call__(scope, receive, send)


def WebSocketAuthMiddleware(inner: Any) -> Any:
    """Session and cookie middleware (for the dashboard), then JWT on top.

    Named like Channels' ``AuthMiddlewareStack``, which it wraps."""
    return AuthMiddlewareStack(JWTAuthMiddleware(inner))
