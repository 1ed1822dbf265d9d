"""Fair share and the per-user and per-type caps in admission, driven directly (no worker)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from redis.exceptions import RedisError

from agents.models import ExecutionSession, Priority
from core.redis import get_redis
from neonhub.settings import parse_limits
from scheduling import admission, pacing, runs
from scheduling.stats import scheduler_stats
from tests.factories import AgentFactory, SessionFactory, UserFactory
from tests.processes import ROOT, child_env

pytestmark = pytest.mark.django_db

Status = ExecutionSession.Status


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Admission would send the admitted runs to the broker; here the tests run them by hand."""
    monkeypatch.setattr(pacing, "request_admission", lambda: None)
    monkeypatch.setattr(admission, "_send_executions", lambda admitted: None)
    monkeypatch.setattr(runs, "_after_run_finished", lambda: None)
    monkeypatch.setattr(pacing, "request_status_broadcast", lambda: None)


@pytest.fixture(autouse=True)
def no_turns_yet():
    """Where the turns stand is kept in Redis; every test starts a new round."""
    keys = [admission._turns_key(level) for level in Priority.values]
    get_redis().delete(*keys)
    yield
    get_redis().delete(*keys)


def queue(owner, *, agent_type: str = "demo", agent=None, **fields) -> ExecutionSession:
    """A waiting run as queue_run records it: the agent's owner copied onto the session."""
    agent = agent or AgentFactory(owner=owner, agent_type=agent_type)
    return SessionFactory(agent=agent, owner=agent.owner, priority=agent.priority, **fields)


def running(owner, *, agent_type: str = "demo", **fields) -> ExecutionSession:
    fields.setdefault("lease_expires_at", timezone.now() + timedelta(seconds=30))
    return queue(owner, agent_type=agent_type, status=Status.RUNNING, **fields)


def owners_of(session_ids: list[str]) -> list[int]:
    owners = dict(ExecutionSession.objects.filter(pk__in=session_ids).values_list("id", "owner"))
    return [owners[ExecutionSession._meta.pk.to_python(pk)] for pk in session_ids]


def run_to_end(session_id: str) -> None:
    assert runs.start_run(session_id, "worker") is not None
    assert runs.finish_succeeded(session_id, "done")


# --- fair share -------------------------------------------------------------------


