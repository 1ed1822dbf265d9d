"""The schedule editor, pausing and resuming, and the slot strip in a real browser."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from agents.audit import Actor
from agents.models import AIAgent, ExecutionSession
from scheduling.models import ScheduleSlot
from scheduling.services import set_schedule
from tests.browser.conftest import BROWSER_TEST_MARKS, assert_accessible, sign_in
from tests.factories import AgentFactory

pytestmark = BROWSER_TEST_MARKS


def open_agent_page(page: Page, port: int, operator, agent: AIAgent) -> None:
    sign_in(page, f"http://127.0.0.1:{port}", operator.username, f"/dashboard/agents/{agent.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")


def described_by(page: Page, control) -> str:
    """The text of the elements a control's aria-describedby names."""
    return page.evaluate(
        """control => (control.getAttribute("aria-describedby") || "").split(" ")
            .map(id => document.getElementById(id)).filter(Boolean)
            .map(node => node.textContent).join(" ")""",
        control.element_handle(),
    )


def test_setting_a_schedule_with_its_live_preview(web, operator, page: Page, page_errors):
    _, port = web
    agent = AgentFactory(owner=operator, name="Night report", configuration={"steps": 1})
    open_agent_page(page, port, operator, agent)
    expect(page.locator("#schedule-desc")).to_have_text("Not scheduled")

    page.get_by_role("button", name="Set a schedule").click()
    dialog = page.get_by_role("dialog", name="Set a schedule")
    expect(dialog).to_be_visible()
    cron = dialog.get_by_label("Cron expression")
    expect(cron).to_be_focused()
    assert_accessible(page, "schedule editor, empty")

    cron.fill("0 25 * * *")
    expect(cron).to_have_attribute("aria-invalid", "true")
    assert "hour value 25 is out of range 0-23" in described_by(page, cron)
    expect(dialog.locator("#cron-preview")).to_contain_text("No preview")
    assert_accessible(page, "schedule editor with an invalid expression")

    cron.fill("30 2 * * *")
    dialog.get_by_label("Timezone").fill("America/New_York")
    preview = dialog.locator("#cron-preview")
    expect(preview.locator(".preview-desc")).to_have_text("At 02:30 AM")
    expect(preview.locator(".preview-runs li")).to_have_count(5)
    expect(preview.locator(".dst-warnings li").first).to_contain_text("does not exist")
    expect(cron).not_to_have_attribute("aria-invalid", "true")

    dialog.get_by_label("Overlap policy").select_option("BUFFER_ALL")
    dialog.get_by_label("Catch-up policy").select_option("ALL")
    dialog.get_by_label("Catch-up window (seconds)").fill("600")
    jitter = dialog.get_by_label("Jitter (seconds)")
    jitter.fill("5000")
    dialog.get_by_role("button", name="Save schedule").click()
    # The server's refusal, next to the field it names; nothing stored.
    expect(jitter).to_have_attribute("aria-invalid", "true")
    expect(jitter).to_be_focused()
    assert "Must be between 0 and 3600 seconds." in described_by(page, jitter)
    assert AIAgent.objects.get(pk=agent.pk).schedule_expression is None
    assert_accessible(page, "schedule editor with a refused field")

    jitter.fill("30")
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#schedule-desc")).to_have_text("At 02:30 AM")
    facts = page.locator("#schedule-facts")
    expect(facts.locator('[data-field="overlap"]')).to_contain_text("Queue every slot")
    expect(facts.locator('[data-field="catchup"]')).to_contain_text("600 s window")
    expect(facts.locator('[data-field="jitter"]')).to_have_text("up to 30 s")
    expect(page.locator("#upcoming li")).to_have_count(5)
    edit = page.get_by_role("button", name="Edit schedule")
    expect(edit).to_be_focused()
    saved = AIAgent.objects.get(pk=agent.pk)
    assert saved.schedule_expression == "30 2 * * *"
    assert saved.schedule_timezone == "America/New_York"
    assert (saved.overlap_policy, saved.catchup_policy) == ("BUFFER_ALL", "ALL")
    assert (saved.catchup_window, saved.jitter_seconds, saved.schedule_enabled) == (600, 30, True)
    assert_accessible(page, "agent page with an edited schedule")

    # Escape leaves the editor without a change.
    edit.click()
    dialog = page.get_by_role("dialog", name="Edit the schedule")
    expect(dialog.get_by_label("Cron expression")).to_have_value("30 2 * * *")
    dialog.get_by_label("Cron expression").fill("*/5 * * * *")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(edit).to_be_focused()
    assert AIAgent.objects.get(pk=agent.pk).schedule_expression == "30 2 * * *"
    assert page_errors == []


