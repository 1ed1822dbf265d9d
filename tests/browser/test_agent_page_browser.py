"""An agent's page with a week behind it: its log, slots, alerts and trends.

The screenshot it leaves in tests/output (agent-page.png) is the one in docs/.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from agents.models import AIAgent, ExecutionSession
from scheduling import incidents
from scheduling.models import AlertChannel, AlertRule, Incident, ScheduleSlot
from scheduling.run_logs import RunLog
from scheduling.services import set_schedule
from tests.browser.conftest import BROWSER_TEST_MARKS, OUTPUT, assert_accessible, sign_in
from tests.factories import AgentFactory, SessionFactory

pytestmark = BROWSER_TEST_MARKS
Status = ExecutionSession.Status
Outcome = ScheduleSlot.Outcome

LOG = [
    ("INFO", "Reading 12 briefs from the content calendar"),
    ("INFO", "Drafting 'Spring launch: what is new'"),
    ("WARNING", "Image service slow (2.4 s); using the cached hero image"),
    ("INFO", "Drafting 'Five ways to reuse a webinar'"),
    ("INFO", "Drafting 'Customer story: Nordlicht GmbH'"),
    ("INFO", "Checking links: 31 of 31 answer"),
    ("INFO", "Published 3 drafts for review"),
]


def a_week_of_runs(agent: AIAgent) -> ExecutionSession:
    """Every four hours for a week, a few of them failed; returns the last run."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    last = None
    for n in range(42, 0, -1):
        due = now - timedelta(hours=4 * n)
        if n in (5, 9):
            ScheduleSlot.objects.create(
                agent=agent,
                scheduled_for=due,
                outcome=Outcome.SKIPPED if n == 5 else Outcome.MISSED,
                reason="Skipped (overlap policy SKIP): still running."
                if n == 5
                else "Missed: beyond the catch-up window of 300 s.",
            )
            continue
        failed = n % 9 == 4
        duration = 2400 + (n * 733) % 2600 + (4000 if n % 7 == 3 else 0)
        last = SessionFactory(
            agent=agent,
            trigger=ExecutionSession.Trigger.SCHEDULE,
            scheduled_for=due,
            started_at=due,
            completed_at=due + timedelta(milliseconds=duration),
            status=Status.FAILED if failed else Status.SUCCEEDED,
            success=not failed,
            duration_ms=duration,
            output_summary="" if failed else "Published 3 drafts",
            error_message="Upstream API answered 503" if failed else "",
        )
        ScheduleSlot.objects.create(
            agent=agent,
            scheduled_for=due,
            outcome=Outcome.RAN,
            reason="Its run started.",
            session=last,
        )
    assert last is not None
    AIAgent.objects.filter(pk=agent.pk).update(last_run_at=last.completed_at)
    return last


def test_the_agent_page_shows_its_log_slots_and_trends(web, operator, page: Page, page_errors):
    _, port = web
    agent = set_schedule(
        AgentFactory(owner=operator, name="Blog drafts", configuration={"steps": 3}),
        expression="0 */4 * * *",
    )
    last = a_week_of_runs(agent)
    log = RunLog(last, agent)
    for level, message in LOG:
        log.write(message, level)
    log.flush()
    channel = AlertChannel.objects.create(
        owner=operator, name="Content team", kind="email", target="content@example.com"
    )
    rule = AlertRule.objects.create(agent=agent, max_duration_seconds=8, failures_in_a_row=3)
    rule.channels.add(channel)
    incidents.open_incident(agent, Incident.Kind.OVERRUN, "The 08:00 run went on for 9 s.")

    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, f"http://127.0.0.1:{port}", operator.username, f"/dashboard/agents/{agent.pk}/")
    expect(page.locator("#run-log li")).to_have_count(len(LOG))
    expect(page.locator("#run-log")).to_contain_text("Published 3 drafts for review")
    slots = page.get_by_role("list", name="Latest slots, oldest first").get_by_role("button")
    expect(slots.last).to_have_attribute("data-outcome", "RAN")
    expect(page.locator('#slots [data-outcome="MISSED"]')).to_have_count(1)
    expect(page.locator("#alerts-list li")).to_have_count(1)
    expect(page.locator("#rules-form").get_by_label("Content team")).to_be_checked()

    week_start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=6
    )
    in_week = [
        session.completed_at
        for session in ExecutionSession.objects.filter(agent=agent, completed_at__gte=week_start)
    ]
    page.get_by_role("button", name="7 days").click()
    expect(page.locator("#stats-figures dd").first).to_have_text(str(len(in_week)))
    days = {moment.date() for moment in in_week if moment is not None}
    expect(page.locator("#stats-rate svg circle")).to_have_count(len(days))
    expect(page.locator("#stats-p95 svg polyline")).to_have_count(1)
    assert_accessible(page, "the agent page of a busy agent")

    expect(page.locator('[aria-busy="true"]')).to_have_count(0)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "agent-page.png"), full_page=True)
    assert page_errors == []
