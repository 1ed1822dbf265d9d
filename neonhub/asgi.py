from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from neonhub.http_limits import answer_overlong_lines
from web.api.content_type import RefuseUnreadableContentTypesASGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neonhub.settings")

# Django must be set up before any module that touches models is imported.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.auth import WebSocketAuthMiddleware  # noqa: E402
from realtime.origin import OriginCheck  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

answer_overlong_lines()

application = ProtocolTypeRouter(
    {
        "http": RefuseUnreadableContentTypesASGI(django_asgi_app),
        "websocket": OriginCheck(WebSocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
