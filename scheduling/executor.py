"""Executes one admitted session on a worker: the runner, its context, its lease."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from agents.models import ExecutionSession
from agents.runners import RunCancelled, RunFailed, UnknownAgentType, get_runner
from core.text import storable_text
from scheduling import admission, pacing, runs
from scheduling.run_logs import RunLog

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)


def with_db_retry(action, *args, attempts: int = 5, **kwargs):
    """Call ``action``, reconnecting and retrying when the database connection broke.

    A database restart or a terminated connection must not leave a run
    RUNNING forever: the outcome is written as soon as the database answers
    again (and if it never does, the lease runs out and the run is reclaimed).
    """
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return action(*args, **kwargs)
        except DATABASE_ERRORS:
            if attempt == attempts:
                raise
            logger.warning("Database error in %s; reconnecting", action.__name__, exc_info=True)
            connection.close()
            time.sleep(delay)
            delay *= 2
    return None


class SessionContext:
    """What a runner sees of its run (agents.runners.RunContext)."""

    def __init__(self, session: ExecutionSession) -> None:
        agent = session.agent
        self.session = session
        self.session_id = str(session.pk)
        self.agent_id = str(agent.pk)
        self.agent_name = agent.name
        self.attempt = session.attempt
        self.configuration: dict[str, Any] = dict(agent.configuration or {})
        self.input: dict[str, Any] = dict(session.input or {})
        self.run_log = RunLog(session, agent)
        self.stopped = threading.Event()
        self.stop_reason = ""
        self._last_progress_at = 0.0
        self._last_progress: int | None = None

    def stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stopped.set()

    def check_cancelled(self) -> None:
        if self.stopped.is_set():
            raise RunCancelled(self.stop_reason)

    def sleep(self, seconds: float) -> None:
        if self.stopped.wait(timeout=max(0.0, seconds)):
            raise RunCancelled(self.stop_reason)

    def log(self, message: object, level: str = "INFO") -> None:
        self.run_log.write(message, level)

    def report_progress(self, percent: float, message: str = "") -> None:
        self.check_cancelled()
        progress = max(0, min(100, round(percent)))
        now = time.monotonic()
        # A chatty runner must not flood the channel layer; the last word
        # (100) always goes out.
        if (
            progress != 100
            and now - self._last_progress_at < settings.SCHEDULER_PROGRESS_MIN_INTERVAL
        ):
            return
        if progress == self._last_progress and progress == 100:
            return
        self._last_progress_at = now
        self._last_progress = progress
        try:
            with_db_retry(
                runs.record_progress, self.session, progress, storable_text(message, limit=500)
            )
        except DATABASE_ERRORS:
            logger.warning("Progress of %s not recorded", self.session_id)


class LeaseKeeper(threading.Thread):
    """Renews the run's lease while it lives, and stops the run when it is
    cancelled or has used up its time."""

    def __init__(self, context: SessionContext) -> None:
        super().__init__(name=f"lease-{context.session_id[:8]}", daemon=True)
        self.context = context
        self.finished = threading.Event()
        self.deadline = time.monotonic() + settings.SCHEDULER_RUN_TIMEOUT
        self.interval = min(1.0, settings.SCHEDULER_LEASE_SECONDS / 3)
        self.renew_every = settings.SCHEDULER_LEASE_SECONDS / 3

    def run(self) -> None:
        last_renewal = time.monotonic()
        try:
            while not self.finished.wait(self.interval):
                # A line logged just before a long wait would otherwise sit in
                # the buffer until the runner logs again.
                self.context.run_log.flush_if_due()
                if time.monotonic() >= self.deadline:
                    # Stop renewing: if the runner ignores the stop, the lease
                    # runs out and the reclaim records the timeout and frees the slot.
                    self.context.stop(f"Run timed out after {settings.SCHEDULER_RUN_TIMEOUT} s.")
                    return
                try:
                    if not with_db_retry(runs.session_is_running, self.context.session_id):
                        self.context.stop("Cancelled.")
                        return
                    if time.monotonic() - last_renewal >= self.renew_every:
                        if not with_db_retry(runs.renew_lease, self.context.session_id):
                            self.context.stop("Cancelled.")
                            return
                        last_renewal = time.monotonic()
                except DATABASE_ERRORS:
                    logger.warning("Cannot renew the lease of %s yet", self.context.session_id)
        finally:
            # This thread's own database connection.
            close_old_connections()
            connection.close()


def execute(session_id: str, *, worker: str = "") -> str | None:
    """Run an admitted session to its end; returns its final status.

    The worker that frees a slot fills it: the admission pass runs here,
    right after the run, instead of as one more message through the broker.
    """
    session = with_db_retry(runs.start_run, session_id, worker or socket.gethostname())
    if session is None:
        return None
    try:
        outcome = _run_to_end(session)
        if outcome == ExecutionSession.Status.CANCELLED:
            with_db_retry(runs.runner_stopped, session_id)
        return outcome
    finally:
        _fill_freed_slot()


def _fill_freed_slot() -> None:
    try:
        admitted = with_db_retry(admission.admit_waiting_runs, reclaim=False)
    except Exception:
        logger.warning("Admission after a run failed; asking the workers", exc_info=True)
        pacing.request_admission()
        admitted = []
    if not admitted:
        # A pass that started runs has the status broadcast itself, after
        # its commit; otherwise the finished run alone changed the figures.
        pacing.request_status_broadcast()


def _run_to_end(session: ExecutionSession) -> str | None:
    session_id = str(session.pk)
    context = SessionContext(session)
    keeper = LeaseKeeper(context)
    keeper.start()
    try:
        runner = get_runner(session.agent.agent_type)
        try:
            output = runner.run(context)
        finally:
            # The whole log is stored before the outcome is, so a client told
            # that the run ended can read all of it.
            context.run_log.flush()
    except RunCancelled as exc:
        if context.stop_reason.startswith("Run timed out"):
            _record_failure(session_id, context.stop_reason)
            return ExecutionSession.Status.FAILED
        logger.info("Session %s stopped: %s", session_id, exc)
        return ExecutionSession.Status.CANCELLED
    except UnknownAgentType:
        _record_failure(session_id, f"No runner is registered for {session.agent.agent_type!r}.")
        return ExecutionSession.Status.FAILED
    except RunFailed as exc:
        _record_failure(session_id, storable_text(exc) or "The run failed.")
        return ExecutionSession.Status.FAILED
    except Exception as exc:
        logger.exception("Session %s raised", session_id)
        _record_failure(session_id, _describe(exc))
        return ExecutionSession.Status.FAILED
    finally:
        keeper.finished.set()
        keeper.join(timeout=5)
    if context.stopped.is_set() and not context.stop_reason.startswith("Run timed out"):
        return ExecutionSession.Status.CANCELLED
    if _store_outcome(
        runs.finish_succeeded, session_id, output, session=session, admit_inline=True
    ):
        return ExecutionSession.Status.SUCCEEDED
    return None


def _describe(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {storable_text(exc)}"[:2000]


def _record_failure(session_id: str, error: str) -> None:
    _store_outcome(runs.finish_failed, session_id, error, admit_inline=True)


def _store_outcome(finish: Callable[..., bool], session_id: str, *args: Any, **kwargs: Any) -> bool:
    """Record how the run ended (True if recorded as given); if the database
    refuses that record, fail the run with why.

    Only a lost connection is left to the lease (the failure could not be
    written either). Any other refusal (a value the database will not take,
    a broken rule) is a failure of this attempt, recorded at once and
    retried like any other, so the slot is never held until the lease runs out.
    """
    try:
        return with_db_retry(finish, session_id, *args, **kwargs)
    except DATABASE_ERRORS:
        raise
    except Exception as exc:
        logger.exception("Could not store the outcome of session %s", session_id)
        reason = f"Could not store the run's result: {_describe(exc)}"
        with_db_retry(runs.finish_failed, session_id, reason, admit_inline=True)
        return False
