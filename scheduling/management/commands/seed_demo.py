"""Create the demo user and a few scheduled demo agents: what a newcomer sees first."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from agents import services
from agents.audit import SYSTEM
from agents.models import AIAgent, Priority
from agents.runners import get_runner
from scheduling import alerts
from scheduling import services as schedules
from scheduling.cron import describe, parse_cron
from scheduling.models import AlertChannel

USERNAME = "demo"
DEFAULT_PASSWORD = "neonhub-demo"
# What the demo user may do in the admin: its agents, their runs, beat's entries.
ADMIN_APPS = ("agents", "scheduling", "django_celery_beat")
# Where the demo's alerts go: with DEBUG (as `make run` sets it) Django's
# console email backend prints them in the worker's output.
DEMO_CHANNEL = {"name": "Demo inbox", "kind": "email", "target": "demo@localhost"}


@dataclass(frozen=True)
class DemoAgent:
    name: str
    expression: str
    priority: Priority
    configuration: dict[str, Any]
    timezone: str = "UTC"
    enabled: bool = True
    agent_type: str = "demo"
    # Alert thresholds (scheduling.alerts.THRESHOLDS), sent to the demo inbox.
    alert_rules: dict[str, int] | None = None


DEMO_AGENTS = (
    DemoAgent(
        name="Content creator",
        expression="*/2 * * * *",
        priority=Priority.HIGH,
        configuration={"steps": 5, "stepSeconds": 2, "output": "Drafted three blog posts."},
        # Its runs take about 10 s: each one opens an OVERRUN alert halfway
        # and resolves it as it ends, so a newcomer sees the whole loop.
        alert_rules={"max_duration_seconds": 5, "failures_in_a_row": 3},
    ),
    DemoAgent(
        name="SEO audit",
        expression="*/5 * * * *",
        priority=Priority.NORMAL,
        # Fails its first attempt each time, so a retry can be watched.
        configuration={
            "steps": 4,
            "stepSeconds": 1.5,
            "failTimes": 1,
            "output": "Checked 120 pages, 4 broken links.",
        },
    ),
    DemoAgent(
        name="Heartbeat",
        expression="* * * * *",
        priority=Priority.LOW,
        configuration={"steps": 2, "stepSeconds": 0.5, "output": "All systems nominal."},
        alert_rules={"late_after_seconds": 120, "pause_after_failures": 5},
    ),
    DemoAgent(
        name="Weekly newsletter",
        expression="0 9 * * mon",
        priority=Priority.CRITICAL,
        timezone="Europe/Berlin",
        configuration={"steps": 3, "stepSeconds": 1, "output": "Sent to 2,400 subscribers."},
    ),
)


class Command(BaseCommand):
    help = (
        f"Create the demo user {USERNAME!r} and a few demo agents on schedules of different "
        "priorities, then print how to sign in. Safe to run again: what exists is left as it "
        "is (pass --password to reset the demo user's password)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            help=f"Password for the demo user. Default: {DEFAULT_PASSWORD!r}, which is only "
            "accepted while DEBUG is on.",
        )

    @transaction.atomic
    def handle(self, *args: Any, password: str | None = None, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(username=USERNAME).first()
        if password is None and user is None and not settings.DEBUG:
            raise CommandError(
                "DEBUG is off: pass --password, the default demo password is public."
            )
        if user is None:
            user = User.objects.create_user(USERNAME, password=password or DEFAULT_PASSWORD)
            self.stdout.write(f"Created the user {USERNAME!r}.")
        elif password is not None:
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"Reset the password of {USERNAME!r}.")
        else:
            self.stdout.write(f"The user {USERNAME!r} already exists.")
        self._allow_admin(user)

        channel = self._seed_channel(user)
        for demo in DEMO_AGENTS:
            self._seed_agent(user, demo, channel)
        self._print_sign_in(user, password)

    def _allow_admin(self, user: Any) -> None:
        # Staff to get past the sign-in page (admin and dashboard); permissions
        # limited to the scheduler's own models.
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label__in=ADMIN_APPS)
        )

    def _seed_channel(self, user: Any) -> AlertChannel:
        channel = AlertChannel.objects.filter(owner=user, name=DEMO_CHANNEL["name"]).first()
        if channel is None:
            channel = AlertChannel.objects.create(
                owner=user, secret=secrets.token_hex(32), **DEMO_CHANNEL
            )
            self.stdout.write(
                f"Created the alert channel {channel.name!r} ({channel.target}, printed by "
                "the worker while DEBUG is on)."
            )
        return channel

    def _seed_agent(self, user: Any, demo: DemoAgent, channel: AlertChannel) -> None:
        if AIAgent.objects.filter(owner=user, name=demo.name).exists():
            self.stdout.write(f"  {demo.name}: already there, left as it is.")
            return
        configuration = get_runner(demo.agent_type).validate_configuration(demo.configuration)
        agent = services.create_agent(
            owner=user, name=demo.name, agent_type=demo.agent_type, configuration=configuration
        )
        schedules.set_schedule(
            agent,
            expression=demo.expression,
            timezone_name=demo.timezone,
            priority=demo.priority,
            enabled=demo.enabled,
        )
        if demo.alert_rules:
            alerts.set_rules(agent, channels=[channel], actor=SYSTEM, **demo.alert_rules)
        when = describe(parse_cron(demo.expression))
        zone = "" if demo.timezone == "UTC" else f" ({demo.timezone})"
        self.stdout.write(f"  {demo.name}: created, {when}{zone}, priority {demo.priority.name}.")

    def _print_sign_in(self, user: Any, password: str | None) -> None:
        if password is not None:
            shown = password
        elif user.check_password(DEFAULT_PASSWORD):
            shown = DEFAULT_PASSWORD
        else:
            shown = "(its password, unchanged)"
        base = f"http://127.0.0.1:{settings.PORT}"
        self.stdout.write(
            self.style.SUCCESS(
                f"Sign in at {base}/dashboard/ or {base}/admin/ as {USERNAME} / {shown}"
            )
        )
