"""/healthz and /metrics: for load balancers and Prometheus, no sign-in.

Neither answer holds anything a user owns: health names only which parts
work, metrics only counts across everyone. /metrics can still ask for a
token of its own (METRICS_TOKEN), as Prometheus sends it.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from observability.collector import registry
from observability.health import run_checks

READ_METHODS = ("GET", "HEAD")


def _method_not_allowed() -> JsonResponse:
    response = JsonResponse({"success": False, "error": "Method not allowed."}, status=405)
    response["Allow"] = ", ".join(READ_METHODS)
    return response


# Exempt so any other method gets the 405 below, not a CSRF page.
@csrf_exempt
async def healthz(request: HttpRequest) -> HttpResponse:
    # Async so a slow check waits on the event loop, not in the one thread
    # daphne runs every synchronous view of the process in.
    if request.method not in READ_METHODS:
        return _method_not_allowed()
    report = await run_checks()
    response = JsonResponse(report, status=200 if report["status"] == "ok" else 503)
    response["Cache-Control"] = "no-store"
    return response


def _has_metrics_token(request: HttpRequest) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    # Compared as bytes: compare_digest refuses strings with non-ASCII characters.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), settings.METRICS_TOKEN.encode()
    )


@csrf_exempt
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    if settings.METRICS_TOKEN and not _has_metrics_token(request):
        response = JsonResponse(
            {"success": False, "error": "A valid metrics token is required."}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method not in READ_METHODS:
        return _method_not_allowed()
    metrics = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    metrics["Cache-Control"] = "no-store"
    return metrics
