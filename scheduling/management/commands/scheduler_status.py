"""Print the scheduler's live figures and the scheduled agents."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from djangorestframework_camel_case.util import camelize

from agents.models import AIAgent, Priority
from agents.services import scheduled_agents
from core.dates import iso
from scheduling.schedules import schedule_description
from scheduling.stats import camel_stats, running_agent_ids, scheduler_stats, task_details


class Command(BaseCommand):
    help = (
        "Print the scheduler's figures (beat alive, scheduled, running and queued counts, the "
        "concurrency cap), read from the database and Redis, and every agent with an enabled "
        "schedule, next run first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print JSON shaped like GET /api/agents/scheduler/status's data instead.",
        )

    def handle(self, *args: Any, as_json: bool = False, **options: Any) -> None:
        stats = scheduler_stats()
        agents = list(scheduled_agents().select_related("owner").order_by("next_run_at", "name"))
        running = running_agent_ids(agents)
        if as_json:
            self._print_json(stats, agents, running)
        else:
            self._print_table(stats, agents, running)

    def _print_json(self, stats: dict[str, Any], agents: list[AIAgent], running: set) -> None:
        data = {
            **camel_stats(stats),
            "tasks": [
                camelize(task_details(agent, is_running=agent.pk in running)) for agent in agents
            ],
        }
        self.stdout.write(json.dumps(data, indent=2))

    def _print_table(self, stats: dict[str, Any], agents: list[AIAgent], running: set) -> None:
        beat = "running" if stats["is_running"] else "NOT running (no recent heartbeat)"
        self.stdout.write(f"Beat:              {beat}")
        self.stdout.write(f"Scheduled agents:  {stats['scheduled_tasks_count']}")
        self.stdout.write(
            f"Running agents:    {stats['running_agents_count']} "
            f"of at most {stats['max_concurrent_agents']}"
        )
        self.stdout.write(f"Queued runs:       {stats['queued_tasks_count']}")
        if not agents:
            self.stdout.write("\nNo agent has an enabled schedule.")
            return
        self.stdout.write("")
        rows = [("NEXT RUN (UTC)", "PRIORITY", "STATUS", "AGENT", "SCHEDULE", "ID")]
        for agent in agents:
            status = "RUNNING" if agent.pk in running else agent.status
            rows.append(
                (
                    (iso(agent.next_run_at) or "-").replace("T", " "),
                    Priority(agent.priority).name,
                    status,
                    agent.name,
                    _describe(agent),
                    str(agent.pk),
                )
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]))


def _describe(agent: AIAgent) -> str:
    return schedule_description(agent, with_zone=True) or ""
