"""Which pages may open the WebSocket."""

from __future__ import annotations

from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):
    """Checks the Origin of browsers against ALLOWED_HOSTS; lets other clients in.

    Only browsers send an Origin header, and only they can be tricked into
    opening a socket for another site. API clients and scripts (which
    authenticate with a token anyway) send none and would otherwise be
    refused by Channels' stock validator.
    """

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def browser_origin_validator(application):
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)
