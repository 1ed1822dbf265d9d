"""GET /api/agents/{id}/slots: the slot ledger, newest first, by time range and page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import client_for
from scheduling.models import ScheduleSlot
from tests.factories import AgentFactory, SessionFactory
from web.api.pagination import SHALLOW_ROWS
from web.api.views import slots as slots_view

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def slots_path(agent, suffix: str = "") -> str:
    return f"/api/agents/{agent.pk}/slots{suffix}"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def agent(user):
    return AgentFactory(owner=user)


def ledger(agent, count: int, *, start: datetime = START, step: timedelta = timedelta(minutes=1)):
    """``count`` SKIPPED slots, ``step`` apart from ``start``, oldest first."""
    ScheduleSlot.objects.bulk_create(
        ScheduleSlot(
            agent=agent,
            scheduled_for=start + step * index,
            outcome=ScheduleSlot.Outcome.SKIPPED,
            reason=f"Slot {index} was skipped.",
        )
        for index in range(count)
    )
    return [start + step * index for index in range(count)]


def times(response) -> list[datetime]:
    return [
        datetime.fromisoformat(slot["scheduledFor"]) for slot in response.json()["data"]["slots"]
    ]


def test_an_agent_without_slots_has_an_empty_ledger(api, agent):
    response = api.get(slots_path(agent))
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {
            "slots": [],
            "pagination": {
                "total": 0,
                "limit": 20,
                "offset": 0,
                "totalIsExact": True,
                "next": None,
            },
        },
    }


def test_each_slot_says_what_became_of_it_newest_first(api, agent):
    session = SessionFactory(agent=agent, trigger="SCHEDULE", scheduled_for=START)
    ScheduleSlot.objects.bulk_create(
        [
            ScheduleSlot(
                agent=agent,
                scheduled_for=START,
                outcome=ScheduleSlot.Outcome.RAN,
                session=session,
                reason="Its run started.",
            ),
            ScheduleSlot(
                agent=agent,
                scheduled_for=START + timedelta(hours=1),
                outcome=ScheduleSlot.Outcome.SKIPPED,
                reason="The run of 2026-03-01 09:00 UTC was still running.",
            ),
        ]
    )

    data = api.get(slots_path(agent)).json()["data"]

    assert data["slots"] == [
        {
            "scheduledFor": "2026-03-01T10:00:00Z",
            "outcome": "SKIPPED",
            "sessionId": None,
            "reason": "The run of 2026-03-01 09:00 UTC was still running.",
        },
        {
            "scheduledFor": "2026-03-01T09:00:00Z",
            "outcome": "RAN",
            "sessionId": str(session.pk),
            "reason": "Its run started.",
        },
    ]
    assert data["pagination"] == {
        "total": 2,
        "limit": 20,
        "offset": 0,
        "totalIsExact": True,
        "next": None,
    }


def test_from_is_inclusive_and_to_exclusive(api, agent):
    made = ledger(agent, 10)
    response = api.get(slots_path(agent), {"from": iso(made[2]), "to": iso(made[7])})
    assert response.status_code == 200, response.content
    assert times(response) == made[2:7][::-1]
    assert response.json()["data"]["pagination"]["total"] == 5


def test_from_and_to_may_come_alone_and_in_any_offset(api, agent):
    made = ledger(agent, 10)
    assert times(api.get(slots_path(agent), {"from": iso(made[8])})) == made[:7:-1]
    assert times(api.get(slots_path(agent), {"to": iso(made[2])})) == [made[1], made[0]]
    # 10:03 UTC written as 11:03 at +01:00; the test client escapes the +.
    berlin = (made[3] + timedelta(hours=1)).replace(tzinfo=None).isoformat() + "+01:00"
    assert times(api.get(slots_path(agent), {"to": berlin})) == made[2::-1]


@pytest.mark.parametrize(("offset", "listed"), [("-20:38", 3), ("+23:59", 0)])
def test_an_offset_beyond_what_the_database_takes_is_still_read(api, agent, offset, listed):
    made = ledger(agent, 3)
    # 08:59 at -20:38 is 05:37 UTC the next day, after every slot; at +23:59,
    # 09:00 UTC the day before, before them all.
    response = api.get(slots_path(agent), {"to": f"2026-03-01T08:59:00{offset}"})
    assert response.status_code == 200, response.content
    assert times(response) == made[::-1][3 - listed :]


def test_a_time_with_no_utc_equivalent_is_a_400(api, agent):
    response = api.get(slots_path(agent), {"to": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400
    assert "out of range" in response.json()["details"]["to"][0]


def test_limit_and_offset_page_through_the_ledger(api, agent):
    made = ledger(agent, 25)
    first = api.get(slots_path(agent), {"limit": 10})
    last = api.get(slots_path(agent), {"limit": 10, "offset": 20})
    assert times(first) == made[:-11:-1]
    assert times(last) == made[4::-1]
    assert last.json()["data"]["pagination"] == {
        "total": 25,
        "limit": 10,
        "offset": 20,
        "totalIsExact": True,
        "next": None,
    }
    beyond = api.get(slots_path(agent), {"offset": 30}).json()["data"]
    assert beyond["slots"] == [] and beyond["pagination"]["total"] == 25


def test_a_deep_page_is_the_same_page_read_through_the_index(api, agent):
    made = ledger(agent, SHALLOW_ROWS + 60)
    newest_first = made[::-1]
    offset = SHALLOW_ROWS + 5
    response = api.get(slots_path(agent), {"limit": 20, "offset": offset})
    assert times(response) == newest_first[offset : offset + 20]
    tail = api.get(slots_path(agent), {"limit": 100, "offset": SHALLOW_ROWS + 50})
    assert times(tail) == newest_first[SHALLOW_ROWS + 50 :]


def test_the_count_stops_past_the_page_and_says_so(api, agent, monkeypatch):
    monkeypatch.setattr(slots_view, "COUNT_AHEAD", 5)
    ledger(agent, 30)

    near = api.get(slots_path(agent), {"limit": 10}).json()["data"]["pagination"]
    far = api.get(slots_path(agent), {"limit": 10, "offset": 10}).json()["data"]["pagination"]
    end = api.get(slots_path(agent), {"limit": 10, "offset": 20}).json()["data"]["pagination"]

    # A lower bound that still says whether a next page exists.
    assert (near["total"], near["totalIsExact"]) == (15, False)
    assert (far["total"], far["totalIsExact"]) == (25, False)
    assert (end["total"], end["totalIsExact"]) == (30, True)


def test_a_page_costs_two_ledger_queries(api, agent):
    ledger(agent, 50)
    with CaptureQueriesContext(connection) as queries:
        assert api.get(slots_path(agent), {"limit": 5}).status_code == 200
    ledger_queries = [q["sql"] for q in queries if "scheduling_scheduleslot" in q["sql"]]
    assert len(ledger_queries) == 2, ledger_queries


def test_only_the_agent_s_own_slots_are_listed(api, agent, user):
    ledger(agent, 3)
    ledger(AgentFactory(owner=user), 4)
    assert api.get(slots_path(agent)).json()["data"]["pagination"]["total"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-03-01T09:00:00"}, "from"),  # no offset
        ({"from": "2026-03-01"}, "from"),
        ({"to": "2026-02-30T00:00:00Z"}, "to"),
        ({"to": "9999-12-31T23:59:59-14:00"}, "to"),
        ({"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T09:00:00Z"}, "to"),
        ({"from": "2026-03-01T09:00:00Z", "to": "2026-03-01T10:00:00+01:00"}, "to"),  # equal
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
def test_a_bad_range_or_page_is_a_400_naming_it(api, agent, query, field):
    response = api.get(slots_path(agent), query)
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["success"] is False
    assert list(answer["details"]) == [field]
    assert field in answer["error"]


def test_an_unescaped_plus_gets_a_hint(api, agent):
    response = api.get(slots_path(agent, "?from=2026-03-01T09:00:00+01:00"))
    assert response.status_code == 400
    assert "%2B" in response.json()["error"]


@pytest.mark.parametrize("whose", ["foreign", "unknown", "not an id"])
def test_slots_of_an_agent_the_user_cannot_see_are_not_found(api, other_user, whose):
    foreign = AgentFactory(owner=other_user)
    ledger(foreign, 2)
    agent_id = {"foreign": foreign.pk, "unknown": "7d0c8d33-0000-4000-8000-000000000000"}.get(
        whose, "not-an-id"
    )
    response = api.get(f"/api/agents/{agent_id}/slots")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Agent not found"}


def test_staff_see_anyone_s_ledger(agent, staff_user):
    ledger(agent, 2)
    response = client_for(staff_user).get(slots_path(agent))
    assert response.json()["data"]["pagination"]["total"] == 2


@pytest.mark.parametrize("suffix", ["", "/"])
def test_the_ledger_answers_with_and_without_a_slash(api, agent, suffix):
    assert api.get(slots_path(agent, suffix)).status_code == 200


def test_the_ledger_needs_a_token(anonymous, agent):
    assert anonymous.get(slots_path(agent)).status_code == 401


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_ledger_is_read_only(api, agent, method):
    response = getattr(api, method)(slots_path(agent), {}, format="json")
    assert response.status_code == 405
    assert response.json()["success"] is False
