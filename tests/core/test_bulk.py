"""Inserting many rows at once (core.bulk), on whichever database the suite runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from agents.models import ExecutionSession
from core.bulk import insert_new
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

Status = ExecutionSession.Status
Trigger = ExecutionSession.Trigger
SLOT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def scheduled(agents, **same):
    ids = [uuid.uuid4() for _ in agents]
    written = insert_new(
        ExecutionSession,
        {
            "id": ids,
            "agent_id": [agent.pk for agent in agents],
            "owner_id": [agent.owner_id for agent in agents],
            "not_before": [SLOT + timedelta(seconds=index) for index in range(len(agents))],
        },
        {"trigger": Trigger.SCHEDULE, "attempt": 1, "scheduled_for": SLOT, **same},
    )
    return ids, written


def test_rows_take_their_columns_the_shared_values_and_the_defaults():
    agents = AgentFactory.create_batch(3)
    ids, written = scheduled(agents, priority=3)
    assert written == set(ids)
    sessions = {s.pk: s for s in ExecutionSession.objects.filter(pk__in=ids)}
    for index, (session_id, agent) in enumerate(zip(ids, agents, strict=True)):
        session = sessions[session_id]
        assert (session.agent_id, session.owner_id) == (agent.pk, agent.owner_id)
        assert session.not_before == SLOT + timedelta(seconds=index)
        assert (session.trigger, session.attempt, session.scheduled_for) == (
            Trigger.SCHEDULE,
            1,
            SLOT,
        )
        assert session.priority == 3
        # Defaults, as save() would give them.
        assert (session.status, session.input, session.error_message) == (Status.QUEUED, {}, "")
        assert session.started_at is None


def test_each_row_gets_its_own_creation_time_in_order():
    agents = AgentFactory.create_batch(3)
    ids, _ = scheduled(agents)
    created = [ExecutionSession.objects.get(pk=pk).created_at for pk in ids]
    assert created == sorted(created)
    assert created[0].tzinfo is not None


def test_rows_a_unique_constraint_holds_are_skipped_and_not_returned():
    agents = AgentFactory.create_batch(2)
    taken = SessionFactory(
        agent=agents[0], trigger=Trigger.SCHEDULE, attempt=1, scheduled_for=SLOT, not_before=SLOT
    )
    ids, written = scheduled(agents)
    assert written == {ids[1]}
    assert not ExecutionSession.objects.filter(pk=ids[0]).exists()
    assert ExecutionSession.objects.filter(agent=agents[0]).get() == taken


def test_nothing_to_insert_writes_nothing():
    assert insert_new(ExecutionSession, {"id": []}) == set()


@pytest.mark.parametrize(
    ("each", "message"),
    [
        ({"id": [uuid.uuid4()], "agent_id": []}, "one value per row"),
        ({"agent_id": [uuid.uuid4()]}, "primary key"),
    ],
)
def test_malformed_columns_are_refused_before_any_write(each, message):
    with pytest.raises(ValueError, match=message):
        insert_new(ExecutionSession, each)
    assert not ExecutionSession.objects.exists()
