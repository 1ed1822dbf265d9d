"""Sockets signed in with a Django session close when that session signs out."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from realtime.groups import session_group

logger = logging.getLogger(__name__)


def close_sockets_of_session(sender, request, user, **kwargs) -> None:
    """``user_logged_out`` receiver: sent before the session is flushed, so its key is known."""
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    if not session_key:
        return
    try:
        async_to_sync(get_channel_layer().group_send)(
            session_group(session_key), {"type": "neonhub.signed_out"}
        )
    except (RedisError, OSError):
        # Signing out must not fail with Redis. The socket then stays open
        # until the page holding it goes, as the dashboard's own sign-out does.
        logger.warning("Could not close the WebSockets of a signed-out session", exc_info=True)
