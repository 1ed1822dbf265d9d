"""Alerts in a real browser: channels, an agent's rules and the live alerts panel."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from scheduling import incidents
from scheduling.models import AlertChannel, Incident
from tests.browser.conftest import BROWSER_TEST_MARKS, SERVER_ENV, assert_accessible, sign_in
from tests.factories import AgentFactory
from tests.processes import Process, start_daphne
from tests.receivers import Receiver

pytestmark = BROWSER_TEST_MARKS


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def web_with_local_hooks(transactional_db) -> Iterator[tuple[Process, int]]:
    """daphne that lets channels point at the test's receiver on 127.0.0.1."""
    process, port = start_daphne(**SERVER_ENV, AGENT_WEBHOOK_ALLOWED_HOSTS="127.0.0.1")
    yield process, port
    process.stop()


def test_a_channel_shows_its_secret_once_and_answers_a_test(
    web_with_local_hooks, operator, receiver, page: Page, page_errors
):
    _, port = web_with_local_hooks
    sign_in(page, f"http://127.0.0.1:{port}", operator.username)
    expect(page.locator("#channels-empty")).to_have_text(re.compile("No channels yet"))

    page.get_by_role("button", name="Add channel").click()
    dialog = page.get_by_role("dialog", name="Add an alert channel")
    dialog.get_by_label("Name").fill("On call")
    dialog.get_by_label("Kind").select_option("webhook")
    dialog.get_by_label("Target").fill(f"http://127.0.0.1:{receiver.port}/hook")
    dialog.get_by_role("button", name="Add channel").click()

    secret_box = page.locator("#channel-secret")
    expect(secret_box).to_be_visible()
    expect(secret_box).to_contain_text("will not be shown again")
    channel = AlertChannel.objects.get(name="On call")
    expect(secret_box.locator("code[data-field=secret]")).to_have_text(channel.secret)
    assert_accessible(page, "a new channel's secret")
    page.get_by_role("button", name="Done").click()
    expect(secret_box).to_be_hidden()
    assert channel.secret not in page.content()

    row = page.locator(f'#channels-table tr[data-channel-id="{channel.pk}"]')
    expect(row.locator(".c-delivery")).to_have_text("Nothing sent yet")
    row.get_by_role("button", name="Send a test to On call").click()
    expect(row.locator(".test-result")).to_have_text("Test delivered.")
    expect(row.locator(".c-delivery .result")).to_have_text("Delivered")
    (received,) = receiver.received
    signature = hmac.new(channel.secret.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-NeonHub-Signature"] == f"sha256={signature}"

    row.get_by_role("button", name="Delete On call").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete channel").click()
    expect(row).to_have_count(0)
    assert not AlertChannel.objects.exists()
    assert page_errors == []


def test_rules_are_saved_from_the_agent_page_and_a_bad_threshold_is_refused(
    web, operator, page: Page, page_errors
):
    _, port = web
    agent = AgentFactory(owner=operator, name="Digest")
    channel = AlertChannel.objects.create(
        owner=operator, name="Team mail", kind="email", target="team@example.com", secret="s"
    )
    sign_in(page, f"http://127.0.0.1:{port}", operator.username, f"/dashboard/agents/{agent.pk}/")
    form = page.locator("#rules-form")
    expect(form.get_by_role("button", name="Save rules")).to_be_visible()

    form.get_by_label("Late: a slot's run has not started").check()
    late = form.locator("input[name=lateAfterSeconds]")
    expect(late).to_have_value("300")
    late.fill("120")
    form.get_by_label("Failing: runs fail one after another").check()
    failing = form.locator("input[name=failuresInARow]")
    failing.fill("0")
    form.get_by_label("Team mail").check()
    form.get_by_role("button", name="Save rules").click()

    # The message is the API's own, as it answers the same body.
    client = Client()
    client.force_login(operator)
    refused = client.put(
        f"/api/agents/{agent.pk}/alerts", {"failuresInARow": 0}, content_type="application/json"
    ).json()
    (message,) = refused["details"]["failuresInARow"]
    error = form.locator(".field[data-field=failuresInARow] .field-error")
    expect(error).to_have_text(message)
    expect(failing).to_have_attribute("aria-invalid", "true")
    expect(form.locator("#rules-error")).to_contain_text("Not saved")
    # What was typed is still there, and nothing was stored.
    expect(late).to_have_value("120")
    expect(failing).to_have_value("0")
    expect(form.get_by_label("Team mail")).to_be_checked()
    assert_accessible(page, "agent page with a refused rule")

    failing.fill("3")
    form.get_by_role("button", name="Save rules").click()
    expect(form.locator("#rules-saved")).to_have_text("Rules saved.")
    rules = client.get(f"/api/agents/{agent.pk}/alerts").json()["data"]
    assert rules["lateAfterSeconds"] == 120
    assert rules["failuresInARow"] == 3
    assert rules["maxDurationSeconds"] is None
    assert rules["channels"] == [str(channel.pk)]

    # The card's open alerts follow the agent's room.
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    incident = incidents.open_incident(agent, Incident.Kind.OVERRUN, "Running for 130 s.")
    assert incident is not None
    card = page.locator("#agent-alerts")
    expect(card.locator("#alerts-list li")).to_contain_text("Running for 130 s.")
    expect(card.locator("#alerts-count")).to_have_text("1 open alert")
    assert incidents.resolve(incident, agent, "The run ended.")
    expect(card.locator("#alerts-empty")).to_have_text("No open alerts.")
    assert page_errors == []


def test_alerts_open_and_resolve_live_in_the_main_page_panel(
    web, operator, page: Page, page_errors
):
    _, port = web
    agent = AgentFactory(owner=operator, name="Digest")
    sign_in(page, f"http://127.0.0.1:{port}", operator.username)
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    panel = page.locator("#alerts-panel")
    expect(panel.locator("#alerts-empty")).to_have_text("No open alerts.")

    # Opened as the backend opens them: the frame goes out through the event emitter.
    incident = incidents.open_incident(
        agent, Incident.Kind.FAILING, "3 runs in a row failed; the last: Upstream said no."
    )
    assert incident is not None
    item = panel.locator(f'li[data-alert-id="{incident.pk}"]')
    expect(item).to_contain_text("Failing")
    expect(item.get_by_role("link", name="Digest")).to_be_visible()
    expect(item).to_contain_text("Upstream said no.")
    expect(panel.locator("#alerts-count")).to_have_text("1 open alert")
    assert_accessible(page, "agents page with an open alert")

    # An agent created after the page loaded: the panel reads the list for its name.
    newcomer = AgentFactory(owner=operator, name="Newcomer")
    late = incidents.open_incident(newcomer, Incident.Kind.LATE, "The 10:00 slot has not started.")
    assert late is not None
    expect(panel.locator(f'li[data-alert-id="{late.pk}"]')).to_contain_text("Newcomer")
    expect(panel.locator("#alerts-count")).to_have_text("2 open alerts")

    assert incidents.resolve(incident, agent, "A run succeeded.")
    expect(item).to_have_count(0)
    expect(panel.locator("#alerts-count")).to_have_text("1 open alert")
    assert page_errors == []
