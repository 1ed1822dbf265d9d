"""Queue a manual run of an agent from the shell, optionally waiting for its outcome."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.models import AIAgent, ExecutionSession
from scheduling import runs

POLL_SECONDS = 0.2


class Command(BaseCommand):
    help = (
        "Queue a manual run of an agent, as POST /api/agents/{id}/run does. A worker picks it "
        "up when a slot is free. With --wait, follow the run and print its outcome; the exit "
        "status is then 0 only if it succeeded."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent_id", help="The agent's id (a UUID, as the API shows it).")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Wait until the run has finished, printing its progress and outcome.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=600.0,
            help="With --wait: stop waiting after this many seconds (default 600). "
            "The run itself goes on.",
        )

    def handle(self, *args: Any, agent_id: str, wait: bool, timeout: float, **options) -> None:
        agent = _find_agent(agent_id)
        session = runs.run_now(agent)
        self.stdout.write(f"Queued run {session.pk} of agent “{agent.name}”.")
        if wait:
            self._follow(session, timeout)

    def _follow(self, session: ExecutionSession, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen: tuple[str, int] | None = None
        while True:
            session.refresh_from_db()
            if (session.status, session.progress) != seen:
                seen = (session.status, session.progress)
                if not session.is_finished:
                    self.stdout.write(f"  {session.status.lower()} {session.progress}%")
            if session.is_finished:
                break
            if time.monotonic() >= deadline:
                hint = " Is a worker running?" if session.status == "QUEUED" else ""
                raise CommandError(
                    f"Run {session.pk} is still {session.status} after {timeout:g} s; "
                    f"it goes on without us.{hint}"
                )
            time.sleep(POLL_SECONDS)
        self._report(session)

    def _report(self, session: ExecutionSession) -> None:
        duration = f" in {session.duration_ms / 1000:.1f} s" if session.duration_ms else ""
        if session.status == ExecutionSession.Status.SUCCEEDED:
            self.stdout.write(self.style.SUCCESS(f"Succeeded{duration}: {session.output_summary}"))
            return
        retry = (
            ExecutionSession.objects.filter(
                agent_id=session.agent_id,
                trigger=ExecutionSession.Trigger.RETRY,
                scheduled_for=session.scheduled_for,
                attempt=session.attempt + 1,
            )
            .values_list("pk", flat=True)
            .first()
        )
        if retry is not None:
            self.stdout.write(f"A retry is queued: run {retry} (attempt {session.attempt + 1}).")
        raise CommandError(f"Run {session.status.lower()}{duration}: {session.error_message}")


def _find_agent(agent_id: str) -> AIAgent:
    try:
        pk = uuid.UUID(agent_id)
    except ValueError:
        pk = None
    agent = AIAgent.objects.filter(pk=pk).first() if pk else None
    if agent is None:
        raise CommandError(f"Agent {agent_id!r} not found.")
    return agent