def test_two_users_queued_runs_alternate_through_one_slot(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 1
    alice, bob = UserFactory(), UserFactory()
    for owner in (alice, alice, alice, bob, bob, bob):
        queue(owner)
    started = []
    while admitted := admission.admit_waiting_runs():
        started += owners_of(admitted)
        run_to_end(admitted[0])
    assert started == [alice.pk, bob.pk] * 3


def test_one_pass_takes_owners_in_turn(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 5
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    for _ in range(10):
        queue(alice)
    queue(bob)
    queue(bob)
    queue(carol)
    admitted = admission.admit_waiting_runs()
    assert owners_of(admitted) == [alice.pk, bob.pk, carol.pk, alice.pk, bob.pk]


def test_one_users_many_runs_cannot_starve_anothers_one(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 2
    alice, bob = UserFactory(), UserFactory()
    running(alice)
    # More of them than one read of the waiting runs holds.
    for _ in range(200):
        queue(alice)
    latecomer = queue(bob)
    assert admission.admit_waiting_runs() == [str(latecomer.pk)]


def test_the_round_goes_on_from_the_owner_served_last(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 1
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    for owner in (carol, alice, bob) * 2:
        queue(owner)
    started = []
    while admitted := admission.admit_waiting_runs():
        started += owners_of(admitted)
        run_to_end(admitted[0])
    # From the owner of the oldest run, then round the owners in id order.
    assert started == [carol.pk, alice.pk, bob.pk] * 2


def test_the_round_takes_in_more_owners_than_one_read_holds(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 1
    owners = [UserFactory() for _ in range(15)]
    for owner in owners * 2:
        queue(owner)
    started = []
    while admitted := admission.admit_waiting_runs():
        started += owners_of(admitted)
        run_to_end(admitted[0])
    assert started == [owner.pk for owner in owners] * 2


@pytest.mark.parametrize("runnable", [0, 12, 24])
def test_the_round_reads_on_past_owners_with_nothing_to_start(settings, runnable):
    owners = [UserFactory() for _ in range(25)]
    settings.SCHEDULER_MAX_CONCURRENT = len(owners)
    for index, owner in enumerate(owners):
        if index == runnable:
            wanted = queue(owner)
        else:
            # Its one agent is running: its waiting run cannot start.
            queue(owner, agent=running(owner).agent)
    # The round starts after the runnable run's owner and comes to them last.
    admission._remember_served(Priority.NORMAL, owners[runnable].pk)
    assert admission.admit_waiting_runs() == [str(wanted.pk)]


def test_without_the_note_of_turns_the_oldest_runs_owner_goes_first(settings, monkeypatch):
    settings.SCHEDULER_MAX_CONCURRENT = 1
    alice, bob = UserFactory(), UserFactory()
    oldest = queue(bob)
    queue(alice)

    def unreachable():
        raise RedisError("down")

    monkeypatch.setattr(admission, "fast_redis", unreachable)
    assert admission.admit_waiting_runs() == [str(oldest.pk)]


def test_the_owner_with_fewer_runs_going_goes_first(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 3
    alice, bob = UserFactory(), UserFactory()
    running(alice)
    queue(alice)
    later = queue(bob)
    assert admission.admit_waiting_runs()[0] == str(later.pk)


def test_priority_still_comes_before_turns(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 1
    alice, bob = UserFactory(), UserFactory()
    queue(bob)
    urgent = queue(alice, agent=AgentFactory(owner=alice, priority=Priority.CRITICAL))
    assert admission.admit_waiting_runs() == [str(urgent.pk)]


def test_turns_hold_at_each_priority_the_pass_reaches(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 4
    alice, bob = UserFactory(), UserFactory()
    high = queue(alice, agent=AgentFactory(owner=alice, priority=Priority.HIGH))
    for _ in range(5):
        queue(alice)
    queue(bob)
    admitted = admission.admit_waiting_runs()
    assert admitted[0] == str(high.pk)
    assert owners_of(admitted[1:]) == [bob.pk, alice.pk, alice.pk]


def test_an_agents_runs_still_go_one_at_a_time_in_turns(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 5
    alice, bob = UserFactory(), UserFactory()
    busy = AgentFactory(owner=alice)
    for _ in range(20):
        queue(alice, agent=busy)
    queue(bob)
    admitted = admission.admit_waiting_runs()
    assert owners_of(admitted) == [alice.pk, bob.pk]


def test_a_run_behind_a_long_line_of_one_agents_runs_is_reached(settings):
    # More of them than one read of the waiting runs holds.
    alice = UserFactory()
    busy = AgentFactory(owner=alice)
    for _ in range(160):
        queue(alice, agent=busy)
    behind = queue(alice)
    assert str(behind.pk) in admission.admit_waiting_runs()


def test_sessions_without_an_owner_wait_as_one_more_owner(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 2
    alice = UserFactory()
    for _ in range(3):
        queue(alice)
    ownerless = SessionFactory()
    assert str(ownerless.pk) in admission.admit_waiting_runs()


# --- per-user cap -----------------------------------------------------------------


def test_the_per_user_cap_holds_a_users_runs_back(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 5
    settings.SCHEDULER_MAX_CONCURRENT_PER_USER = 2
    alice, bob = UserFactory(), UserFactory()
    for _ in range(4):
        queue(alice)
    queue(bob)
    admitted = admission.admit_waiting_runs()
    assert sorted(owners_of(admitted)) == [alice.pk, alice.pk, bob.pk]
    assert admission.admit_waiting_runs() == []

    owners = owners_of(admitted)
    run_to_end(admitted[owners.index(alice.pk)])
    assert owners_of(admission.admit_waiting_runs()) == [alice.pk]


def test_the_per_user_cap_counts_runs_already_going(settings):
    settings.SCHEDULER_MAX_CONCURRENT_PER_USER = 1
    alice = UserFactory()
    running(alice)
    queue(alice)
    assert admission.admit_waiting_runs() == []


def test_the_per_user_cap_holds_with_one_user_alone(settings):
    settings.SCHEDULER_MAX_CONCURRENT_PER_USER = 2
    alice = UserFactory()
    for _ in range(5):
        queue(alice)
    assert len(admission.admit_waiting_runs()) == 2


def test_no_per_user_cap_by_default(settings):
    assert settings.SCHEDULER_MAX_CONCURRENT_PER_USER == 0
    alice = UserFactory()
    for _ in range(settings.SCHEDULER_MAX_CONCURRENT + 1):
        queue(alice)
    assert len(admission.admit_waiting_runs()) == settings.SCHEDULER_MAX_CONCURRENT


# --- type limits ------------------------------------------------------------------


def test_a_full_type_is_passed_over_and_others_go(settings):
    settings.SCHEDULER_TYPE_LIMITS = {"webhook": 1}
    alice = UserFactory()
    hooks = [queue(alice, agent_type="webhook") for _ in range(3)]
    demos = [queue(alice) for _ in range(2)]
    admitted = admission.admit_waiting_runs()
    assert admitted == [str(hooks[0].pk), str(demos[0].pk), str(demos[1].pk)]
    assert admission.admit_waiting_runs() == []


def test_a_type_limit_counts_runs_already_going(settings):
    settings.SCHEDULER_TYPE_LIMITS = {"webhook": 2}
    alice, bob = UserFactory(), UserFactory()
    running(alice, agent_type="webhook")
    running(bob, agent_type="webhook")
    queue(alice, agent_type="webhook")
    demo = queue(bob)
    assert admission.admit_waiting_runs() == [str(demo.pk)]


def test_a_run_behind_a_long_line_of_a_full_type_is_reached(settings):
    settings.SCHEDULER_TYPE_LIMITS = {"webhook": 1}
    alice = UserFactory()
    for _ in range(160):
        queue(alice, agent_type="webhook")
    behind = queue(alice)
    assert len(admitted := admission.admit_waiting_runs()) == 2
    assert admitted[1] == str(behind.pk)


def test_type_limits_and_turns_together(settings):
    settings.SCHEDULER_MAX_CONCURRENT = 5
    settings.SCHEDULER_TYPE_LIMITS = {"webhook": 1}
    alice, bob = UserFactory(), UserFactory()
    for _ in range(3):
        queue(alice, agent_type="webhook")
    for _ in range(3):
        queue(bob, agent_type="webhook")
    bobs_demo = queue(bob)
    admitted = admission.admit_waiting_runs()
    assert len(admitted) == 2
    assert admitted[1] == str(bobs_demo.pk)


def test_a_reclaimed_run_frees_its_types_slot(settings):
    settings.SCHEDULER_TYPE_LIMITS = {"webhook": 1}
    alice = UserFactory()
    lost = running(
        alice,
        agent_type="webhook",
        started_at=timezone.now() - timedelta(seconds=60),
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    waiting = queue(alice, agent_type="webhook")
    assert admission.admit_waiting_runs() == [str(waiting.pk)]
    lost.refresh_from_db()
    assert lost.status == Status.FAILED


def test_a_reclaimed_run_frees_its_owners_slot(settings):
    settings.SCHEDULER_MAX_CONCURRENT_PER_USER = 1
    alice = UserFactory()
    running(
        alice,
        started_at=timezone.now() - timedelta(seconds=60),
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    waiting = queue(alice)
    assert admission.admit_waiting_runs() == [str(waiting.pk)]


def test_runs_held_back_by_a_cap_still_count_as_queued(settings):
    settings.SCHEDULER_TYPE_LIMITS = {"webhook": 1}
    settings.SCHEDULER_MAX_CONCURRENT_PER_USER = 1
    alice, bob = UserFactory(), UserFactory()
    for _ in range(3):
        queue(alice)
    for _ in range(3):
        queue(bob, agent_type="webhook")
    assert len(admission.admit_waiting_runs()) == 2
    stats = scheduler_stats()
    assert stats["queued_tasks_count"] == 4
    assert stats["running_agents_count"] == 2


# --- settings ---------------------------------------------------------------------


KNOWN = {"demo", "webhook", "python"}


def test_type_limits_parse():
    assert parse_limits("SCHEDULER_TYPE_LIMITS", "webhook=2, demo = 1", KNOWN) == {
        "webhook": 2,
        "demo": 1,
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("webhook", "TYPE=N"),
        ("webhook=", "TYPE=N"),
        ("=2", "TYPE=N"),
        ("webhook=2,,demo=1", "TYPE=N"),
        ("webhook=2,", "TYPE=N"),
        ("webhook=two", "must be an integer"),
        ("webhook=1.5", "must be an integer"),
        ("webhook=0", "at least 1"),
        ("webhook=-1", "at least 1"),
        ("webhook=2,webhook=3", "twice"),
        ("CONTENT_CREATOR=1", "not a registered agent type"),
        ("Webhook=1", "not a registered agent type"),
    ],
)
def test_a_malformed_type_limit_is_refused_by_name(value, says):
    with pytest.raises(ImproperlyConfigured, match="SCHEDULER_TYPE_LIMITS") as refused:
        parse_limits("SCHEDULER_TYPE_LIMITS", value, KNOWN)
    assert says in str(refused.value)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SCHEDULER_TYPE_LIMITS", "webhook:2", "'webhook:2'"),
        ("SCHEDULER_TYPE_LIMITS", "unknown=1", "'unknown'"),
        ("SCHEDULER_MAX_CONCURRENT_PER_USER", "-1", "at least 0"),
        ("SCHEDULER_MAX_CONCURRENT_PER_USER", "two", "'two'"),
    ],
)
def test_a_process_with_a_bad_cap_does_not_start(name, value, says):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=child_env(**{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name}" in result.stderr
    assert says in result.stderr


@pytest.mark.integration
def test_an_extra_runner_type_may_have_a_limit():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.SCHEDULER_TYPE_LIMITS)",
        ],
        cwd=ROOT,
        env=child_env(
            AGENT_EXTRA_RUNNERS="relay=agents.runners.demo.DemoRunner",
            SCHEDULER_TYPE_LIMITS="relay=1,webhook=2",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'relay': 1, 'webhook': 2}"
