"""History API at scale: ``GET /api/agents/{id}/sessions`` over a million session rows.

It fills a throw-away PostgreSQL database with ``--rows`` finished sessions
(``INSERT ... SELECT generate_series``, then ``VACUUM ANALYZE`` as autovacuum
would), spread the way a busy deployment looks: one agent that has run every
minute for about a year holds ``--big-share`` of them (half by default) and the
rest is shared evenly by ``--agents`` - 1 ordinary agents. It then starts a
real daphne (``tests.processes.start_daphne``) and, over one keep-alive HTTP
connection with a real JWT, asks ``--requests`` times for each case:

* an ordinary agent, first page;
* the big agent, first page and pages at deeper and deeper offsets, down to
  the last page;
* the big agent, the pages at the same depths by cursor (``?cursor=``, as
  ``pagination.next`` gives them), each cursor made for the row just before
  the page.

Beside each figure stands the raw SQL of the same request: every statement
the view runs (captured in this process) under ``EXPLAIN (ANALYZE, TIMING
OFF)``, and, as the baseline, the obvious pair of statements (``count(*)`` and
``ORDER BY ... OFFSET ... LIMIT`` over whole rows) that the view ran before it
read its total from ``agents_sessioncount`` and its deep pages ids first.
The rows are inserted through the session-count triggers, as the
application's own inserts are, and every page's ``total`` is checked.

    python bench/history.py                   # 100,000 rows
    python bench/history.py --rows 1000000 --plot docs/performance/history.png
    python bench/history.py --rows 1000000 --label "pool" --env DATABASE_POOL=1 \
        --json runs.json                      # runs recorded under a label
    python bench/history.py --plot-only --json runs.json --plot history.png

Needs PostgreSQL and Redis on 127.0.0.1. It creates and drops its own database
and only deletes the Redis keys it created (DB 14 by default).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

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
    rss_mib,
    setup_django,
)
from tests.processes import start_daphne

LIMIT = 20
SQL_REPEATS = 5
TARGET_P95_MS = 30.0
CURSOR_TARGET_P95_MS = 20.0


# --- data -----------------------------------------------------------------------------


def load_rows(rows: int, agents: int, big_share: float) -> tuple[object, object, int, int]:
    """Create the owner, the agents and the sessions; returns the big and an ordinary
    agent's ids and their row counts."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from agents.models import AIAgent

    owner = get_user_model().objects.create_user("history-bench", password=None)
    created = AIAgent.objects.bulk_create(
        AIAgent(owner=owner, name=f"agent {i}", agent_type="demo", configuration={"steps": 0})
        for i in range(agents)
    )
    big, others = created[0], created[1:]
    big_rows = round(rows * big_share) if others else rows
    each = (rows - big_rows) // len(others) if others else 0
    big_rows = rows - each * len(others)
    columns = (
        "id, agent_id, owner_id, status, trigger, attempt, rerun, priority, scheduled_for, "
        "not_before, started_at, completed_at, success, duration_ms, output_summary, "
        "error_message, progress, worker, log_truncated, input, created_at"
    )
    # One run in ten failed; durations and outputs look like a demo agent's.
    values = f"""
        gen_random_uuid(), agent_id, {int(owner.pk)},
        CASE WHEN g %% 10 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END, 'SCHEDULE', 1, 0, 2,
        t, t, t + interval '1 second', t + interval '3 seconds', g %% 10 <> 0,
        2000 + g %% 997,
        CASE WHEN g %% 10 = 0 THEN '' ELSE 'Demo run finished 3 steps.' END,
        CASE WHEN g %% 10 = 0 THEN 'Demo failure on attempt 1 of 1.' ELSE '' END,
        CASE WHEN g %% 10 = 0 THEN 66 ELSE 100 END, 'worker@bench', false, '{{}}'::jsonb,
        t + interval '1 second'
    """
    with connection.cursor() as cursor:
        started = time.perf_counter()
        # The big agent ran every minute, newest first.
        cursor.execute(
            f"""
            INSERT INTO agents_executionsession ({columns})
            SELECT {values}
            FROM (SELECT %s::uuid AS agent_id, g,
                         date_trunc('minute', now()) - g * interval '1 minute' AS t
                  FROM generate_series(1, %s) AS g) AS s
            """,
            [big.pk, big_rows],
        )
        if each:
            # The others every ten minutes, each a second apart so their slots differ.
            cursor.execute(
                f"""
                INSERT INTO agents_executionsession ({columns})
                SELECT {values}
                FROM (SELECT a.id AS agent_id, g,
                             date_trunc('minute', now()) - g * interval '10 minutes'
                             - a.n * interval '1 second' AS t
                      FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                            FROM agents_aiagent WHERE id <> %s) AS a
                      CROSS JOIN generate_series(1, %s) AS g) AS s
                """,
                [big.pk, each],
            )
        print(f"inserted {rows:,} sessions in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with connection.cursor() as cursor:  # Django runs in autocommit mode: VACUUM may run
        cursor.execute("VACUUM ANALYZE agents_executionsession")
        cursor.execute("VACUUM ANALYZE agents_aiagent")
        cursor.execute("VACUUM ANALYZE agents_sessioncount")
    print(f"vacuum analyze in {time.perf_counter() - started:.1f} s")
    return big.pk, others[0].pk if others else big.pk, big_rows, each


def access_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(get_user_model().objects.get(username="history-bench")))


