"""Run statistics in a real browser: the agent page's trends and the list's sparklines."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from agents.models import ExecutionSession
from tests.browser.conftest import BROWSER_TEST_MARKS, assert_accessible, sign_in
from tests.factories import AgentFactory, SessionFactory

pytestmark = BROWSER_TEST_MARKS
Status = ExecutionSession.Status


def some_runs(agent) -> int:
    """Two runs in the last hours (one succeeded, one failed) and one that succeeded
    three days ago; returns how many UTC days they fall on (2, or 3 just after midnight)."""
    now = timezone.now()
    ends = []
    for hours, status, duration in [(0, Status.SUCCEEDED, 1200), (2, Status.FAILED, 300)]:
        at = now - timedelta(hours=hours, minutes=1)
        SessionFactory(agent=agent, status=status, completed_at=at, duration_ms=duration)
        ends.append(at)
    three_days_ago = now - timedelta(days=3)
    SessionFactory(
        agent=agent, status=Status.SUCCEEDED, completed_at=three_days_ago, duration_ms=800
    )
    ends.append(three_days_ago)
    return len({end.astimezone(UTC).date() for end in ends})


def test_the_agent_page_charts_the_window_it_is_asked_for(web, operator, page: Page, page_errors):
    _, port = web
    agent = AgentFactory(owner=operator, name="Digest")
    days = some_runs(agent)
    sign_in(page, f"http://127.0.0.1:{port}", operator.username, f"/dashboard/agents/{agent.pk}/")

    figures = page.locator("#stats-figures")
    expect(figures.locator("dd").first).to_have_text("2")
    expect(figures).to_contain_text("50%")
    rate = page.locator("#stats-rate svg")
    expect(rate).to_have_attribute("aria-label", "Success rate per hour")
    expect(rate.locator("circle")).to_have_count(2)
    expect(page.locator("#stats-p95 svg polyline")).to_have_count(1)
    assert_accessible(page, "statistics, 24 hours")

    page.get_by_role("button", name="7 days").click()
    expect(page.get_by_role("button", name="7 days")).to_have_attribute("aria-pressed", "true")
    expect(figures.locator("dd").first).to_have_text("3")
    expect(page.locator("#stats-rate svg")).to_have_attribute("aria-label", "Success rate per day")
    expect(page.locator("#stats-rate svg circle")).to_have_count(days)
    assert page_errors == []


def test_the_agent_list_draws_a_sparkline_per_agent(web, operator, page: Page, page_errors):
    _, port = web
    busy = AgentFactory(owner=operator, name="Busy")
    some_runs(busy)
    AgentFactory(owner=operator, name="Quiet")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    sign_in(page, f"http://127.0.0.1:{port}", operator.username)

    row = page.locator(f'tr[data-agent-id="{busy.pk}"]')
    spark = row.locator(".c-last svg.spark")
    expect(spark).to_be_visible()
    expect(spark.locator("title")).to_have_text("2 runs in 24 h, 50% succeeded, p95 1.2 s")
    expect(spark.locator("rect.s-bad")).to_have_count(1)
    expect(page.locator("tr", has_text="Quiet").locator(".c-last")).to_have_text("Never run")
    assert_accessible(page, "agent list with sparklines")
    # One request for the whole list, none per agent.
    assert not [url for url in requests if f"/api/agents/{busy.pk}/stats" in url]
    assert len([url for url in requests if "/api/agents/stats" in url]) >= 1
    assert page_errors == []
