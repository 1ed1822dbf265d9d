"""The one place where API responses get their envelope and camelCase keys."""

from __future__ import annotations

from typing import Any

from djangorestframework_camel_case.render import (
    CamelCaseBrowsableAPIRenderer,
    CamelCaseJSONRenderer,
)
from rest_framework.response import Response


class MessageResponse(Response):
    """A success that carries a sentence instead of data (deletions)."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__({"success": True, "message": message}, status=status)
        mark_enveloped(self)


# Set on a response whose data already is the whole envelope.
ENVELOPED = "enveloped"


def mark_enveloped(response: Response) -> None:
    setattr(response, ENVELOPED, True)


def envelope(data: Any, renderer_context: dict[str, Any] | None) -> Any:
    response = (renderer_context or {}).get("response")
    if response is None or getattr(response, ENVELOPED, False):
        return data
    if response.status_code >= 400:
        # Errors are shaped by the exception handler; a bare one reaching us
        # here still gets the error envelope.
        if isinstance(data, dict) and data.get("success") is False:
            return data
        return {"success": False, "error": "Request failed.", "details": data}
    return {"success": True, "data": data}


class EnvelopeJSONRenderer(CamelCaseJSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        return super().render(
            envelope(data, renderer_context), accepted_media_type, renderer_context
        )


class EnvelopeBrowsableAPIRenderer(CamelCaseBrowsableAPIRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        return super().render(
            envelope(data, renderer_context), accepted_media_type, renderer_context
        )