def test_pausing_with_a_note_and_resuming_with_a_policy(web, operator, page: Page, page_errors):
    _, port = web
    agent = set_schedule(
        AgentFactory(owner=operator, name="Minutely sync", configuration={"steps": 1}),
        expression="* * * * *",
    )
    open_agent_page(page, port, operator, agent)

    page.get_by_role("button", name="Pause the schedule").click()
    dialog = page.get_by_role("dialog", name="Pause the schedule of Minutely sync")
    expect(dialog.get_by_label("Note (optional)")).to_be_focused()
    dialog.get_by_label("Note (optional)").fill("Waiting for the new API key")
    # Two days ahead on the browser's clock, as its datetime-local input takes it.
    until = page.evaluate(
        """() => {
            const date = new Date(Date.now() + 2 * 86400000);
            date.setSeconds(0, 0);
            return new Date(date - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
        }"""
    )
    dialog.get_by_label("Paused until (optional)").fill(until)
    assert_accessible(page, "pause dialog")
    dialog.get_by_role("button", name="Pause schedule").click()
    expect(dialog).to_be_hidden()

    pause = page.locator("#schedule-pause")
    expect(pause).to_be_visible()
    expect(pause).to_contain_text("Waiting for the new API key")
    expect(pause).to_contain_text("Resumes by itself on")
    expect(page.locator("#schedule-state")).to_have_text("Paused")
    paused = AIAgent.objects.get(pk=agent.pk)
    assert paused.schedule_enabled is False
    assert paused.pause_note == "Waiting for the new API key"
    assert paused.paused_until - timezone.now() > timedelta(days=1, hours=23)
    assert_accessible(page, "agent page paused with a note and an end")

    # Ten minutes of slots were missed meanwhile (eleven once the next minute starts).
    AIAgent.objects.filter(pk=agent.pk).update(
        paused_at=timezone.now().replace(second=1, microsecond=0) - timedelta(minutes=10)
    )
    page.get_by_role("button", name="Resume the schedule").click()
    dialog = page.get_by_role("dialog", name="Resume the schedule of Minutely sync")
    expect(dialog).to_contain_text("Paused: Waiting for the new API key")
    expect(dialog.locator(".resume-count")).to_have_text("Would run no missed slot.")
    dialog.get_by_label("Run every missed slot").check()
    expect(dialog.locator(".resume-count")).to_have_text(re.compile(r"Would run 1[01] slots:"))
    expect(dialog.locator(".resume-runs li").nth(9)).to_be_visible()
    dialog.get_by_label("Run the most recent missed slot").check()
    expect(dialog.locator(".resume-count")).to_have_text("Would run 1 slot:")
    expect(dialog.locator(".resume-runs li")).to_have_count(1)
    assert_accessible(page, "resume dialog with its dry run")
    assert AIAgent.objects.get(pk=agent.pk).schedule_enabled is False

    dialog.get_by_role("button", name="Resume schedule").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#schedule-state")).to_have_text("Active")
    expect(pause).to_be_hidden()
    expect(page.locator("#upcoming li")).to_have_count(5)
    resumed = AIAgent.objects.get(pk=agent.pk)
    assert (resumed.schedule_enabled, resumed.pause_note, resumed.paused_until) == (True, "", None)
    assert ExecutionSession.objects.filter(agent=agent).count() == 1
    assert_accessible(page, "agent page resumed")
    assert page_errors == []


REASONS = {
    ScheduleSlot.Outcome.RAN: "Its run started.",
    ScheduleSlot.Outcome.SKIPPED: "Skipped (overlap policy SKIP): the run was still running.",
    ScheduleSlot.Outcome.CANCELLED: "Cancelled by a person before its run started.",
    ScheduleSlot.Outcome.MISSED: "Missed: beyond the catch-up window of 300 s.",
    ScheduleSlot.Outcome.BACKFILL: "Backfilled on request.",
    ScheduleSlot.Outcome.QUEUED: "Queued to start after the run before.",
}


