from __future__ import annotations

from django.urls import re_path

from realtime.consumers import AgentEventsConsumer

websocket_urlpatterns = [
    # With and without the trailing slash, like every HTTP path.
    re_path(r"^ws/agents/?$", AgentEventsConsumer.as_asgi()),
]
