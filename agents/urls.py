from __future__ import annotations

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from agents.views.agents import AgentViewSet
from agents.views.auth import TokenRefresh, TokenView


class OptionalSlashRouter(SimpleRouter):
    """Every route answers with and without its trailing slash."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("agents", AgentViewSet, basename="agent")

urlpatterns = [
    re_path(r"^auth/token/?$", TokenView.as_view(), name="token"),
    re_path(r"^auth/token/refresh/?$", TokenRefresh.as_view(), name="token-refresh"),
    path("", include(router.urls)),
]