# --- SQL --------------------------------------------------------------------------------


def cursor_at(agent_id: object, offset: int) -> str:
    """The cursor ``pagination.next`` gives for the page that starts at ``offset``."""
    from agents.models import ExecutionSession
    from core.dates import iso
    from web.api.cursors import make_cursor

    history = ExecutionSession.objects.filter(agent_id=agent_id).order_by("-created_at", "-id")
    at, pk = history.values_list("created_at", "pk")[offset - 1]
    return make_cursor(f"sessions:{agent_id}", [iso(at), str(pk)])


def page_query(offset: int | None, cursor: str | None) -> dict:
    if offset is None:
        return {}
    if cursor is not None:
        return {"limit": LIMIT, "cursor": cursor}
    return {"limit": LIMIT, "offset": offset}


def view_statements(agent_id: object, offset: int | None, cursor: str | None = None) -> list[str]:
    """The SQL the history view runs for this page, captured from a request in this process."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    token = access_token()
    path = f"/api/agents/{agent_id}" + ("" if offset is None else "/sessions")
    query = page_query(offset, cursor)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, query, headers={"authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise RuntimeError(f"in-process request failed: {response.status_code} {response.content}")
    return [query["sql"] for query in captured.captured_queries]


def naive_statements(agent_id: object, offset: int) -> list[str]:
    table = "agents_executionsession"
    return [
        f"SELECT count(*) FROM {table} WHERE agent_id = '{agent_id}'",
        f"SELECT * FROM {table} WHERE agent_id = '{agent_id}' "
        f"ORDER BY created_at DESC, id DESC OFFSET {offset} LIMIT {LIMIT}",
    ]


def explain_ms(statement: str) -> float:
    """Planning plus execution time of one statement, the median of a few runs.

    Per-node timing is off: reading the clock for each of the hundreds of
    thousands of index entries a deep page skips would add a third to them.
    """
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for _ in range(SQL_REPEATS):
            cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {statement}")
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            times.append(plan[0]["Planning Time"] + plan[0]["Execution Time"])
    return statistics.median(times)


def sql_ms(statements: list[str]) -> float:
    return sum(explain_ms(statement) for statement in statements if _is_select(statement))


def _is_select(statement: str) -> bool:
    return statement.lstrip().upper().startswith(("SELECT", "WITH"))


# --- HTTP -------------------------------------------------------------------------------


def http_latencies(
    port: int,
    token: str,
    agent_id: object,
    offset: int | None,
    requests: int,
    expected_total: int | None,
    cursor: str | None = None,
) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    if offset is None:
        path = f"/api/agents/{agent_id}"
    else:
        path = f"/api/agents/{agent_id}/sessions?{urlencode(page_query(offset, cursor))}"
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
    deadline = time.monotonic() + 120
    for index in range(requests + 3):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        if index < 3:  # the first requests warm caches and the connection
            if offset is not None:
                check_page(json.loads(body)["data"], offset, expected_total)
            continue
        latencies.append(elapsed * 1000)
        if time.monotonic() > deadline:
            break
    connection.close()
    return latencies


def profiler(pid: int, path: str | None) -> subprocess.Popen | None:
    if not path:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            path,
            "--nonblocking",
            "--duration",
            "600",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def check_page(page: dict, offset: int, expected_total: int) -> None:
    if page["pagination"]["total"] != expected_total:
        raise RuntimeError(f"total {page['pagination']['total']} != {expected_total}")
    if len(page["sessions"]) != max(0, min(LIMIT, expected_total - offset)):
        raise RuntimeError(f"{len(page['sessions'])} sessions on the page")
    times = [session["createdAt"] for session in page["sessions"]]
    if times != sorted(times, reverse=True):
        raise RuntimeError("the page is not newest first")


# --- main -------------------------------------------------------------------------------


def cases(big: object, ordinary: object, big_rows: int, ordinary_rows: int) -> list[dict]:
    found = [
        {
            "case": "reference: GET /api/agents/{id}",
            "agent": ordinary,
            "offset": None,
            "total": None,
        },
        {
            "case": "ordinary agent, first page",
            "agent": ordinary,
            "offset": 0,
            "total": ordinary_rows,
        },
    ]
    offsets = [0, 1_000, 10_000, 100_000, 250_000, big_rows - LIMIT]
    seen: set[int] = set()
    for offset in offsets:
        if 0 <= offset <= big_rows - LIMIT and offset not in seen:
            seen.add(offset)
            label = "last page" if offset == big_rows - LIMIT else f"offset {offset:,}"
            found.append(
                {"case": f"big agent, {label}", "agent": big, "offset": offset, "total": big_rows}
            )
    for offset in sorted(seen):
        if offset:
            label = "last page" if offset == big_rows - LIMIT else f"depth {offset:,}"
            found.append(
                {
                    "case": f"big agent by cursor, {label}",
                    "agent": big,
                    "offset": offset,
                    "total": big_rows,
                    "cursor": cursor_at(big, offset),
                }
            )
    return found


def _verdict(result: dict) -> str:
    if result["offset"] is None:
        return ""
    target = CURSOR_TARGET_P95_MS if result.get("cursor") else TARGET_P95_MS
    return f"{'met' if result['p95_ms'] <= target else 'missed'} ({target:.0f} ms)"


def _deep(results: list[dict], by_cursor: bool) -> list[dict]:
    return [
        r
        for r in results
        if r["case"].startswith("big agent") and bool(r.get("cursor")) == by_cursor
    ]


def plot(path: Path, runs: list[tuple[str, list[dict]]], title: str) -> None:
    """Latency against offset: HTTP p95 and p50 of each run, the SQL of the first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for index, (label, results) in enumerate(runs):
        for by_cursor, style in ((False, "o"), (True, "^")):
            deep = _deep(results, by_cursor)
            if not deep:
                continue
            offsets = [max(r["offset"], 1) for r in deep]
            name = f"{label}, by cursor" if by_cursor else label
            color = f"C{2 * index + by_cursor}"
            axes.plot(
                offsets, [r["p95_ms"] for r in deep], f"{style}-", color=color, label=f"{name}: p95"
            )
            axes.plot(
                offsets,
                [r["p50_ms"] for r in deep],
                f"{style}--",
                color=color,
                alpha=0.5,
                label="p50",
            )
    deep = _deep(runs[0][1], False)
    offsets = [max(r["offset"], 1) for r in deep]
    axes.plot(offsets, [r["sql_ms"] for r in deep], "s-", color="C7", label="SQL of the view")
    axes.plot(
        offsets,
        [r["naive_sql_ms"] for r in deep],
        "x:",
        color="C3",
        label="naive SQL (count + OFFSET)",
    )
    axes.axhline(TARGET_P95_MS, color="grey", linewidth=0.8, linestyle="--", label="target p95")
    axes.axhline(
        CURSOR_TARGET_P95_MS, color="grey", linewidth=0.8, linestyle=":", label="cursor target p95"
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("depth into the big agent's history (first page drawn at 1)")
    axes.set_ylabel("ms")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="session rows (100,000)")
    parser.add_argument("--agents", type=int, default=1000, help="agents sharing them (1,000)")
    parser.add_argument(
        "--big-share", type=float, default=0.5, help="share of the rows the big agent holds"
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per case (200)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for daphne, e.g. DATABASE_CONN_MAX_AGE=60 (repeatable)",
    )
    parser.add_argument("--profile", help="write py-spy samples of daphne (wall clock) here")
    parser.add_argument("--json", type=Path, help="append the figures to this JSON file")
    parser.add_argument("--plot", type=Path, help="draw latency against offset into this PNG")
    parser.add_argument("--label", default="HTTP", help="this run's name in --json and plots")
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="measure nothing: draw --plot from every history run recorded in --json",
    )
    args = parser.parse_args()
    if args.plot_only:
        if not (args.json and args.plot):
            parser.error("--plot-only needs --json and --plot")
        records = [r for r in json.loads(args.json.read_text()) if r["benchmark"] == "history"]
        runs = [(r.get("label", "HTTP"), r["results"]) for r in records]
        plot(
            args.plot,
            runs,
            f"History API, {records[0]['rows']:,} rows, {records[0]['machine']['date']}",
        )
        print(f"plot: {args.plot}")
        return
    if args.rows < LIMIT or args.agents < 1 or not 0 < args.big_share <= 1 or args.requests < 1:
        parser.error("need --rows >= 20, --agents >= 1, 0 < --big-share <= 1, --requests >= 1")
    extra = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env wants NAME=VALUE, got {item!r}")
        extra[name] = value

    about = machine()
    load = load_average()
    results = []
    with bench_database(args.postgres) as database_url, redis_database(args.redis) as redis_url:
        setup_django(database_url, redis_url, API_RATE_LIMIT="100000000/1m")
        big, ordinary, big_rows, ordinary_rows = load_rows(args.rows, args.agents, args.big_share)
        token = access_token()
        daphne, port = start_daphne(
            API_RATE_LIMIT="100000000/1m", DEBUG="0", PYTHONUNBUFFERED="1", **extra
        )
        spy = profiler(daphne.popen.pid, args.profile)
        try:
            for case in cases(big, ordinary, big_rows, ordinary_rows):
                cursor = case.get("cursor")
                latencies = http_latencies(
                    port,
                    token,
                    case["agent"],
                    case["offset"],
                    args.requests,
                    case["total"],
                    cursor,
                )
                reference = case["offset"] is None
                view_sql = view_statements(case["agent"], case["offset"], cursor)
                results.append(
                    {
                        "case": case["case"],
                        "offset": case["offset"],
                        "cursor": cursor is not None,
                        "total": case["total"],
                        "requests": len(latencies),
                        "p50_ms": percentile(latencies, 0.50),
                        "p95_ms": percentile(latencies, 0.95),
                        "p99_ms": percentile(latencies, 0.99),
                        "sql_ms": sql_ms(view_sql),
                        "statements": len(view_sql),
                        "naive_sql_ms": None
                        if reference
                        else sql_ms(naive_statements(case["agent"], case["offset"])),
                    }
                )
            web_rss = rss_mib(daphne.popen.pid)
            load_after = load_average()
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            daphne.stop()
            daphne.remove_log()

    print(f"\nHistory API, {about['date']}")
    print(
        f"{about['cpu']}, {about['nproc']} cores, {about['memory']} RAM; Python {about['python']}, "
        f"PostgreSQL {about['postgresql']}, Redis {about['redis']}; load average "
        f"{' '.join(load)} at the start, {' '.join(load_after)} at the end"
    )
    print(
        f"{args.rows:,} sessions: one agent with {big_rows:,}, {args.agents - 1:,} with "
        f"{ordinary_rows:,} each; GET ...?limit={LIMIT}&offset=N over HTTP/1.1 keep-alive to "
        f"one daphne, {args.requests} requests a case"
        + "".join(f"; {item}" for item in args.env)
        + "\n"
    )
    print_table(
        ["case", "HTTP p50", "p95", "p99", "view SQL", "queries", "naive SQL", "p95 target"],
        [
            [
                r["case"],
                f"{r['p50_ms']:.1f} ms",
                f"{r['p95_ms']:.1f} ms",
                f"{r['p99_ms']:.1f} ms",
                f"{r['sql_ms']:.2f} ms",
                r["statements"],
                "-" if r["naive_sql_ms"] is None else f"{r['naive_sql_ms']:.2f} ms",
                _verdict(r),
            ]
            for r in results
        ],
    )
    print(f"\nweb (daphne) RSS after the run: {web_rss:.0f} MiB" if web_rss else "")
    print(
        "view SQL: every SELECT the view ran (user, agent, stored count, page), EXPLAIN "
        f"(ANALYZE, TIMING OFF), planning + execution, median of {SQL_REPEATS};\n"
        "naive SQL: count(*) plus ORDER BY ... OFFSET ... LIMIT over whole rows, as the view "
        "read pages before, for comparison."
    )
    if args.plot:
        plot(
            args.plot, [(args.label, results)], f"History API, {args.rows:,} rows, {about['date']}"
        )
        print(f"plot: {args.plot}")
    if args.json:
        append_results(
            args.json,
            {
                "benchmark": "history",
                "machine": about,
                "load": load,
                "load_after": load_after,
                "rows": args.rows,
                "agents": args.agents,
                "big_rows": big_rows,
                "ordinary_rows": ordinary_rows,
                "env": args.env,
                "label": args.label,
                "web_rss_mib": web_rss,
                "results": results,
            },
        )


if __name__ == "__main__":
    main()
