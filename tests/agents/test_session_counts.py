from __future__ import annotations

import importlib
import io
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F
from django.utils import timezone

from agents.models import AgentSessionCount, AIAgent, ExecutionSession
from tests.factories import AgentFactory, SessionFactory, UserFactory
from web.api.pagination import SHALLOW_ROWS

pytestmark = pytest.mark.django_db

counts_migration = importlib.import_module("agents.migrations.0003_session_counts")


def stored(agent: AIAgent) -> int | None:
    """The count row's total, or None when the agent has no row."""
    return AgentSessionCount.objects.filter(agent=agent).values_list("total", flat=True).first()


def real(agent: AIAgent) -> int:
    return ExecutionSession.objects.filter(agent=agent).count()


def scheduled(agent: AIAgent, slot, attempt: int = 1) -> ExecutionSession:
    return ExecutionSession(
        agent=agent,
        trigger=ExecutionSession.Trigger.SCHEDULE,
        attempt=attempt,
        scheduled_for=slot,
        not_before=slot,
    )


def test_an_agent_without_sessions_has_no_row_and_a_total_of_zero():
    agent = AgentFactory()
    assert stored(agent) is None
    assert AgentSessionCount.total_for(agent.pk) == 0


def test_each_created_session_is_counted():
    agent, other = AgentFactory(), AgentFactory()
    for _ in range(3):
        SessionFactory(agent=agent)
    SessionFactory(agent=other)
    assert stored(agent) == 3 == real(agent)
    assert stored(other) == 1 == real(other)
    assert AgentSessionCount.total_for(agent.pk) == 3


def test_a_bulk_insert_counts_only_the_rows_it_inserted():
    agents = AgentFactory.create_batch(3)
    slot = timezone.now().replace(microsecond=0)
    ExecutionSession.objects.bulk_create([scheduled(agent, slot) for agent in agents])
    later = slot + timedelta(minutes=1)
    # Every slot already recorded is skipped, and so is the repeat inside the batch.
    ExecutionSession.objects.bulk_create(
        [
            *(scheduled(agent, slot) for agent in agents),
            scheduled(agents[0], later),
            scheduled(agents[0], later),
            scheduled(agents[0], slot, attempt=2),
        ],
        ignore_conflicts=True,
    )
    assert [stored(agent) for agent in agents] == [3, 1, 1]
    assert [real(agent) for agent in agents] == [3, 1, 1]


def test_a_bulk_insert_that_inserts_nothing_changes_nothing():
    agent = AgentFactory()
    slot = timezone.now()
    ExecutionSession.objects.bulk_create([scheduled(agent, slot)])
    ExecutionSession.objects.bulk_create([scheduled(agent, slot)] * 2, ignore_conflicts=True)
    assert stored(agent) == 1 == real(agent)


def test_deleted_sessions_are_subtracted():
    agent, other = AgentFactory(), AgentFactory()
    sessions = [SessionFactory(agent=agent) for _ in range(4)]
    SessionFactory(agent=other)
    sessions[0].delete()
    assert stored(agent) == 3
    ExecutionSession.objects.filter(pk__in=[s.pk for s in sessions[1:3]]).delete()
    assert stored(agent) == 1 == real(agent)
    ExecutionSession.objects.all().delete()
    assert stored(agent) == 0 and stored(other) == 0
    assert AgentSessionCount.total_for(agent.pk) == 0


def test_deleting_an_agent_removes_its_count_and_leaves_the_others():
    agent, other = AgentFactory(), AgentFactory()
    for _ in range(2):
        SessionFactory(agent=agent)
        SessionFactory(agent=other)
    agent.delete()
    assert not AgentSessionCount.objects.filter(agent_id=agent.pk).exists()
    assert stored(other) == 2


def test_deleting_an_owner_removes_the_counts_of_all_their_agents():
    owner = UserFactory()
    agents = AgentFactory.create_batch(2, owner=owner)
    for agent in agents:
        SessionFactory(agent=agent)
    kept = SessionFactory().agent
    owner.delete()
    assert list(AgentSessionCount.objects.values_list("agent_id", "total")) == [(kept.pk, 1)]


def test_a_session_moved_to_another_agent_moves_its_count():
    agent, other = AgentFactory(), AgentFactory()
    session = SessionFactory(agent=agent)
    SessionFactory(agent=agent)
    ExecutionSession.objects.filter(pk=session.pk).update(agent=other)
    assert (stored(agent), stored(other)) == (1, 1)
    # Updates that leave the agent alone leave the counts alone.
    session.refresh_from_db()
    session.progress = 50
    session.save()
    ExecutionSession.objects.update(status=ExecutionSession.Status.CANCELLED)
    assert (stored(agent), stored(other)) == (1, 1)


def test_recounting_restores_exact_counts():
    agent, other, idle = AgentFactory(), AgentFactory(), AgentFactory()
    for _ in range(3):
        SessionFactory(agent=agent)
    SessionFactory(agent=other)
    AgentSessionCount.objects.filter(agent=agent).update(total=99)
    AgentSessionCount.objects.filter(agent=other).delete()
    AgentSessionCount.objects.create(agent=idle, total=5)
    counts_migration.count_sessions(connection)
    assert dict(AgentSessionCount.objects.values_list("agent_id", "total")) == {
        agent.pk: 3,
        other.pk: 1,
    }


