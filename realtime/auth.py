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

What a socket may see is decided from its user's ``Rights`` as they were when
it opened; losing any of them closes it (``realtime.signals``).

Nothing here logs the query string or the token.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth import get_user_model
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


RIGHTS_FIELDS = ("is_active", "is_staff", "is_superuser")


@dataclass(frozen=True)
class Rights:
    """The flags of a user that decide what their sockets may see."""

    is_active: bool
    is_staff: bool
    is_superuser: bool

    @classmethod
    def of(cls, user: Any) -> Rights:
        return cls(*(bool(getattr(user, field, False)) for field in RIGHTS_FIELDS))

    def lost_in(self, now: Rights | None) -> bool:
        """Whether ``now`` (None: the user is gone) takes away any of these."""
        if now is None:
            return True
        pairs = zip(astuple(self), astuple(now), strict=True)
        return any(before and not after for before, after in pairs)


def stored_rights(user_model: Any, user_id: object, using: str | None = None) -> Rights | None:
    """The user's rights as the database holds them; None if there is no such user."""
    row = (
        user_model._base_manager.using(using).filter(pk=user_id).values_list(*RIGHTS_FIELDS).first()
    )
    return None if row is None else Rights(*row)


@database_sync_to_async
def lost_rights_since_read(user: Any) -> bool:
    """Whether ``user`` (as read when the socket signed in) has lost a right since."""
    return Rights.of(user).lost_in(stored_rights(get_user_model(), user.pk))


def WebSocketAuthMiddleware(inner: Any) -> Any:
    """Session and cookie middleware (for the dashboard), then JWT on top.

    Named like Channels' ``AuthMiddlewareStack``, which it wraps."""
    return AuthMiddlewareStack(JWTAuthMiddleware(inner))
