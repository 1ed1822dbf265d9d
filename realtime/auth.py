from __future__ import annotations

from channels.auth import AuthMiddlewareStack

WebSocketAuthMiddleware = AuthMiddlewareStack
