"""Every API error, whatever its status, leaves in the same envelope."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from web.api.renderers import mark_enveloped

logger = logging.getLogger(__name__)

DEFAULT_MESSAGES = {
    400: "The request is not valid.",
    401: "Authentication credentials were not provided or are not valid.",
    403: "You do not have permission to do this.",
    404: "Not found.",
    405: "Method not allowed.",
    429: "Too many requests.",
}


def error_body(message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": message}
    if details:
        body["details"] = details
    return body


def _first_message(detail: Any) -> str | None:
    if isinstance(detail, dict):
        for value in detail.values():
            found = _first_message(value)
            if found:
                return found
        return None
    if isinstance(detail, list):
        for value in detail:
            found = _first_message(value)
            if found:
                return found
        return None
    return str(detail) if detail else None


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def envelope_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.ValidationError(f"The request body is too large: {exc}")
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ValidationError("The request was refused as malformed.")
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view"), exc_info=exc)
        response = Response(
            error_body("Internal server error."), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
        mark_enveloped(response)
        return response

    details = None
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        details = exc.detail
        field_message = _first_message(exc.detail.get("non_field_errors")) or _first_message(
            exc.detail
        )
        message = field_message or DEFAULT_MESSAGES[400]
    elif isinstance(exc, exceptions.ValidationError):
        message = _first_message(exc.detail) or DEFAULT_MESSAGES[400]
    elif isinstance(exc, Http404):
        message = str(exc) if str(exc) else DEFAULT_MESSAGES[404]
    else:
        message = _first_message(getattr(exc, "detail", None)) or DEFAULT_MESSAGES.get(
            response.status_code, "Request failed."
        )
    # Not-found texts are the contract's word for word ("Agent not found"):
    # clients match on them, so they get no full stop.
    if response.status_code != status.HTTP_404_NOT_FOUND:
        message = _sentence(message)
    response.data = error_body(message, details)
    mark_enveloped(response)
    return response
