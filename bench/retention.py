"""Retention on a large backlog: how long runs being recorded wait while it prunes.

It fills a throw-away PostgreSQL database with ``--agents`` agents and
``--sessions`` finished sessions spread over them, all older than the age
rule, then prunes them while a writer thread keeps queueing a run for one of
those agents every ``--interval`` seconds, as a worker recording runs would.
Each insert has to update the agent's session-count row, which the prune's
own count trigger has locked until its transaction commits. So the writer's
wait is the length of the prune's transactions:

* ``ours``: ``scheduling.retention.prune_sessions``, batches of 1,000, each
  its own transaction;
* ``one DELETE``, the baseline: the same rows deleted by one statement in one
  transaction.

The data is loaded afresh before each case. Printed: the whole prune's time,
and the writer's insert latency while it ran (p50, p99, max).

    python bench/retention.py                       # 200,000 sessions of 100 agents
    python bench/retention.py --sessions 1000000 --json /tmp/retention.json

Needs PostgreSQL and Redis on 127.0.0.1; creates and drops its own database
and deletes only the Redis keys it created (DB 14 by default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
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

DAYS = 90


def load(agents: int, sessions: int) -> list:
    """Replace everything with ``sessions`` finished sessions, 100-plus days old,
    of ``agents`` agents; returns the agents' ids."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from agents.models import AIAgent

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # With every table that refers to the agents (sessions, their counts, ...).
        cursor.execute("TRUNCATE agents_aiagent CASCADE")
    User = get_user_model()
    owner, _ = User.objects.get_or_create(username="retention-bench", defaults={"password": "!"})
    ids = [
        agent.pk
        for agent in AIAgent.objects.bulk_create(
            AIAgent(owner=owner, name=f"agent {n}", agent_type="demo", configuration={})
            for n in range(agents)
        )
    ]
    with connection.cursor() as cursor:
        # One statement: the count trigger sees it all at once, as a bulk insert.
        cursor.execute(
            """
            INSERT INTO agents_executionsession (
                id, agent_id, owner_id, status, trigger, attempt, rerun, priority,
                scheduled_for, not_before, started_at, completed_at, success, duration_ms,
                output_summary, error_message, progress, worker, log_truncated, input, created_at
            )
            SELECT gen_random_uuid(), (%s::uuid[])[1 + n %% %s], %s, 'SUCCEEDED', 'SCHEDULE',
                   1, 0, 2, moment, moment, moment, moment + interval '1 second', true, 1000,
                   'done', '', 100, 'bench', false, '{}'::jsonb, moment
            FROM (
                SELECT n, now() - interval '100 days' - n * interval '1 second' AS moment
                FROM generate_series(1, %s) AS n
            ) AS slots
            """,
            [[str(pk) for pk in ids], agents, owner.pk, sessions],
        )
        cursor.execute("VACUUM ANALYZE agents_executionsession")
    print(
        f"{sessions:,} finished sessions of {agents} agents loaded in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return ids


def one_delete() -> int:
    """The baseline: every prunable session past the age rule in one statement."""
    from django.db import connection, transaction
    from django.utils import timezone

    cutoff = timezone.now() - timedelta(days=DAYS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM agents_executionsession WHERE status IN "
            "('SUCCEEDED', 'FAILED', 'CANCELLED') AND created_at < %s",
            [cutoff],
        )
        return cursor.rowcount


def ours() -> int:
    from scheduling.retention import prune_sessions

    return prune_sessions(days=DAYS, per_agent=0).sessions


def writer(
    agent_ids: list, interval: float, stop: threading.Event, waits: list[tuple[float, float]]
) -> None:
    """Queue a run for the agents in turn, as workers record runs, timing each insert."""
    from django.db import connection
    from django.utils import timezone

    from agents.models import ExecutionSession

    try:
        n = 0
        while not stop.is_set():
            now = timezone.now()
            started = time.perf_counter()
            ExecutionSession.objects.create(
                agent_id=agent_ids[n % len(agent_ids)],
                trigger=ExecutionSession.Trigger.MANUAL,
                scheduled_for=now,
                not_before=now,
            )
            waits.append((started, (time.perf_counter() - started) * 1000))
            n += 1
            stop.wait(interval)
    finally:
        connection.close()


def measure(name: str, prune, agents: int, sessions: int, interval: float) -> dict:
    agent_ids = load(agents, sessions)
    waits: list[tuple[float, float]] = []  # (when an insert began, its milliseconds)
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(agent_ids, interval, stop, waits))
    thread.start()
    time.sleep(1.0)  # the writer's pace before the prune
    started = time.perf_counter()
    deleted = prune()
    ended = time.perf_counter()
    took = ended - started
    stop.set()
    thread.join()
    # Every insert begun while the prune ran, those it held up until its end included.
    during = [milliseconds for began, milliseconds in waits if started <= began <= ended]
    return {
        "case": name,
        "deleted": deleted,
        "seconds": took,
        "inserts": len(during),
        "p50_ms": statistics.median(during) if during else None,
        "p99_ms": percentile(during, 0.99) if during else None,
        "max_ms": max(during) if during else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100, help="agents (100)")
    parser.add_argument("--sessions", type=int, default=200_000, help="old sessions (200,000)")
    parser.add_argument("--interval", type=float, default=0.02, help="writer pause, s (0.02)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", type=Path, help="append the figures to this JSON file")
    args = parser.parse_args()
    if args.agents < 1 or args.sessions < 1 or args.interval < 0:
        parser.error("need --agents >= 1, --sessions >= 1 and --interval >= 0")

    about = machine()
    load_start = load_average()
    with bench_database(args.postgres) as database_url, redis_database(args.redis) as redis_url:
        setup_django(database_url, redis_url)
        results = [
            measure(name, prune, args.agents, args.sessions, args.interval)
            for name, prune in (("ours (batches of 1,000)", ours), ("one DELETE", one_delete))
        ]
    load_end = load_average()

    print(f"\nRetention of {args.sessions:,} sessions of {args.agents} agents, {about['date']}")
    print(
        f"{about['cpu']}, {about['nproc']} cores; PostgreSQL {about['postgresql']}; load average "
        f"{' '.join(load_start)} at the start, {' '.join(load_end)} at the end\n"
    )

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:,.1f} ms"

    print_table(
        ["prune", "deleted", "took", "inserts meanwhile", "insert p50", "p99", "max"],
        [
            [
                r["case"],
                f"{r['deleted']:,}",
                f"{r['seconds']:.2f} s",
                r["inserts"],
                ms(r["p50_ms"]),
                ms(r["p99_ms"]),
                ms(r["max_ms"]),
            ]
            for r in results
        ],
    )
    print(
        "\ninserts meanwhile: runs queued for the same agents by a second connection while the "
        "prune ran; each waits for the prune's transaction that holds its agent's count row."
    )
    if args.json:
        append_results(args.json, {"benchmark": "retention", "machine": about, "results": results})


if __name__ == "__main__":
    main()
