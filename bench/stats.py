"""Run statistics of one busy agent: ``agents.run_stats`` over 24h, 7d and 30d.

It fills a throw-away PostgreSQL database with ``--sessions`` finished
sessions of one agent spread evenly over the last 30 days (about 1 in 20
failed, 1 in 100 cancelled, durations 0.5-10.5 s), plus ``--others``
sessions of 50 other agents over the same days, then times the figures of
the busy agent for each window ``--repeats`` times:

* ``ours``: ``run_stats`` as the API calls it. 24 hours: two statements
  over the ``session_finished`` index (the window, then each bucket on its
  own), percentiles by ``percentile_cont``. 7 and 30 days: the days that
  are over from their rollups (written first by beat's hourly task, timed
  once as ``roll up``), today from the index;
* ``rows``: the exact statements of 24 hours over the whole window (how 7
  and 30 days were read before the rollups);
* ``in Python``, the naive baseline: the window's rows fetched through the
  ORM and the same figures computed in this process (run_stats' SQLite path).

Printed: p50 and p95 of each, in ms, the rows the window holds, and how far
the rollups' window percentiles are from the exact ones.

    python bench/stats.py                      # 500,000 sessions of the busy agent
    python bench/stats.py --sessions 50000 --others 10000 --repeats 10

Needs PostgreSQL and Redis on 127.0.0.1; creates and drops its own database
and deletes only the Redis keys it created (DB 14 by default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
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

DAYS = 30
OTHER_AGENTS = 50
INSERT = """
INSERT INTO agents_executionsession (
    id, agent_id, owner_id, status, trigger, attempt, rerun, priority,
    scheduled_for, not_before, started_at, completed_at, success, duration_ms,
    output_summary, error_message, progress, worker, log_truncated, input, created_at
)
SELECT gen_random_uuid(), (%s::uuid[])[1 + n %% %s], %s,
       CASE WHEN n %% 100 = 0 THEN 'CANCELLED' WHEN n %% 20 = 0 THEN 'FAILED'
            ELSE 'SUCCEEDED' END,
       'SCHEDULE', 1, 0, 2, moment, moment, moment - duration * interval '1 ms', moment,
       n %% 20 <> 0, duration, 'done', '', 100, 'bench', false, '{}'::jsonb, moment
FROM (
    SELECT n, now() - n * (%s * interval '1 day' / %s) AS moment,
           500 + (n::bigint * 7919) %% 10000 AS duration
    FROM generate_series(1, %s) AS n
) AS runs
"""


def load(sessions: int, others: int):
    """The busy agent's ``sessions`` and the other agents' ``others``; returns the busy agent."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from agents.models import AIAgent

    started = time.perf_counter()
    owner = get_user_model().objects.create(username="stats-bench", password="!")
    busy = AIAgent.objects.create(owner=owner, name="busy", agent_type="demo", configuration={})
    rest = AIAgent.objects.bulk_create(
        AIAgent(owner=owner, name=f"agent {n}", agent_type="demo", configuration={})
        for n in range(OTHER_AGENTS)
    )
    with connection.cursor() as cursor:
        # One statement per agent set: the count trigger sees each as one bulk insert.
        cursor.execute(INSERT, [[str(busy.pk)], 1, owner.pk, DAYS, sessions, sessions])
        if others:
            ids = [str(agent.pk) for agent in rest]
            cursor.execute(INSERT, [ids, len(ids), owner.pk, DAYS, others, others])
        cursor.execute("VACUUM ANALYZE agents_executionsession")
    print(
        f"{sessions:,} sessions of the busy agent and {others:,} of {OTHER_AGENTS} others "
        f"loaded in {time.perf_counter() - started:.1f} s"
    )
    return busy


def naive(agent, window) -> int:
    from agents import run_stats

    starts = window.starts(run_stats.timezone.now())
    groups = list(
        run_stats._grouped_in_python([agent.pk], window, starts[0], starts[-1] + window.step, False)
    )
    return len(groups)


def rows(agent, window) -> int:
    from agents import run_stats

    starts = window.starts(run_stats.timezone.now())
    end = starts[-1] + window.step
    return len(list(run_stats._grouped_postgresql([agent.pk], window, starts[0], end, False)))


