"""Sends frames to channel-layer groups from any kind of caller.

A frame is turned into JSON text here, once per event: every group it goes to
and every consumer that forwards it then handles the same ready text, which
costs a shared room of N watchers one ``json.dumps`` instead of N.

Celery workers and Django views are synchronous. Calling ``async_to_sync``
for every event would create an event loop, and with it a new Redis
connection pool, per call. Instead each process keeps one event loop in a
background thread and hands it every send, so the layer's connections are
made once and reused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Coroutine, Iterable
from concurrent.futures import Future
from typing import Any

from channels.layers import get_channel_layer

from observability import metrics

logger = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 5.0


class _LoopThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop())

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                threading.Thread(target=run, name="event-publisher", daemon=True).start()
                started.wait()
                self._loop = loop
            return self._loop


_loop_thread = _LoopThread()


EVENT_MESSAGE_TYPE = "neonhub.event"


def event_message(frame: dict[str, Any]) -> dict[str, Any]:
    """The channel-layer message that carries one frame to consumers
    (``AgentEventsConsumer.neonhub_event``): the frame as the text sent to clients."""
    return {"type": EVENT_MESSAGE_TYPE, "text": json.dumps(frame)}


async def send_to_groups(groups: Iterable[str], frame: dict[str, Any]) -> None:
    layer = get_channel_layer()
    message = event_message(frame)
    for group in groups:
        await layer.group_send(group, message)
    metrics.event_sent(frame.get("event"))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def send_now(groups: list[str], frame: dict[str, Any]) -> None:
    """Send at once. Events are best effort: a failure is logged, never raised,
    so a Redis hiccup cannot fail the run that produced the event."""
    loop = _running_loop()
    if loop is not None:
        # Inside an event loop (a consumer): never block it.
        task = loop.create_task(send_to_groups(groups, frame))
        task.add_done_callback(_log_failure)
        return
    try:
        _loop_thread.submit(send_to_groups(groups, frame)).result(timeout=SEND_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("Could not publish %s to %s", frame.get("event"), groups, exc_info=True)


def send_all_now(groups: list[str], frames: list[dict[str, Any]]) -> None:
    """send_now for several frames, in order, waiting once for all of them."""
    if not frames:
        return

    async def send_all() -> None:
        for frame in frames:
            await send_to_groups(groups, frame)

    loop = _running_loop()
    if loop is not None:
        loop.create_task(send_all()).add_done_callback(_log_failure)
        return
    try:
        _loop_thread.submit(send_all()).result(timeout=SEND_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("Could not publish %d frames to %s", len(frames), groups, exc_info=True)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("Could not publish an event", exc_info=task.exception())
