"""Sockets close with 4401 when their user loses the right to them.

Signing a session out closes the sockets signed in with that session.
Deactivating or deleting a user, or taking away staff or superuser, closes
every socket of that user, token and cookie ones alike, in every web process
(the channel layer carries the word). Such a change can be made anywhere (the
admin, a shell, the API), so it is seen where every path passes: the user
model's save and delete signals. A ``QuerySet.update()`` sends no signals and
is not seen.

The word goes out after commit, and neither a sign-out nor a save waits more
than ``SEND_TIMEOUT_SECONDS`` for Redis or fails because of it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime.auth import RIGHTS_FIELDS, Rights, stored_rights
from realtime.groups import session_group, user_group

logger = logging.getLogger(__name__)

# Signing out or saving a user waits at most this long for Redis.
SEND_TIMEOUT_SECONDS = 2.0

# Where pre_save leaves the stored rights for post_save to compare with.
_RIGHTS_BEFORE_SAVE = "_realtime_rights_before_save"


def close_sockets_of_session(sender, request, user, **kwargs) -> None:
    """``user_logged_out`` receiver: sent before the session is flushed, so its key is known."""
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    if session_key:
        close_sockets(session_group(session_key))


def note_rights_before_save(
    sender, instance, raw: bool = False, using: str | None = None, update_fields=None, **kwargs
) -> None:
    """``pre_save`` receiver of the user model: the rights as stored before this save."""
    if raw or instance._state.adding:
        return
    if update_fields is not None and not set(RIGHTS_FIELDS) & set(update_fields):
        # Signing in saves last_login alone: no read for that.
        return
    setattr(instance, _RIGHTS_BEFORE_SAVE, stored_rights(sender, instance.pk, using))


def close_sockets_if_rights_lost(sender, instance, using: str | None = None, **kwargs) -> None:
    """``post_save`` receiver of the user model."""
    before = instance.__dict__.pop(_RIGHTS_BEFORE_SAVE, None)
    if before is not None and before.lost_in(Rights.of(instance)):
        _close_sockets_of_user_on_commit(instance.pk, using)


def close_sockets_of_deleted_user(sender, instance, using: str | None = None, **kwargs) -> None:
    """``post_delete`` receiver of the user model."""
    _close_sockets_of_user_on_commit(instance.pk, using)


def _close_sockets_of_user_on_commit(user_id: Any, using: str | None) -> None:
    # A rolled-back change must not close anything, and a socket closed before
    # the commit could reconnect with the rights it is about to lose.
    transaction.on_commit(lambda: close_sockets(user_group(user_id)), using=using)


def close_sockets(group: str) -> None:
    """Tell every socket in ``group``, in every web process, to close with 4401."""
    try:
        async_to_sync(_tell_sockets)(group)
    except Exception:
        # Signing out or saving a user must succeed whatever Redis does. A
        # cookie socket then stays open until the page holding it goes, a token
        # socket until its token expires.
        logger.warning("Could not close the WebSockets of %s", group, exc_info=True)


async def _tell_sockets(group: str) -> None:
    await asyncio.wait_for(
        get_channel_layer().group_send(group, {"type": "neonhub.signed_out"}),
        timeout=SEND_TIMEOUT_SECONDS,
    )
