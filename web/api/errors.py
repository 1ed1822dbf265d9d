"""The API's error texts that clients match on, and error pages for paths no API
view handled, in the API's envelope."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

# The contract's exact answers (no full stop) for an agent or a session the user
# may not see, unknown and foreign alike: every API path, the dashboard and the
# WebSocket's error frames say the same, so ids do not leak.
AGENT_NOT_FOUND = "Agent not found"
SESSION_NOT_FOUND = "Session not found"


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"success": False, "error": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"success": False, "error": "Internal server error."}, status=500)
    return defaults.server_error(request)
