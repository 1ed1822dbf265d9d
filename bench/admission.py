"""One admission pass with thousands of runs waiting: fair share against oldest first.

It fills a throw-away database (PostgreSQL, or with ``--database sqlite`` a
SQLite file) with ``--runs`` waiting runs, one per agent, spread evenly over
each of ``--owners`` users, the first user's runs oldest, the next user's after
them and so on (the line that oldest first serves one user at a time). For
each case it times, in this process, one pass of:

* ``new``: ``scheduling.admission.admit_waiting_runs(reclaim=False)``, the pass
  a worker makes after every run (turns across owners, the per-user and
  per-type caps);
* ``old``, the baseline: the pass as it was before fair share, kept here: the
  running agents, then one bounded read of the waiting runs, highest priority
  first, then oldest, and the claims.

Each pass runs in a transaction that is rolled back (so no message goes to a
broker and every pass sees the same rows), ``--repeats`` times, the two
alternating. The new pass's note of where the turns stand lives in Redis
and is not rolled back, so successive passes go on round the owners as
they would in a deployment. A case has 1 free slot (4 of the 5 running, another user's, as
after a run finished) or 5 (none running); "caps" sets
``SCHEDULER_MAX_CONCURRENT_PER_USER=2`` and ``SCHEDULER_TYPE_LIMITS=demo=2``
(whose reads join the agents; the old pass ignores both). The "owners served"
columns say how many users the admitted runs belong to.

    python bench/admission.py                       # 10,000 runs, 1 and 100 owners
    python bench/admission.py --database sqlite
    python bench/admission.py --owners 1,100,10000 --json /tmp/admission.json

Needs PostgreSQL (unless ``--database sqlite``) and Redis on 127.0.0.1. It
creates and drops its own database and only deletes the Redis keys it created
(DB 14 by default).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    append_results,
    bench_database,
    load_average,
    machine,
    percentile,
    print_table,
    redis_database,
    setup_django,
)

MAX_CONCURRENT = 5
CAPS = {"SCHEDULER_MAX_CONCURRENT_PER_USER": 2, "SCHEDULER_TYPE_LIMITS": {"demo": 2}}


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="neonhub-bench-") as directory:
        yield f"sqlite:///{directory}/bench.sqlite3"


# --- data -----------------------------------------------------------------------------


def load_runs(runs: int, owners: int, running: int) -> None:
    """Replace every agent and session with ``runs`` waiting runs of ``owners`` users,
    and ``running`` running ones of one more user.

    The waiting runs' agents are ``demo`` and ``webhook`` by turns, the running
    ones ``python``, so the caps of the "caps" cases bind without holding
    everything back.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from agents.models import AIAgent, ExecutionSession

    User = get_user_model()
    Status = ExecutionSession.Status
    started = time.perf_counter()
    with transaction.atomic():
        ExecutionSession.objects.all().delete()
        AIAgent.objects.all().delete()
        User.objects.filter(username__startswith="admission-bench-").delete()
        users = User.objects.bulk_create(
            User(username=f"admission-bench-{n}", password="!") for n in range(owners + 1)
        )
        now = timezone.now()
        agents = AIAgent.objects.bulk_create(
            AIAgent(
                owner=users[n * owners // runs] if n < runs else users[owners],
                name=f"agent {n}",
                agent_type=("demo", "webhook")[n % 2] if n < runs else "python",
                configuration={},
            )
            for n in range(runs + running)
        )
        sessions = ExecutionSession.objects.bulk_create(
            ExecutionSession(
                agent=agent,
                owner=agent.owner,
                status=Status.QUEUED if n < runs else Status.RUNNING,
                trigger=ExecutionSession.Trigger.MANUAL,
                scheduled_for=now,
                not_before=now - timedelta(hours=1),
                lease_expires_at=None if n < runs else now + timedelta(hours=1),
            )
            for n, agent in enumerate(agents)
        )
        for n, session in enumerate(sessions):
            # In the order they were made, a millisecond apart (bulk_create
            # gives them all one created_at).
            session.created_at = now - timedelta(hours=1) + timedelta(milliseconds=n)
        ExecutionSession.objects.bulk_update(sessions, ["created_at"], batch_size=500)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # autocommit here: VACUUM may run
            cursor.execute("VACUUM ANALYZE agents_executionsession")
            cursor.execute("VACUUM ANALYZE agents_aiagent")
        else:
            cursor.execute("ANALYZE")
    print(
        f"{runs:,} waiting runs of {owners:,} owners, {running} running, "
        f"loaded in {time.perf_counter() - started:.1f} s"
    )


# --- the two passes -----------------------------------------------------------------


def new_pass() -> list[str]:
    from scheduling import admission

    return admission.admit_waiting_runs(reclaim=False)


def old_pass() -> list[str]:
    """The pass before fair share: oldest first over all owners, the global cap only."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from agents.models import ExecutionSession
    from scheduling import admission, pacing

    Status = ExecutionSession.Status
    pacing.admission_pass_starting()
    now = timezone.now()
    admitted: list[str] = []
    with transaction.atomic():
        admission._lock_admission()
        busy_agents = set(
            ExecutionSession.objects.filter(status=Status.RUNNING).values_list(
                "agent_id", flat=True
            )
        )
        free = settings.SCHEDULER_MAX_CONCURRENT - len(busy_agents)
        if free <= 0:
            return []
        waiting = (
            ExecutionSession.objects.filter(status=Status.QUEUED, not_before__lte=now)
            .exclude(agent_id__in=busy_agents)
            .order_by("-priority", "created_at")
            .values_list("id", "agent_id", "priority")
        )
        for session_id, agent_id, _priority in list(waiting[: free * 10 + 100]):
            if agent_id in busy_agents:
                continue
            claimed = ExecutionSession.objects.filter(pk=session_id, status=Status.QUEUED).update(
                status=Status.RUNNING,
                lease_expires_at=now + timedelta(seconds=settings.SCHEDULER_LEASE_SECONDS),
            )
            if claimed:
                busy_agents.add(agent_id)
                admitted.append(str(session_id))
                if len(admitted) >= free:
                    break
    return admitted


def rolled_back(make_pass: Callable[[], list[str]]) -> tuple[float, list[str]]:
    """One pass in a transaction that is then rolled back: seconds taken, runs admitted."""
    from django.db import transaction

    started = time.perf_counter()
    with transaction.atomic():
        admitted = make_pass()
        transaction.set_rollback(True)
    return time.perf_counter() - started, admitted


def statements(make_pass: Callable[[], list[str]]) -> int:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        make_pass()
        transaction.set_rollback(True)
    ignored = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")
    return sum(not query["sql"].startswith(ignored) for query in captured.captured_queries)


def owners_served(admitted: list[str]) -> int:
    from agents.models import ExecutionSession

    return len(set(ExecutionSession.objects.filter(pk__in=admitted).values_list("owner_id")))


def measure(repeats: int, caps: bool) -> dict:
    from django.test.utils import override_settings

    with override_settings(
        SCHEDULER_MAX_CONCURRENT=MAX_CONCURRENT,
        SCHEDULER_MAX_CONCURRENT_PER_USER=CAPS["SCHEDULER_MAX_CONCURRENT_PER_USER"] if caps else 0,
        SCHEDULER_TYPE_LIMITS=CAPS["SCHEDULER_TYPE_LIMITS"] if caps else {},
    ):
        for make_pass in (new_pass, old_pass):  # warm up
            rolled_back(make_pass)
        times: dict[str, list[float]] = {"new": [], "old": []}
        admitted: dict[str, list[str]] = {}
        for _ in range(repeats):
            for name, make_pass in (("new", new_pass), ("old", old_pass)):
                seconds, admitted[name] = rolled_back(make_pass)
                times[name].append(seconds * 1000)
        figures = {"caps": caps}
        for name, make_pass in (("new", new_pass), ("old", old_pass)):
            figures[name] = {
                "p50_ms": statistics.median(times[name]),
                "p95_ms": percentile(times[name], 0.95),
                "statements": statements(make_pass),
                "admitted": len(admitted[name]),
                "owners_served": owners_served(admitted[name]),
            }
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="waiting runs (10,000)")
    parser.add_argument(
        "--owners", default="1,100", help="users the runs belong to, a list (1,100)"
    )
    parser.add_argument("--repeats", type=int, default=100, help="passes timed per case (100)")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", type=Path, help="append the figures to this JSON file")
    args = parser.parse_args()
    try:
        owner_counts = [int(item) for item in args.owners.split(",")]
    except ValueError:
        parser.error(f"--owners wants numbers separated by commas, got {args.owners!r}")
    if args.runs < 1 or args.repeats < 1 or any(not 1 <= n <= args.runs for n in owner_counts):
        parser.error("need --runs >= 1, --repeats >= 1 and 1 <= each of --owners <= --runs")

    about = machine()
    load = load_average()
    results = []
    database = bench_database(args.postgres) if args.database == "postgresql" else sqlite_database()
    with database as database_url, redis_database(args.redis) as redis_url:
        setup_django(database_url, redis_url)
        for owners in owner_counts:
            for running in (MAX_CONCURRENT - 1, 0):
                load_runs(args.runs, owners, running)
                for caps in (False, True):
                    figures = measure(args.repeats, caps)
                    results.append({"owners": owners, "free": MAX_CONCURRENT - running, **figures})
        load_after = load_average()

    print(f"\nOne admission pass, {about['date']}, {args.database}")
    print(
        f"{about['cpu']}, {about['nproc']} cores, {about['memory']} RAM; Python {about['python']}, "
        f"PostgreSQL {about['postgresql']}; load average {' '.join(load)} at the start, "
        f"{' '.join(load_after)} at the end"
    )
    print(
        f"{args.runs:,} waiting runs, SCHEDULER_MAX_CONCURRENT={MAX_CONCURRENT}, "
        f"{args.repeats} passes a case, each rolled back\n"
    )
    print_table(
        [
            "owners",
            "free",
            "caps",
            "new p50",
            "p95",
            "statements",
            "owners served",
            "old p50",
            "p95",
            "statements",
            "owners served",
        ],
        [
            [
                f"{r['owners']:,}",
                r["free"],
                "on" if r["caps"] else "off",
                f"{r['new']['p50_ms']:.2f} ms",
                f"{r['new']['p95_ms']:.2f} ms",
                r["new"]["statements"],
                f"{r['new']['owners_served']} of {r['new']['admitted']}",
                f"{r['old']['p50_ms']:.2f} ms",
                f"{r['old']['p95_ms']:.2f} ms",
                r["old"]["statements"],
                f"{r['old']['owners_served']} of {r['old']['admitted']}",
            ]
            for r in results
        ],
    )
    print(
        "\nnew: admit_waiting_runs(reclaim=False), turns across owners and the caps; "
        "old: the pass before them (oldest first, the global cap only), kept in this script.\n"
        "caps on: SCHEDULER_MAX_CONCURRENT_PER_USER=2, SCHEDULER_TYPE_LIMITS=demo=2 (the old "
        "pass ignores them); owners served: users among the runs admitted."
    )
    if args.json:
        append_results(
            args.json,
            {
                "benchmark": "admission",
                "database": args.database,
                "machine": about,
                "load": load,
                "runs": args.runs,
                "repeats": args.repeats,
                "results": results,
            },
        )


if __name__ == "__main__":
    main()
