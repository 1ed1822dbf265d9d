"""The one WebSocket endpoint, /ws/agents/: subscriptions in, lifecycle events out.

The consumer parses frames (``realtime.protocol``), resolves rooms
(``realtime.rooms``), holds its place under the per-user cap
(``realtime.connections``) and forwards the emitter's frames as they come. It
never computes state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from realtime.auth import SCOPE_EXPIRES_AT, SCOPE_SUBPROTOCOL, lost_rights_since_read
from realtime.connections import (
    claim_connection,
    release_connection,
    renewal_interval,
)
from realtime.groups import session_group, user_group
from realtime.protocol import (
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_UNAUTHORIZED,
    Command,
    Frame,
    ProtocolError,
    error_frame,
    parse_frame,
    subscribed_frame,
    unsubscribed_frame,
)
from realtime.rooms import open_room, room_name

logger = logging.getLogger(__name__)

# Close code for "the server cannot serve this connection right now".
CLOSE_INTERNAL_ERROR = 1011


class AgentEventsConsumer(AsyncWebsocketConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rooms: dict[str, str] = {}  # room name -> channel-layer group
        # Groups that tell this socket to close (realtime.signals).
        self.followed: list[str] = []
        self.holds_place = False
        self.closing = False
        self.released = False
        self.tasks: list[asyncio.Task] = []
        # Subscribing, leaving and the periodic re-join must not interleave, or
        # a re-join could bring back a group the client has just left.
        self.membership = asyncio.Lock()

    # --- connection lifecycle ---------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHORIZED)
            return
        try:
            self.holds_place = await claim_connection(user.pk, self.channel_name)
        except RedisError:
            logger.warning("Could not count WebSocket connections", exc_info=True)
            await self.refuse(CLOSE_INTERNAL_ERROR)
            return
        if not self.holds_place:
            await self.refuse(CLOSE_TOO_MANY_CONNECTIONS)
            return
        await self.accept(self.scope.get(SCOPE_SUBPROTOCOL))
        expires_at = self.scope.get(SCOPE_EXPIRES_AT)
        if expires_at is not None:
            self.tasks.append(asyncio.create_task(self.close_at(expires_at)))
        else:
            await self.follow_session()
        await self.follow_user(user)
        self.tasks.append(asyncio.create_task(self.keep_place()))

    async def follow_session(self) -> None:
        """Signed in by a session cookie: close when that session signs out."""
        session = self.scope.get("session")
        if session is not None and session.session_key:
            await self.follow(session_group(session.session_key))

    async def follow_user(self, user: Any) -> None:
        """Close when the user is deactivated, deleted, or loses staff or superuser."""
        await self.follow(user_group(user.pk))
        # A change committed after authentication read the user, but told
        # before this socket was in the group, would be missed: read again.
        if await lost_rights_since_read(user):
            await self.end(CLOSE_UNAUTHORIZED)

    async def follow(self, group: str) -> None:
        # Held even when joining fails: the renewal joins it again.
        self.followed.append(group)
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except (RedisError, OSError):
            # Without the layer this socket gets no events either.
            logger.warning("Could not follow a WebSocket's user or session", exc_info=True)

    async def refuse(self, code: int) -> None:
        # Closing before accepting would turn into a bare HTTP 403 that clients
        # see as 1006; accepted first, the client gets the real reason. When
        # the client offered our subprotocol it must be picked, or a browser
        # fails the handshake before it can read the code.
        self.closing = True
        await self.accept(self.scope.get(SCOPE_SUBPROTOCOL))
        await self.close(code)

    async def disconnect(self, code: int) -> None:
        await self.release()

    async def __call__(self, scope, receive, send) -> None:
        # disconnect() does not run when the server cancels the consumer (a
        # shutdown, an application timeout): release here too. Whatever this
        # misses still expires: the lease and channels-redis' group expiry.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.release()

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.closing = True
        for task in self.tasks:
            task.cancel()
        # Wait until they have stopped, so a renewal cut short cannot re-join
        # a group after it is left below.
        await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            for group in self.groups_held():
                await self.channel_layer.group_discard(group, self.channel_name)
            self.rooms.clear()
            if self.holds_place:
                await release_connection(self.scope["user"].pk, self.channel_name)
        except (RedisError, OSError):
            logger.warning("Could not release a WebSocket connection", exc_info=True)

    async def end(self, code: int) -> None:
        """Close from the server side; disconnect() follows and releases."""
        if self.closing:
            return
        self.closing = True
        await self.close(code)

    # --- background duties --------------------------------------------------------

    async def keep_place(self) -> None:
        """Renew this connection's lease, and its group memberships with it."""
        while True:
            await asyncio.sleep(renewal_interval())
            try:
                async with self.membership:
                    if not await claim_connection(self.scope["user"].pk, self.channel_name):
                        # Stalled past its lease, it lost its place to another connection.
                        await self.end(CLOSE_TOO_MANY_CONNECTIONS)
                        return
                    # The core channels-redis layer drops a group member
                    # group_expiry (a day) after it joined, however long it
                    # stays connected; joining again restarts that clock, so
                    # long-lived sockets keep their events. The pub/sub layer
                    # keeps members in this process: joining again is a no-op.
                    for group in self.groups_held():
                        await self.channel_layer.group_add(group, self.channel_name)
            except (RedisError, OSError):
                logger.warning("Could not renew a WebSocket lease", exc_info=True)

    def groups_held(self) -> list[str]:
        return [*self.rooms.values(), *self.followed]

    async def close_at(self, expires_at: float) -> None:
        """Close the socket when its access token expires."""
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self.end(CLOSE_UNAUTHORIZED)

    # --- client frames --------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            command = parse_frame(text_data, max_bytes=settings.WS_MAX_FRAME_BYTES)
            if command.is_subscribe:
                answer = await self.subscribe(command)
            else:
                answer = await self.unsubscribe(command)
        except ProtocolError as error:
            answer = error_frame(error.message)
        await self.send_frame(answer)

    async def subscribe(self, command: Command) -> Frame:
        room = await open_room(self.scope["user"], command)
        async with self.membership:
            if room.name not in self.rooms:
                # Each room is a group membership held, and renewed, in Redis.
                limit = settings.WS_MAX_ROOMS_PER_CONNECTION
                if len(self.rooms) >= limit:
                    raise ProtocolError(
                        f"This connection is already in {limit} rooms, the most allowed; "
                        "unsubscribe from one first."
                    )
                await self.channel_layer.group_add(room.group, self.channel_name)
                self.rooms[room.name] = room.group
        return subscribed_frame(room.name)

    async def unsubscribe(self, command: Command) -> Frame:
        # Leaving a room never joined is fine, and needs no ownership check.
        name = room_name(command)
        async with self.membership:
            group = self.rooms.pop(name, None)
            if group is not None:
                await self.channel_layer.group_discard(group, self.channel_name)
        return unsubscribed_frame(name)

    # --- server events ----------------------------------------------------------------

    async def neonhub_event(self, message: dict[str, Any]) -> None:
        """A frame from the emitter (realtime.publisher), forwarded as it is.

        The emitter has already encoded it: one encoding per event, however
        many sockets watch the room."""
        await self.send_text(message["text"])

    async def neonhub_signed_out(self, message: dict[str, Any]) -> None:
        """Its session signed out, or its user lost a right (realtime.signals)."""
        await self.end(CLOSE_UNAUTHORIZED)

    async def send_frame(self, frame: Frame) -> None:
        await self.send_text(json.dumps(frame))

    async def send_text(self, text: str) -> None:
        # Once the server has closed the socket, daphne raises on a send.
        if not self.closing:
            await self.send(text_data=text)
