"""The WebSocket frame format (CONTRACT §7): what clients may send, what we answer.

Every frame, both ways, is a JSON object ``{"event": NAME, "data": PAYLOAD}``.
Parsing is pure: it turns one client frame into a ``Command`` or raises
``ProtocolError`` whose message goes back to the client in an ``error`` frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Close codes in the 4000-4999 range an application may use, mirroring HTTP.
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY_CONNECTIONS = 4429

AGENT_SUBSCRIBE = "agent:subscribe"
AGENT_UNSUBSCRIBE = "agent:unsubscribe"
MONITORING_SUBSCRIBE = "monitoring:subscribe"
MONITORING_UNSUBSCRIBE = "monitoring:unsubscribe"
CLIENT_EVENTS = (AGENT_SUBSCRIBE, AGENT_UNSUBSCRIBE, MONITORING_SUBSCRIBE, MONITORING_UNSUBSCRIBE)

MONITORING_TOPICS = ("agents", "scheduler")

SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
ERROR = "error"

# Unknown event names are echoed back; a long one is cut short.
_ECHO_LIMIT = 64

Frame = dict[str, Any]


class ProtocolError(Exception):
    """A bad client frame. The message is sent back in an ``error`` frame."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Command:
    """One valid client frame: subscribe to or leave an agent or monitoring room."""

    event: str
    target: str  # an agent id as sent (not yet checked) or a monitoring topic

    @property
    def is_subscribe(self) -> bool:
        return self.event in (AGENT_SUBSCRIBE, MONITORING_SUBSCRIBE)

    @property
    def is_agent(self) -> bool:
        return self.event in (AGENT_SUBSCRIBE, AGENT_UNSUBSCRIBE)


def parse_frame(text: str | None, *, max_bytes: int) -> Command:
    """Parse one client frame; ``text`` is None for a binary frame."""
    if text is None:
        raise ProtocolError("Binary frames are not supported: send JSON text frames.")
    # A character is at most 4 bytes in UTF-8: only long texts need encoding to measure.
    if len(text) > max_bytes or (
        len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes
    ):
        raise ProtocolError(f"Frame too large: the limit is {max_bytes} bytes.")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("Frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise ProtocolError('Frame must be a JSON object {"event": ..., "data": ...}.')
    return _command(frame)


def _command(frame: dict[str, Any]) -> Command:
    event = frame.get("event")
    if event is None:
        raise ProtocolError("Frame has no event.")
    if not isinstance(event, str):
        raise ProtocolError("The event must be a string.")
    if event not in CLIENT_EVENTS:
        shown = event if len(event) <= _ECHO_LIMIT else event[:_ECHO_LIMIT] + "..."
        raise ProtocolError(f"Unknown event {shown!r}; expected one of {', '.join(CLIENT_EVENTS)}.")
    data = frame.get("data")
    if data is None:
        raise ProtocolError(f"{event} needs data.")
    if event in (AGENT_SUBSCRIBE, AGENT_UNSUBSCRIBE):
        if not isinstance(data, str):
            raise ProtocolError(f"{event} expects an agent id (a UUID string) as data.")
    elif data not in MONITORING_TOPICS:
        raise ProtocolError(f'{event} expects "agents" or "scheduler" as data.')
    return Command(event=event, target=data)


def subscribed_frame(room: str) -> Frame:
    return {"event": SUBSCRIBED, "data": {"room": room}}


def unsubscribed_frame(room: str) -> Frame:
    return {"event": UNSUBSCRIBED, "data": {"room": room}}


def error_frame(message: str) -> Frame:
    return {"event": ERROR, "data": {"message": message}}
