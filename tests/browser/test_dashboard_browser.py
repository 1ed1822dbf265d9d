"""The dashboard in a real browser, against real daphne, worker, beat and Redis."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from agents.models import AIAgent, ExecutionSession
from scheduling import runs
from scheduling.services import set_schedule
from tests.browser.conftest import (
    BROWSER_TEST_MARKS,
    OUTPUT,
    PASSWORD,
    SERVER_ENV,
    assert_accessible,
    sign_in,
)
from tests.factories import AgentFactory, SessionFactory
from tests.processes import start_daphne, wait_until

pytestmark = BROWSER_TEST_MARKS

DEMO = {"steps": 4, "stepSeconds": 0.5}


def demo_agent(owner, name: str, cron: str, **schedule) -> AIAgent:
    agent = AgentFactory(owner=owner, name=name, configuration=DEMO)
    return set_schedule(agent, expression=cron, **schedule)


def past_runs(agent: AIAgent, outcomes: str) -> None:
    """Finished runs, oldest first: "s" succeeded, "f" failed."""
    now = timezone.now()
    for index, outcome in enumerate(outcomes):
        started = now - timedelta(hours=len(outcomes) - index)
        ok = outcome == "s"
        SessionFactory(
            agent=agent,
            trigger=ExecutionSession.Trigger.SCHEDULE,
            scheduled_for=started,
            started_at=started,
            completed_at=started + timedelta(seconds=2 + index % 3),
            status=ExecutionSession.Status.SUCCEEDED if ok else ExecutionSession.Status.FAILED,
            success=ok,
            duration_ms=(2 + index % 3) * 1000,
            output_summary="Published 3 drafts" if ok else "",
            error_message="" if ok else "Upstream API answered 503",
            progress=100 if ok else 50,
        )


def row(page: Page, agent: AIAgent):
    return page.locator(f'#agents-table tr[data-agent-id="{agent.pk}"]')


# Every place each button of the table has been in, sampled every frame.
WATCH_BUTTONS = """() => {
    const places = new Map();
    const sample = () => {
        for (const button of document.querySelectorAll("#agents-table button[data-action]")) {
            const box = button.getBoundingClientRect();
            const label = button.getAttribute("aria-label");
            if (!places.has(label)) places.set(label, new Set());
            places.get(label).add(Math.round(box.x + scrollX) + "," + Math.round(box.y + scrollY));
        }
        requestAnimationFrame(sample);
    };
    sample();
    window.movedButtons = () => [...places]
        .filter(([, seen]) => seen.size > 1)
        .map(([label, seen]) => label + ": " + [...seen].join(" then "));
}"""


# The highest value each progress bar has shown since, by agent.
WATCH_PROGRESS = """() => {
    const peaks = new Map();
    new MutationObserver(records => {
        for (const { target } of records) {
            const id = target.getAttribute("data-progress-for");
            const value = Number(target.getAttribute("aria-valuenow"));
            if (id) peaks.set(id, Math.max(peaks.get(id) || 0, value));
        }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ["aria-valuenow"] });
    window.progressPeak = id => peaks.get(id) || 0;
}"""

# Buttons of the agents table not fully inside the box the table shows: the
# part of the table inside its scroll box.
BUTTONS_OUTSIDE_TABLE = """() => {
    const table = document.querySelector("#agents-table");
    const wrap = table.closest(".table-wrap");
    const outer = wrap.getBoundingClientRect();
    const inner = table.getBoundingClientRect();
    const left = Math.max(outer.left + wrap.clientLeft, inner.left);
    const right = Math.min(outer.left + wrap.clientLeft + wrap.clientWidth, inner.right);
    return [...table.querySelectorAll("button[data-action]")]
        .map(button => [button.getAttribute("aria-label"), button.getBoundingClientRect()])
        .filter(([, box]) => box.left < left || box.right > right)
        .map(([label, box]) => `${label}: ${Math.round(box.left)}-${Math.round(box.right)}`
            + ` outside ${Math.round(left)}-${Math.round(right)}`);
}"""

# Window widths at which the table has room for all of itself: from where it
# just fits under the live column (1050 px) up, on both sides of where the
# live column moves beside it (1386 px).
FULL_TABLE_WIDTHS = [1050, 1100, 1280, 1385, 1386, 1400, 1440, 1920]


def assert_buttons_inside_table(page: Page, widths: list[int]) -> None:
    viewport = page.viewport_size
    assert viewport is not None
    try:
        for width in widths:
            page.set_viewport_size({"width": width, "height": viewport["height"]})
            assert page.evaluate(BUTTONS_OUTSIDE_TABLE) == [], f"at {width} px"
    finally:
        page.set_viewport_size(viewport)


def test_signing_in_to_an_empty_dashboard_meets_wcag_aa(web, operator, page: Page):
    _, port = web
    base = f"http://127.0.0.1:{port}"
    page.goto(f"{base}/dashboard/login/")
    assert_accessible(page, "sign-in page")

    page.fill("#id_username", operator.username)
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".form-error")).to_be_visible()
    assert_accessible(page, "sign-in page with an error")

    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    assert_accessible(page, "agents page without agents")

    page.goto(f"{base}/dashboard/agents/00000000-0000-0000-0000-000000000000/")
    assert_accessible(page, "page of an unknown agent")


def test_an_operator_runs_an_agent_live_and_pauses_its_schedule(
    worker, beat, web, operator, page: Page, page_errors
):
    _, port = web
    base = f"http://127.0.0.1:{port}"
    agent = demo_agent(operator, "Blog drafts", "0 9 * * 1-5", timezone_name="Europe/Berlin")
    # Company for the screenshot: what an operator's dashboard looks like.
    past_runs(agent, "ssfsss")
    seo = AgentFactory(
        owner=operator, name="SEO audit", configuration={"steps": 8, "stepSeconds": 0.6}
    )
    set_schedule(seo, expression="*/30 * * * *")
    past_runs(seo, "sssfs")
    newsletter = AgentFactory(owner=operator, name="Newsletter", agent_type="demo")
    set_schedule(newsletter, expression="0 7 * * 1", enabled=False)
    past_runs(newsletter, "ss")
    AgentFactory(owner=operator, name="Ad-hoc research")
    enrichment = demo_agent(operator, "Lead enrichment", "@hourly")
    past_runs(enrichment, "ssf")
    AIAgent.objects.filter(pk=enrichment.pk).update(
        status=AIAgent.Status.ERROR, retry_count=4, last_error="Upstream API answered 503"
    )

    sign_in(page, base, operator.username)
    # Production mode serves the styles itself: the page is styled, not bare HTML.
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(244, 246, 251)"
    assert page.request.get(f"{base}/static/dashboard/core.js").ok
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.locator("#stat-beat [data-field=beat]")).to_have_text("Alive")
    expect(row(page, agent).locator(".c-schedule")).to_contain_text("0 9 * * 1-5")
    expect(row(page, agent).locator(".c-next time")).to_be_visible()
    assert_accessible(page, "agents page")
    # Every row's buttons in full, whatever the width: the table never
    # scrolls while it has the room.
    assert_buttons_inside_table(page, FULL_TABLE_WIDTHS)
    page.evaluate("window.loadedOnce = true")
    # Live updates must not move a button under the pointer: the click would
    # land on whatever took its place.
    page.evaluate(WATCH_BUTTONS)

    row(page, seo).get_by_role("button", name="Run SEO audit now").click()
    row(page, agent).get_by_role("button", name="Run Blog drafts now").click()

    bar = page.locator(f'[data-progress-for="{agent.pk}"]')
    expect(bar).to_be_visible()
    page.wait_for_function(
        """id => {
            const bar = document.querySelector(`[data-progress-for="${id}"]`);
            const value = Number(bar && bar.getAttribute("aria-valuenow"));
            return value >= 50;
        }""",
        arg=str(agent.pk),
        polling=50,
    )
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "dashboard-mid-run.png"))
    # A finished run's bar stays at 100 for a few seconds only, which the
    # checks mid-run can outlast on a busy machine: its values are recorded.
    page.evaluate(WATCH_PROGRESS)
    assert page.evaluate(BUTTONS_OUTSIDE_TABLE) == []
    assert_accessible(page, "agents page mid-run")

    page.wait_for_function(
        "id => window.progressPeak(id) === 100", arg=str(agent.pk), timeout=30_000
    )
    completed = page.locator('#feed .feed-item[data-kind="completed"]', has_text="Blog drafts")
    expect(completed).to_be_visible()
    expect(completed).to_contain_text("completed in")
    expect(row(page, agent).locator(".c-last")).to_contain_text("Succeeded")
    assert page.evaluate("window.loadedOnce") is True, "the page was reloaded"
    assert page.evaluate("window.movedButtons()") == []

    row(page, agent).get_by_role("button", name="Pause the schedule of Blog drafts").click()
    dialog = page.get_by_role("dialog", name="Pause the schedule of Blog drafts")
    dialog.get_by_label("Note (optional)").fill("Editor on holiday")
    assert_accessible(page, "agents page with the pause dialog")
    dialog.get_by_role("button", name="Pause schedule").click()
    expect(dialog).to_be_hidden()
    next_run = row(page, agent).locator(".c-next")
    expect(next_run).to_have_text("Paused")
    expect(next_run.locator("time")).to_have_count(0)
    wait_until(
        lambda: not AIAgent.objects.get(pk=agent.pk).schedule_enabled, what="schedule paused"
    )
    assert AIAgent.objects.get(pk=agent.pk).next_run_at is None

    assert_accessible(page, "agents page with a paused schedule")

    assert AIAgent.objects.get(pk=agent.pk).pause_note == "Editor on holiday"

    row(page, agent).get_by_role("button", name="Resume the schedule of Blog drafts").click()
    dialog = page.get_by_role("dialog", name="Resume the schedule of Blog drafts")
    expect(dialog.locator(".resume-count")).to_have_text("Would run no missed slot.")
    dialog.get_by_role("button", name="Resume schedule").click()
    expect(next_run.locator("time")).to_be_visible()
    assert page.evaluate("window.loadedOnce") is True

    # The agent's page with its schedule and runs, failed ones among them.
    row(page, agent).get_by_role("link", name="Blog drafts").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.locator("#history tbody tr")).to_have_count(7)
    assert_accessible(page, "agent page with runs")
    assert page_errors == []


def test_the_agent_page_catches_up_after_the_socket_drops(
    worker, web, operator, page: Page, page_errors
):
    daphne, port = web
    base = f"http://127.0.0.1:{port}"
    agent = demo_agent(operator, "Weekly report", "30 6 * * *")
    path = f"/dashboard/agents/{agent.pk}/"

    sign_in(page, base, operator.username, next_path=path)
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.locator("#upcoming li")).to_have_count(5)
    expect(page.locator("#schedule-desc")).to_contain_text("06:30")
    expect(page.locator("#history-empty")).to_be_visible()
    assert_accessible(page, "agent page without runs")
    page.evaluate("window.loadedOnce = true")

    # The server goes away; a run happens meanwhile, unseen by the page.
    daphne.stop()
    expect(page.locator("#connection")).to_have_attribute(
        "data-state", re.compile("waiting|connecting")
    )
    assert_accessible(page, "agent page while the socket is down")
    session = runs.run_now(agent)
    wait_until(lambda: ExecutionSession.objects.get(pk=session.pk).is_finished, what="run finished")

    # Back again on the same address: the page reconnects and reads what it missed.
    restarted, _ = start_daphne(port=port, **SERVER_ENV)
    try:
        expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=45_000)
        expect(page.locator("#history tbody tr")).to_have_count(1)
        expect(page.locator("#history tbody tr").first).to_contain_text("Succeeded")
        expect(page.locator("#page-info")).to_have_text("Runs 1\u20131 of 1")
        expect(page.locator("#chart svg rect")).to_have_count(1)
        # The missed run's log is read too: its first line, a line per step.
        log = page.locator("#run-log .log-line")
        expect(log).to_have_count(5)
        expect(log.first).to_contain_text("Attempt 1: 4 steps of 0.5 s.")
        expect(page.locator("#log-note")).to_have_text("Attempt 1, 5 lines")

        # Live again: the next run is watched as it happens.
        page.get_by_role("button", name="Run now").click()
        expect(page.locator(f'[data-progress-for="{agent.pk}"]')).to_have_attribute(
            "aria-valuenow", "100", timeout=30_000
        )
        expect(page.locator("#page-info")).to_have_text("Runs 1\u20132 of 2")
        # The new run's log replaced the last one's, line by line as it ran.
        expect(log).to_have_count(5)
        expect(log.last).to_contain_text("Step 4 of 4 done.")
        expect(log.last.locator(".log-level")).to_have_text("INFO")
        assert_accessible(page, "agent page after a live run")

        page.get_by_role("button", name="Pause the schedule").click()
        page.get_by_role("dialog").get_by_role("button", name="Pause schedule").click()
        expect(page.locator("#upcoming li")).to_have_count(0)
        expect(page.locator("#upcoming-empty")).to_be_visible()
        assert_accessible(page, "agent page with a paused schedule")
        assert page.evaluate("window.loadedOnce") is True, "the page was reloaded"
        assert page_errors == []
    finally:
        restarted.stop()