def test_the_slot_strip_shows_each_outcome_by_pointer_and_keyboard(
    web, operator, page: Page, page_errors, settings
):
    _, port = web
    agent = set_schedule(
        AgentFactory(owner=operator, name="Five-minute poll", configuration={"steps": 1}),
        expression="*/5 * * * *",
    )
    newest = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    outcomes = list(REASONS)  # oldest first
    for index, outcome in enumerate(outcomes):
        ScheduleSlot.objects.create(
            agent=agent,
            scheduled_for=newest - timedelta(minutes=5 * (len(outcomes) - 1 - index)),
            outcome=outcome,
            reason=REASONS[outcome],
        )
    open_agent_page(page, port, operator, agent)

    strip = page.get_by_role("list", name="Latest slots, oldest first")
    slots = strip.get_by_role("button")
    expect(slots).to_have_count(6)
    for index, outcome in enumerate(outcomes):
        expect(slots.nth(index)).to_have_attribute("data-outcome", outcome)
        expect(slots.nth(index)).to_have_accessible_name(
            re.compile(rf": {outcome.label}\. {re.escape(REASONS[outcome])}$")
        )
    # One stop in the tab order, on the newest slot.
    assert strip.locator('[tabindex="0"]').count() == 1
    expect(slots.last).to_have_attribute("tabindex", "0")

    slots.nth(1).hover()
    detail = page.locator("#slot-detail")
    expect(detail).to_contain_text("Skipped · " + REASONS[ScheduleSlot.Outcome.SKIPPED])

    slots.last.focus()
    expect(detail).to_contain_text("Queued · ")
    page.keyboard.press("ArrowLeft")
    expect(slots.nth(4)).to_be_focused()
    expect(detail).to_contain_text("Backfill · Backfilled on request.")
    page.keyboard.press("Home")
    expect(slots.first).to_be_focused()
    expect(detail).to_contain_text("Ran · Its run started.")
    page.keyboard.press("ArrowRight")
    expect(detail).to_contain_text("Skipped · ")
    assert_accessible(page, "slot strip with a slot focused")

    # A new slot shows up by itself, and the focused one keeps focus.
    ScheduleSlot.objects.create(
        agent=agent,
        scheduled_for=newest + timedelta(minutes=5),
        outcome=ScheduleSlot.Outcome.MISSED,
        reason="Missed: no beat ran at the time.",
    )
    expect(slots).to_have_count(7, timeout=30_000)
    expect(slots.nth(1)).to_be_focused()
    expect(slots.last).to_have_attribute("data-outcome", "MISSED")
    assert page_errors == []


def test_the_changes_card_lists_the_trail_and_follows_the_pages_own_changes(
    web, operator, page: Page, page_errors
):
    _, port = web
    agent = AgentFactory(owner=operator, name="Audited", configuration={"steps": 1})
    set_schedule(agent, expression="0 9 * * *", actor=Actor.user(operator, "API"))
    open_agent_page(page, port, operator, agent)
    changes = page.get_by_role("list", name="Changes")
    first = changes.get_by_role("listitem").first
    expect(first).to_contain_text("operator (API) · Set the schedule")
    expect(first).to_contain_text("scheduleExpression: none → 0 9 * * *")

    page.get_by_role("button", name="Pause the schedule").click()
    dialog = page.get_by_role("dialog", name="Pause the schedule of Audited")
    dialog.get_by_label("Note (optional)").fill("Quiet week")
    dialog.get_by_role("button", name="Pause schedule").click()
    expect(page.locator("#schedule-state")).to_have_text("Paused")
    # The page's own change shows up without a reload, newest first.
    expect(first).to_contain_text("operator (API) · Paused the schedule")
    expect(first).to_contain_text("pauseNote: none → Quiet week")
    expect(changes.locator(":scope > li")).to_have_count(2)
    assert_accessible(page, "agent page with its changes")
    assert page_errors == []