def exact_figures(agent, window):
    from agents import run_stats

    starts = window.starts(run_stats.timezone.now())
    end = starts[-1] + window.step
    for agent_id, bucket, figures in run_stats._grouped_postgresql(
        [agent.pk], window, starts[0], end, False
    ):
        if agent_id == agent.pk and bucket is None:
            return figures
    raise AssertionError("no figures")


def ours(agent, window) -> int:
    from agents.run_stats import run_stats

    return run_stats([agent.pk], window).per_agent[agent.pk].figures.runs


def timed(case, agent, window, repeats: int) -> list[float]:
    case(agent, window)  # warm the cache: the figures are of a page read often
    took = []
    for _ in range(repeats):
        started = time.perf_counter()
        case(agent, window)
        took.append((time.perf_counter() - started) * 1000)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=500_000, help="busy agent's (500,000)")
    parser.add_argument("--others", type=int, default=500_000, help="other agents' (500,000)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per case (20)")
    parser.add_argument("--naive-repeats", type=int, default=3, help="for in Python (3)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", type=Path, help="append the figures to this JSON file")
    args = parser.parse_args()
    if args.sessions < 1 or args.others < 0 or args.repeats < 1 or args.naive_repeats < 1:
        parser.error("need --sessions >= 1, --others >= 0 and repeats >= 1")

    about = machine()
    load_start = load_average()
    results = []
    errors = []
    with bench_database(args.postgres) as database_url, redis_database(args.redis) as redis_url:
        setup_django(database_url, redis_url)
        from agents.run_stats import WINDOWS, roll_up_every_agent, run_stats

        agent = load(args.sessions, args.others)
        started = time.perf_counter()
        written = roll_up_every_agent()
        rolled = (time.perf_counter() - started) * 1000
        print(f"rolled up {written:,} agent-days (the hourly task's first run) in {rolled:,.0f} ms")
        results.append(_row("roll up: every agent's days that are over", "30d", 0, [rolled]))
        cases = [
            ("ours", ours, args.repeats),
            ("rows", rows, args.repeats),
            ("in Python", naive, args.naive_repeats),
        ]
        for name, case, repeats in cases:
            for window in WINDOWS.values():
                took = timed(case, agent, window, repeats)
                results.append(_row(name, window.name, ours(agent, window), took))
        for window in WINDOWS.values():
            exact = exact_figures(agent, window)
            got = run_stats([agent.pk], window).per_agent[agent.pk].figures
            errors.append((window.name, exact, got))
    load_end = load_average()

    print(
        f"\nRun statistics of one agent with {args.sessions:,} sessions in {DAYS} days "
        f"({args.others:,} of others), {about['date']}"
    )
    print(
        f"{about['cpu']}, {about['nproc']} cores; PostgreSQL {about['postgresql']}; load average "
        f"{' '.join(load_start)} at the start, {' '.join(load_end)} at the end\n"
    )
    print_table(
        ["case", "window", "runs in it", "calls", "p50", "p95"],
        [
            [
                r["case"],
                r["window"],
                f"{r['runs']:,}",
                r["calls"],
                f"{r['p50_ms']:,.1f} ms",
                f"{r['p95_ms']:,.1f} ms",
            ]
            for r in results
        ],
    )
    print("\nThe window's percentiles, exact (rows) and ours:")
    print_table(
        ["window", "p50 exact", "p50 ours", "p95 exact", "p95 ours", "worst error"],
        [
            [
                name,
                f"{exact.p50:,.1f}",
                f"{got.p50:,.1f}",
                f"{exact.p95:,.1f}",
                f"{got.p95:,.1f}",
                f"{max(_error(got.p50, exact.p50), _error(got.p95, exact.p95)):.3%}",
            ]
            for name, exact, got in errors
        ],
    )
    if args.json:
        append_results(args.json, {"benchmark": "stats", "machine": about, "results": results})


def _error(got: float, exact: float) -> float:
    return abs(got - exact) / exact


def _row(case: str, window: str, runs: int, took: list[float]) -> dict:
    return {
        "case": case,
        "window": window,
        "runs": runs,
        "calls": len(took),
        "p50_ms": statistics.median(took),
        "p95_ms": percentile(took, 0.95),
    }


if __name__ == "__main__":
    main()
