"""Delete the finished sessions the retention rules let go, as beat does daily."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scheduling.retention import prune_sessions


class Command(BaseCommand):
    help = (
        "Delete finished sessions older than SESSION_RETENTION_DAYS and those beyond each "
        "agent's newest SESSION_RETENTION_PER_AGENT, with their ledger rows, in batches. "
        "Queued and running sessions are never deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--days",
            type=int,
            help=f"Age rule in days, 0 for none (default SESSION_RETENTION_DAYS, "
            f"{settings.SESSION_RETENTION_DAYS}).",
        )
        parser.add_argument(
            "--per-agent",
            type=int,
            help=f"Sessions kept per agent, 0 for no cap (default SESSION_RETENTION_PER_AGENT, "
            f"{settings.SESSION_RETENTION_PER_AGENT}).",
        )

    def handle(
        self,
        *args: Any,
        dry_run: bool = False,
        days: int | None = None,
        per_agent: int | None = None,
        **options: Any,
    ) -> None:
        for name, value in (("--days", days), ("--per-agent", per_agent)):
            if value is not None and value < 0:
                raise CommandError(f"{name} must be 0 or more, got {value}.")
        result = prune_sessions(dry_run=dry_run, days=days, per_agent=per_agent)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {result.sessions} finished sessions of {len(result.agents)} agents "
            f"({result.by_age} by age, {result.by_count} beyond the per-agent cap) "
            f"and {result.slots} ledger rows."
        )
        if result.incidents:
            self.stdout.write(f"{verb} {result.incidents} alerts resolved before the age rule.")
