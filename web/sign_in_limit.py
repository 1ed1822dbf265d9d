"""The token endpoints' per-address limit, applied to the HTML sign-in forms too.

The dashboard's, the admin's and the browsable API's sign-in forms are plain
Django views outside DRF's throttling, so this middleware counts their POSTs
with ``TokenRateThrottle``, in the same Redis counter: an address has one
budget of password guesses (``API_TOKEN_RATE_LIMIT``) wherever it makes them.
Showing a form checks no password, so GETs are not counted.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin
from rest_framework.request import Request

from web.api.throttling import TokenRateThrottle

SIGN_IN_VIEWS = frozenset({"dashboard:login", "admin:login", "rest_framework:login"})


class SignInRateLimitMiddleware(MiddlewareMixin):
    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        match = request.resolver_match
        if request.method != "POST" or match is None or match.view_name not in SIGN_IN_VIEWS:
            return None
        throttle = TokenRateThrottle()
        # DRF's Request wraps the Django one; the throttle reads only its META.
        if throttle.allow_request(Request(request), view_func):
            return None
        retry_after = throttle.wait()
        response = HttpResponse(
            "Too many sign-in attempts from your address. "
            f"Try again in {retry_after} second{'' if retry_after == 1 else 's'}.\n",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(retry_after)
        return response
