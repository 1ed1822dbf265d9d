"""Cursor pages of an agent's sessions and slot ledger: pagination.next, walked to the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing

from agents.models import ExecutionSession
from scheduling.models import ScheduleSlot
from tests.factories import AgentFactory, SessionFactory
from web.api import cursors

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def agent(user):
    return AgentFactory(owner=user)


def sessions(agent, count: int) -> list[str]:
    """``count`` sessions, three to an instant so the id breaks ties; newest first."""
    made = [SessionFactory(agent=agent) for _ in range(count)]
    for index, session in enumerate(made):
        at = START + timedelta(seconds=index // 3)
        ExecutionSession.objects.filter(pk=session.pk).update(created_at=at)
    order = ExecutionSession.objects.filter(agent=agent).order_by("-created_at", "-id")
    return [str(pk) for pk in order.values_list("pk", flat=True)]


def walk(api, url: str, key: str, field: str) -> tuple[list[str], list[dict]]:
    """Every item's ``field`` from ``url`` on, following pagination.next."""
    seen: list[str] = []
    pages: list[dict] = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        data = response.json()["data"]
        seen += [item[field] for item in data[key]]
        pages.append(data["pagination"])
        url = data["pagination"]["next"]
        assert len(pages) < 100
    return seen, pages


def test_the_cursor_walks_every_session_once_in_order(api, agent):
    expected = sessions(agent, 23)
    seen, pages = walk(api, f"/api/agents/{agent.pk}/sessions?limit=5", "sessions", "id")
    assert seen == expected
    assert [page["offset"] for page in pages] == [0, None, None, None, None]
    assert all(page["total"] == 23 and page["limit"] == 5 for page in pages)
    assert pages[-1]["next"] is None


def test_an_offset_page_gives_the_cursor_of_the_page_after_it(api, agent):
    expected = sessions(agent, 12)
    data = api.get(f"/api/agents/{agent.pk}/sessions", {"limit": 4, "offset": 4}).json()["data"]
    after = api.get(data["pagination"]["next"]).json()["data"]
    assert [s["id"] for s in after["sessions"]] == expected[8:]
    assert after["pagination"]["next"] is None
    query = parse_qs(urlsplit(data["pagination"]["next"]).query)
    assert "offset" not in query and query["limit"] == ["4"]


def test_a_full_last_page_has_no_next(api, agent):
    sessions(agent, 4)
    data = api.get(f"/api/agents/{agent.pk}/sessions", {"limit": 4}).json()["data"]
    assert data["pagination"]["next"] is None


def test_runs_recorded_meanwhile_do_not_shift_a_cursor_walk(api, agent):
    expected = sessions(agent, 10)
    first = api.get(f"/api/agents/{agent.pk}/sessions", {"limit": 5}).json()["data"]
    SessionFactory(agent=agent)  # newer than everything: an offset walk would repeat a row
    rest = api.get(first["pagination"]["next"]).json()["data"]
    assert [s["id"] for s in first["sessions"] + rest["sessions"]] == expected


def bad(api, url: str, name: str) -> None:
    response = api.get(url)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False and list(body["details"]) == [name]


@pytest.mark.parametrize(
    "cursor",
    ["nonsense", "", "a" * 5000, "x:y:z", signing.dumps(["sessions:elsewhere", []])],
)
def test_a_cursor_not_given_by_the_list_is_a_400_naming_it(api, agent, cursor):
    sessions(agent, 3)
    if cursor == "":
        assert api.get(f"/api/agents/{agent.pk}/sessions?cursor=").status_code == 200
        return
    bad(api, f"/api/agents/{agent.pk}/sessions?cursor={cursor}", "cursor")


def test_another_agent_s_or_another_list_s_cursor_is_a_400(api, user, agent):
    sessions(agent, 6)
    other = AgentFactory(owner=user)
    sessions(other, 6)
    next_url = api.get(f"/api/agents/{agent.pk}/sessions?limit=2").json()["data"]["pagination"][
        "next"
    ]
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    bad(api, f"/api/agents/{other.pk}/sessions?cursor={cursor}", "cursor")
    bad(api, f"/api/agents/{agent.pk}/slots?cursor={cursor}", "cursor")
    # Signed right but holding no position this list can read.
    forged = signing.dumps([f"sessions:{agent.pk}", ["yesterday", 7]], salt=cursors.SALT)
    bad(api, f"/api/agents/{agent.pk}/sessions?cursor={forged}", "cursor")


def test_a_cursor_with_an_offset_is_a_400_naming_the_offset(api, agent):
    sessions(agent, 6)
    next_url = api.get(f"/api/agents/{agent.pk}/sessions?limit=2").json()["data"]["pagination"][
        "next"
    ]
    bad(api, next_url + "&offset=2", "offset")


def ledger(agent, count: int) -> list[str]:
    ScheduleSlot.objects.bulk_create(
        ScheduleSlot(
            agent=agent,
            scheduled_for=START + timedelta(minutes=index),
            outcome=ScheduleSlot.Outcome.MISSED,
            reason="Missed.",
        )
        for index in range(count)
    )
    return [
        (START + timedelta(minutes=index)).isoformat().replace("+00:00", "Z")
        for index in reversed(range(count))
    ]


def test_the_cursor_walks_the_slot_ledger_within_its_range(api, agent):
    expected = ledger(agent, 30)
    url = f"/api/agents/{agent.pk}/slots?limit=4&from=2026-03-01T09:05:00Z&to=2026-03-01T09:20:00Z"
    seen, pages = walk(api, url, "slots", "scheduledFor")
    assert seen == expected[10:25]
    assert [page["offset"] for page in pages] == [0, None, None, None]
    assert all(page["total"] == 15 and page["totalIsExact"] for page in pages)
    # The cursor belongs to its range.
    cursor = parse_qs(urlsplit(pages[0]["next"]).query)["cursor"][0]
    bad(api, f"/api/agents/{agent.pk}/slots?limit=4&cursor={cursor}", "cursor")


def test_the_whole_ledger_by_cursor(api, agent):
    expected = ledger(agent, 9)
    seen, _ = walk(api, f"/api/agents/{agent.pk}/slots?limit=2", "slots", "scheduledFor")
    assert seen == expected


@pytest.mark.parametrize(
    "position", [[], ["2026-03-01T09:00:00Z", "not-an-id"], [7, 8], ["yesterday"], [None, None]]
)
def test_a_signed_cursor_with_a_position_the_list_cannot_read_is_a_400(api, agent, position):
    for scope, path in [(f"sessions:{agent.pk}", "sessions"), (f"slots:{agent.pk}::", "slots")]:
        forged = signing.dumps([scope, position], salt=cursors.SALT)
        bad(api, f"/api/agents/{agent.pk}/{path}?cursor={forged}", "cursor")
