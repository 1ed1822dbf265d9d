"""A real browser (Debian's Chromium, driven by Playwright) against real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.db import connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

from observability.heartbeats import beat_is_running
from tests.factories import UserFactory

# The scheduling tests' real worker, shared rather than copied.
from tests.processes import (
    ROOT,
    Process,
    start_beat,
    start_daphne,
    wait_until,
)

CHROMIUM = Path("/usr/bin/chromium")
# The marks of every browser test module: real processes, a real database,
# and Chromium, without which they are skipped before any process is started.
BROWSER_TEST_MARKS = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    ),
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = ROOT / "tests" / "output"
PASSWORD = "a-real-password-for-the-browser"

# Real processes on a busy CI machine: assertions wait generously, and pass
# as soon as the page gets there.
expect.set_options(timeout=20_000)

# Child processes must not inherit the test's permission to use the ORM
# inside Playwright's event loop (see ``browser``).
SERVER_ENV = {"DEBUG": "0", "DJANGO_ALLOW_ASYNC_UNSAFE": ""}


@pytest.fixture
def browser(monkeypatch) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    # Playwright's sync API keeps an event loop in this thread, which makes
    # Django refuse ORM calls; the test's own queries never overlap with it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # Connections the test opened inside Playwright's loop are not the
        # ones pytest-django closes; left open, they block dropping the
        # PostgreSQL test database.
        connections.close_all()


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions in the page's scripts, for a final assertion."""
    return []


@pytest.fixture
def page(browser: Browser, page_errors: list[str], request) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    yield page
    OUTPUT.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(OUTPUT / f"{request.node.name}-last.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture
def web(transactional_db) -> Iterator[tuple[Process, int]]:
    """daphne in production mode: DEBUG off, static files served by WhiteNoise."""
    process, port = start_daphne(**SERVER_ENV)
    yield process, port
    process.stop()


@pytest.fixture
def beat(transactional_db) -> Iterator[Process]:
    process = start_beat(DJANGO_ALLOW_ASYNC_UNSAFE="")
    # Pages rendered from now on show beat as alive.
    wait_until(beat_is_running, what="beat's first heartbeat")
    yield process
    process.stop()


@pytest.fixture
def operator(transactional_db, settings):
    """A staff user with a password daphne can check (the suite's fast hasher is
    configured in this process only)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = UserFactory(username="operator", is_staff=True)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


# axe-core's rules for WCAG 2.0 and 2.1, levels A and AA; the script comes from
# the package and is evaluated in the page, nothing is fetched.
AXE = Axe()
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}


def assert_accessible(page: Page, state: str) -> None:
    """No WCAG 2 A/AA violation on the page as it is now; ``state`` names it in the report."""
    # Judged at rest (a blinking dot or a fading row would be measured
    # mid-fade), in both colour schemes the styles have.
    reports = []
    try:
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
            results = AXE.run(page, options=AXE_OPTIONS)
            if results.violations_count:
                reports.append(f"{state}, {scheme} ({page.url}): {results.generate_report()}")
    finally:
        page.emulate_media(color_scheme="light", reduced_motion="no-preference")
    assert not reports, "\n\n".join(reports)


def sign_in(page: Page, base_url: str, username: str, next_path: str = "/dashboard/") -> None:
    """Through the admin's login form, as LOGIN_URL sends people."""
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")
