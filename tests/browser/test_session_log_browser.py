"""The session admin follows a running session's log in a real browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from agents.models import ExecutionSession
from scheduling.run_logs import RunLog
from tests.browser.conftest import BROWSER_TEST_MARKS, sign_in
from tests.factories import AgentFactory, SessionFactory

pytestmark = BROWSER_TEST_MARKS


def test_the_session_admin_adds_lines_while_the_run_goes_on(web, operator, page: Page, page_errors):
    _, port = web
    # The session admin is the superuser's (a staff user needs the permissions).
    operator.is_superuser = True
    operator.save(update_fields=["is_superuser"])
    session = SessionFactory(
        agent=AgentFactory(owner=operator), status=ExecutionSession.Status.RUNNING
    )
    log = RunLog(session, session.agent)
    log.write("Fetching sources")
    log.flush()
    path = f"/admin/agents/executionsession/{session.pk}/change/"

    sign_in(page, f"http://127.0.0.1:{port}", operator.username, path)
    lines = page.locator(".session-log li")
    expect(lines).to_have_count(1)

    log.write("Upstream answered 503", "ERROR")
    log.write("Retrying with the mirror <b>")
    log.flush()
    expect(lines).to_have_count(3, timeout=10_000)
    expect(lines.nth(1).locator("b")).to_have_text("ERROR")
    expect(lines.nth(2)).to_contain_text("Retrying with the mirror <b>")

    # Once the run has ended the page stops asking.
    ExecutionSession.objects.filter(pk=session.pk).update(status=ExecutionSession.Status.SUCCEEDED)
    page.wait_for_timeout(4500)
    log.write("after the end")
    log.flush()
    page.wait_for_timeout(4500)
    expect(lines).to_have_count(3)
    assert page_errors == []
