"""A run's log: the lines its runner writes with ``context.log``, kept and sent live.

Lines are buffered in the worker and written in batches (one INSERT for many
lines): when FLUSH_LINES are waiting, when a line comes FLUSH_SECONDS after
the last write, on the lease keeper's beat (about a second) and when the run
ends, always before its outcome is recorded. Each batch also goes to the
agent's room as ``agent:log`` frames, at most FRAMES_PER_FLUSH of them: a
runner that logs in a tight loop cannot flood the channel layer, and a
client that sees a gap in ``seq`` reads the missing lines over REST.

A session keeps SessionLogLine.MAX_LINES lines and MAX_BYTES of text; past
either the rest is dropped, counted, and the session marked ``log_truncated``.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession, SessionLogLine
from core.text import storable_text
from observability import metrics
from realtime import events

logger = logging.getLogger(__name__)

Level = SessionLogLine.Level

FLUSH_LINES = 50
FRAMES_PER_FLUSH = 20
# A line is cut here, so one line alone cannot use up the session's text.
MAX_LINE_CHARS = 8192
LEVEL_NAMES = {"WARN": Level.WARNING, "CRITICAL": Level.ERROR, "FATAL": Level.ERROR}


def level_of(level: object) -> str:
    """A runner's level as one of the four kept; anything unknown is INFO."""
    name = str(level).strip().upper()
    return LEVEL_NAMES.get(name, name if name in Level.values else Level.INFO)


class RunLog:
    """The log of one session, written by its runner's thread and flushed by it
    or by the lease keeper's thread."""

    def __init__(self, session: ExecutionSession, agent: AIAgent) -> None:
        self.session = session
        self.agent = agent
        self._lock = threading.Lock()
        self._pending: list[SessionLogLine] = []
        self._lines = 0
        self._bytes = 0
        self._dropped = 0
        self._truncated = False
        self._last_flush = time.monotonic()

    @property
    def truncated(self) -> bool:
        return self._truncated

    def write(self, message: object, level: object = Level.INFO) -> None:
        text = storable_text(message, limit=MAX_LINE_CHARS)
        size = len(text.encode())
        with self._lock:
            if self._truncated or (
                self._lines >= SessionLogLine.MAX_LINES
                or self._bytes + size > SessionLogLine.MAX_BYTES
            ):
                self._truncated = True
                self._dropped += 1
                return
            self._lines += 1
            self._bytes += size
            self._pending.append(
                SessionLogLine(
                    session_id=self.session.pk,
                    seq=self._lines,
                    at=timezone.now(),
                    level=level_of(level),
                    message=text,
                )
            )
            due = (
                len(self._pending) >= FLUSH_LINES
                or time.monotonic() - self._last_flush >= settings.SCHEDULER_PROGRESS_MIN_INTERVAL
            )
        if due:
            self.flush()

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= settings.SCHEDULER_PROGRESS_MIN_INTERVAL:
            self.flush()

    def flush(self) -> None:
        """Write what is waiting (and the truncation, once); never raises into the run."""
        with self._lock:
            lines, self._pending = self._pending, []
            dropped, self._dropped = self._dropped, 0
            newly_truncated = self._truncated and not self.session.log_truncated
            self._last_flush = time.monotonic()
        if not lines and not dropped and not newly_truncated:
            return
        try:
            write_lines(self.session, self.agent, lines, truncated=newly_truncated)
        except Exception:
            logger.warning("%d log lines of %s not recorded", len(lines), self.session.pk)
            return
        if newly_truncated:
            self.session.log_truncated = True
        metrics.log_lines_dropped(dropped)


def write_lines(
    session: ExecutionSession,
    agent: AIAgent,
    lines: list[SessionLogLine],
    *,
    truncated: bool = False,
) -> None:
    SessionLogLine.objects.bulk_create(lines)
    if truncated:
        ExecutionSession.objects.filter(pk=session.pk).update(log_truncated=True)
    events.emit_log_lines(session, agent, lines[:FRAMES_PER_FLUSH])


def lines_after(session: ExecutionSession, after: int, limit: int) -> list[SessionLogLine]:
    return list(session.log_lines.filter(seq__gt=after).order_by("seq")[:limit])