def test_the_history_total_is_the_stored_count(api, user):
    agent = AgentFactory(owner=user)
    for _ in range(3):
        SessionFactory(agent=agent)
    # The stored count is what the page reports: no count(*) of the sessions.
    AgentSessionCount.objects.filter(agent=agent).update(total=4)
    data = api.get(f"/api/agents/{agent.pk}/sessions").json()["data"]
    assert data["pagination"] == {"total": 4, "limit": 20, "offset": 0, "next": None}
    assert len(data["sessions"]) == 3


def test_the_history_total_follows_runs_and_deletions(api, user):
    agent = AgentFactory(owner=user)

    def total() -> int:
        return api.get(f"/api/agents/{agent.pk}/sessions").json()["data"]["pagination"]["total"]

    assert total() == 0
    for _ in range(2):
        assert api.post(f"/api/agents/{agent.pk}/run").status_code == 202
    assert total() == 2 == real(agent)
    ExecutionSession.objects.filter(agent=agent).first().delete()
    assert total() == 1 == real(agent)


def test_deep_history_pages_are_the_rows_a_plain_slice_gives(api, user):
    agent = AgentFactory(owner=user)
    # Deep enough for both ways of reading a deep page: forward up to the
    # middle, from the oldest end past it.
    rows = 2 * SHALLOW_ROWS + 101
    now = timezone.now()
    ExecutionSession.objects.bulk_create(
        scheduled(agent, now - timedelta(minutes=index)) for index in range(rows)
    )
    expected = [
        str(pk)
        for pk in ExecutionSession.objects.filter(agent=agent)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    ]
    middle = rows // 2
    for offset, limit in [
        (0, 20),
        (SHALLOW_ROWS - 10, 20),
        (middle - 100, 100),
        (middle - 10, 20),
        (middle + 1, 20),
        (rows - 20, 20),
        (rows - 1, 5),
    ]:
        page = api.get(f"/api/agents/{agent.pk}/sessions?limit={limit}&offset={offset}")
        data = page.json()["data"]
        assert data["pagination"]["total"] == rows
        assert [s["id"] for s in data["sessions"]] == expected[offset : offset + limit], offset
    beyond = api.get(f"/api/agents/{agent.pk}/sessions?offset={rows}").json()["data"]
    assert beyond["sessions"] == [] and beyond["pagination"]["total"] == rows


def test_the_model_matches_its_migrations():
    out = io.StringIO()
    call_command("makemigrations", "agents", "--check", "--dry-run", stdout=out)


@pytest.mark.django_db(transaction=True)
def test_a_flush_empties_the_counts_and_counting_goes_on():
    SessionFactory()
    call_command("flush", interactive=False, verbosity=0)
    assert not AgentSessionCount.objects.exists()
    session = SessionFactory()
    assert stored(session.agent) == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_reverses_and_counts_existing_sessions_when_applied_again():
    agent = AgentFactory()
    SessionFactory(agent=agent)
    try:
        call_command("migrate", "agents", "0002", verbosity=0)
        assert "agents_sessioncount" not in connection.introspection.table_names()
        # Without its table, a trigger left behind would make this insert fail.
        old_sessions = (
            MigrationExecutor(connection)
            .loader.project_state(("agents", "0002_help_texts"))
            .apps.get_model("agents", "ExecutionSession")
        )
        now = timezone.now()
        old_sessions.objects.create(
            agent_id=agent.pk, trigger="MANUAL", scheduled_for=now, not_before=now
        )
    finally:
        # Every app: going back also unapplied the migrations that depend on
        # this one (the slot ledger), and later tests need their tables.
        call_command("migrate", verbosity=0)
    assert stored(agent) == 2
    SessionFactory(agent=agent)
    assert stored(agent) == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_queueing_a_retry_under_an_agent_lock_does_not_deadlock_with_a_bulk_dispatch():
    """A failed run locks its agent, then queues the retry; beat inserts first,
    then updates the agents. The count rows must not close that circle."""
    agent = AgentFactory()
    slot = timezone.now()
    beat_pid: list[int] = []
    errors: list[BaseException] = []

    def dispatch() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    beat_pid.append(cursor.fetchone()[0])
                ExecutionSession.objects.bulk_create(
                    [scheduled(agent, slot)], ignore_conflicts=True
                )
                AIAgent.objects.filter(pk=agent.pk).update(next_run_at=slot)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    beat = threading.Thread(target=dispatch)
    with transaction.atomic():
        AIAgent.objects.filter(pk=agent.pk).update(retry_count=F("retry_count") + 1)
        beat.start()
        # Go on once beat waits for this transaction, wherever it waits.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (beat_pid and waiting_for_a_lock(beat_pid[0])):
            time.sleep(0.02)
        assert beat_pid and waiting_for_a_lock(beat_pid[0])
        ExecutionSession.objects.create(
            agent=agent,
            trigger=ExecutionSession.Trigger.RETRY,
            attempt=2,
            scheduled_for=slot - timedelta(minutes=1),
            not_before=slot,
        )
    beat.join(timeout=30)
    assert not beat.is_alive() and errors == []
    assert stored(agent) == 2 == real(agent)


def waiting_for_a_lock(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        # A transaction sees one snapshot of the activity view unless it asks again.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"
