"""Sockets signed in with a Django session close when that session signs out."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime.groups import session_group

logger = logging.getLogger(__name__)

# Signing out waits at most this long for Redis.
SEND_TIMEOUT_SECONDS = 2.0


def close_sockets_of_session(sender, request, user, **kwargs) -> None:
    """``user_logged_out`` receiver: sent before the session is flushed, so its key is known."""
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    if not session_key:
        return
    try:
        async_to_sync(_tell_sockets)(session_group(session_key))
    except Exception:
        # Signing out must succeed whatever Redis does. The socket then stays
        # open until the page holding it goes, as the dashboard's sign-out does.
        logger.warning("Could not close the WebSockets of a signed-out session", exc_info=True)


async def _tell_sockets(group: str) -> None:
    await asyncio.wait_for(
        get_channel_layer().group_send(group, {"type": "neonhub.signed_out"}),
        timeout=SEND_TIMEOUT_SECONDS,
    )
